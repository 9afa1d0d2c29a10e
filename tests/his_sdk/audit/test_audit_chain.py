"""The hash chain: gapless appends, and verify() catching deleted, reordered and altered events."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading

import pytest

from his_sdk.audit import (
    GENESIS_HASH,
    AuditObserver,
    ChainedEvent,
    Outbox,
    build_audit_events,
    canonical_json,
    chain_hash,
    verify,
)
from tests.his_sdk.audit.audit_helpers import read_ctx

OBSERVER = AuditObserver("gw-chain")


def _append(outbox: Outbox, engine, count: int, patient: str = "p1") -> list[ChainedEvent]:
    out = []
    for i in range(count):
        events = build_audit_events(read_ctx(patient, f"obs-{i}"), observer=OBSERVER)
        with engine.begin() as conn:
            out.extend(outbox.append(conn, events))
    return out


@pytest.fixture
def outbox(engine) -> Outbox:
    box = Outbox(engine, chain_id="chain-a")
    box.create()
    return box


def test_chain_links_and_hashes(outbox, engine):
    events = _append(outbox, engine, 5)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    assert all(e.intact for e in events)
    assert outbox.head() == (5, events[-1].hash)
    stored = list(outbox.events())
    assert stored == events
    assert verify(stored).ok


def test_hash_is_sha256_over_documented_canonical_json(outbox, engine):
    [event] = _append(outbox, engine, 1)
    material = canonical_json(
        {
            "chain": event.chain_id,
            "event": event.event,
            "patient": event.patient_key,
            "prev": event.prev_hash,
            "seq": event.seq,
        }
    )
    import hashlib

    assert event.hash == hashlib.sha256(material.encode()).hexdigest()
    assert event.hash == chain_hash(
        chain_id=event.chain_id,
        seq=1,
        prev_hash=GENESIS_HASH,
        patient_key="p1",
        event_json=canonical_json(event.event),
    )


def test_envelope_round_trip_survives_key_order_and_unicode(outbox, engine):
    [event] = _append(outbox, engine, 1, patient="pä-1")
    raw = json.loads(event.to_json())
    shuffled = json.dumps(dict(reversed(list(raw.items()))), ensure_ascii=True, indent=2)
    again = ChainedEvent.from_json(shuffled)
    assert again == event and again.intact


def test_rolled_back_append_leaves_no_gap(outbox, engine):
    _append(outbox, engine, 2)
    events = build_audit_events(read_ctx("p1", "gone"), observer=OBSERVER)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        outbox.append(conn, events)
        raise RuntimeError("the audited write failed")
    more = _append(outbox, engine, 1)
    assert more[0].seq == 3
    assert verify(outbox.events()).ok


def test_concurrent_appends_stay_gapless(outbox, engine):
    errors = []

    def worker(n: int) -> None:
        try:
            _append(outbox, engine, 15, patient=f"p{n}")
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = list(outbox.events())
    assert [e.seq for e in stored] == list(range(1, 61))
    assert verify(stored).ok


def _fixture_events(outbox, engine) -> list[ChainedEvent]:
    return [ChainedEvent.from_json(e.to_json()) for e in _append(outbox, engine, 10)]


def test_verify_detects_deleted_event(outbox, engine):
    events = _fixture_events(outbox, engine)
    del events[4]
    report = verify(events)
    assert not report.ok
    assert report.chains["chain-a"].missing == [(5, 5)]
    assert "chain chain-a: missing seq 5" in report.describe()


def test_verify_detects_deleted_first_events(outbox, engine):
    events = _fixture_events(outbox, engine)[3:]
    assert verify(events).chains["chain-a"].missing == [(1, 3)]
    assert verify(events, start_seq=None).ok


def test_verify_detects_reordered_events(outbox, engine):
    events = _fixture_events(outbox, engine)
    events[3], events[6] = events[6], events[3]
    chain = verify(events).chains["chain-a"]
    assert not chain.ok
    assert chain.reordered == [4, 5, 6]
    assert not chain.missing and not chain.altered


def test_verify_judges_order_per_kafka_partition(outbox, engine):
    events = _fixture_events(outbox, engine)
    # Two partitions interleaved: each rises on its own, which is fine.
    odd = [dataclasses.replace(e, partition=1) for e in events if e.seq % 2]
    even = [dataclasses.replace(e, partition=0) for e in events if not e.seq % 2]
    assert verify(even + odd).ok
    # Within one partition a lower seq after a higher one is a reorder.
    assert verify(list(reversed(even)) + odd).chains["chain-a"].reordered == [2, 4, 6, 8]


def test_verify_detects_altered_event(outbox, engine):
    events = _fixture_events(outbox, engine)
    tampered = json.loads(events[2].to_json())
    tampered["event"]["outcome"] = "4"
    events[2] = ChainedEvent.from_json(json.dumps(tampered))
    chain = verify(events).chains["chain-a"]
    assert chain.altered == [3]
    assert "chain chain-a: seq 3 altered" in verify(events).describe()


def test_verify_detects_replaced_event_with_recomputed_hash(outbox, engine):
    events = _fixture_events(outbox, engine)
    forged = dict(events[5].event, outcome="4")
    forged_hash = chain_hash(
        chain_id="chain-a",
        seq=6,
        prev_hash=events[5].prev_hash,
        patient_key="p1",
        event_json=canonical_json(forged),
    )
    events[5] = dataclasses.replace(events[5], event=forged, hash=forged_hash)
    chain = verify(events).chains["chain-a"]
    assert chain.altered == []
    assert chain.broken_links == [7]


def test_verify_counts_duplicates_and_flags_conflicts(outbox, engine):
    events = _fixture_events(outbox, engine)
    impostor = dataclasses.replace(events[1], event_id="someone-else")
    report = verify([*events, events[0], events[1], impostor])
    chain = report.chains["chain-a"]
    assert chain.duplicates == 2
    assert chain.conflicts == [2]
    assert not report.ok


def test_from_json_rejects_non_envelopes():
    with pytest.raises(ValueError, match="not an audit envelope"):
        ChainedEvent.from_json('{"resourceType": "AuditEvent"}')
    with pytest.raises(ValueError, match="not an audit envelope"):
        ChainedEvent.from_json(b"\x00garbage")
