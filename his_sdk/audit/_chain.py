"""Tamper evidence: the per-instance hash chain over AuditEvents, and its verification.

Every event carries its chain id, a gapless sequence number, the hash of the previous event of
its chain and its own hash::

    hash = sha256(canonical_json({"chain": chain_id, "event": <AuditEvent>,
                                  "patient": patient_key, "prev": prev_hash, "seq": seq}))

where ``canonical_json`` sorts keys, uses no whitespace and keeps non-ASCII characters
(UTF-8), and the first event of a chain has ``prev`` = 64 zeros. A deleted event leaves a gap
in the sequence, a reordered one arrives after a higher sequence number, and an altered one no
longer matches its hash (or breaks the next event's ``prev``).

The chain proves integrity relative to a trusted copy of its head: someone able to rewrite the
outbox *and* every copy downstream could rebuild a consistent chain. The archive keeps an
independent copy, which is what makes rewriting detectable.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GENESIS_HASH",
    "ChainReport",
    "ChainedEvent",
    "VerifyReport",
    "canonical_json",
    "chain_hash",
    "verify",
]

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first event of every chain."""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace and literal non-ASCII characters."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(
    *, chain_id: str, seq: int, prev_hash: str, patient_key: str | None, event_json: str
) -> str:
    """The SHA-256 (hex) of one chain link.

    Args:
        chain_id: The chain.
        seq: The event's sequence number in the chain (from 1).
        prev_hash: The previous event's hash (``GENESIS_HASH`` for seq 1).
        patient_key: The patient the event is about, or None.
        event_json: ``canonical_json`` of the AuditEvent.
    """
    # Equal to canonical_json of the dict in the module docstring, built without re-encoding
    # the event: its keys "chain" < "event" < "patient" < "prev" < "seq" are already sorted.
    material = (
        f'{{"chain":{canonical_json(chain_id)},"event":{event_json},'
        f'"patient":{canonical_json(patient_key)},"prev":{canonical_json(prev_hash)},'
        f'"seq":{seq}}}'
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    """An AuditEvent with its place in the hash chain: what travels on Kafka.

    Attributes:
        event_id: The AuditEvent id.
        chain_id: The chain (a gateway instance).
        seq: Position in the chain, from 1, without gaps.
        prev_hash: Hash of the event before it in the chain.
        hash: This event's hash.
        patient_key: The patient it is about (the Kafka key), or None.
        event: The AuditEvent as a dict.
        partition: The Kafka partition it was read from, if it came from Kafka.
        offset: The Kafka offset it was read from, if it came from Kafka.
    """

    event_id: str
    chain_id: str
    seq: int
    prev_hash: str
    hash: str
    patient_key: str | None
    event: dict[str, Any]
    partition: int | None = field(default=None, compare=False)
    offset: int | None = field(default=None, compare=False)

    def computed_hash(self) -> str:
        """The hash this event's content should have."""
        return chain_hash(
            chain_id=self.chain_id,
            seq=self.seq,
            prev_hash=self.prev_hash,
            patient_key=self.patient_key,
            event_json=canonical_json(self.event),
        )

    @property
    def intact(self) -> bool:
        """Whether the content matches the stored hash."""
        return self.computed_hash() == self.hash

    def to_json(self) -> str:
        """The envelope: the Kafka message value and one line of an NDJSON export."""
        return envelope_json(
            event_id=self.event_id,
            chain_id=self.chain_id,
            seq=self.seq,
            prev_hash=self.prev_hash,
            hash=self.hash,
            patient_key=self.patient_key,
            event_json=canonical_json(self.event),
        )

    @classmethod
    def from_json(
        cls, data: str | bytes, *, partition: int | None = None, offset: int | None = None
    ) -> ChainedEvent:
        """Parse an envelope written by :meth:`to_json`.

        Raises:
            ValueError: Not a well-formed envelope.
        """
        try:
            raw = json.loads(data)
            return cls(
                event_id=str(raw["event_id"]),
                chain_id=str(raw["chain_id"]),
                seq=int(raw["seq"]),
                prev_hash=str(raw["prev_hash"]),
                hash=str(raw["hash"]),
                patient_key=None if raw["patient"] is None else str(raw["patient"]),
                event=dict(raw["event"]),
                partition=partition,
                offset=offset,
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an audit envelope: {exc}") from exc

    # Accessors used by filters, exports and the archive; they read the AuditEvent itself.

    @property
    def action(self) -> str:
        """``AuditEvent.action`` (C, R, U, D, E)."""
        return str(self.event.get("action", ""))

    @property
    def subtype(self) -> str:
        """The restful-interaction code (``read``, ``search-type``, ...)."""
        subtypes = self.event.get("subtype") or [{}]
        return str(subtypes[0].get("code", ""))

    @property
    def outcome(self) -> str:
        """``AuditEvent.outcome`` (0, 4, 8, 12)."""
        return str(self.event.get("outcome", ""))

    @property
    def recorded(self) -> datetime.datetime:
        """``AuditEvent.recorded`` as an aware datetime."""
        return datetime.datetime.fromisoformat(str(self.event["recorded"]))

    @property
    def client_id(self) -> str | None:
        """The agent's client id: the DICOM-typed agent that is not the observing server."""
        observer = self._observer_id
        for agent in self.event.get("agent", []):
            codes = {c.get("code") for c in agent.get("type", {}).get("coding", [])}
            if codes & {"110152", "110153"}:
                value = agent.get("who", {}).get("identifier", {}).get("value")
                if value is not None and value != observer:
                    return str(value)
        return None

    @property
    def user(self) -> str | None:
        """The requesting user's FHIR reference or subject, if a user was involved."""
        for agent in self.event.get("agent", []):
            codes = {c.get("code") for c in agent.get("type", {}).get("coding", [])}
            if agent.get("requestor") and not codes & {"110152", "110153"}:
                who = agent.get("who", {})
                value = who.get("reference") or who.get("identifier", {}).get("value")
                return None if value is None else str(value)
        return None

    @property
    def resource(self) -> str | None:
        """The reference of the data entity, or the searched type for queries."""
        for entity in self.event.get("entity", []):
            role = entity.get("role", {}).get("code")
            if role == "4":
                what = entity.get("what", {})
                value = what.get("reference") or what.get("type")
                return None if value is None else str(value)
            if role == "24":
                value = entity.get("description")
                return None if value is None else str(value)
        return None

    @property
    def request_id(self) -> str | None:
        """The request id of the transaction entity, if recorded."""
        for entity in self.event.get("entity", []):
            if entity.get("type", {}).get("code") == "XrequestId":
                value = entity.get("what", {}).get("identifier", {}).get("value")
                return None if value is None else str(value)
        return None

    @property
    def _observer_id(self) -> str | None:
        value = self.event.get("source", {}).get("observer", {}).get("identifier", {})
        return value.get("value") if isinstance(value, dict) else None


def envelope_json(
    *,
    event_id: str,
    chain_id: str,
    seq: int,
    prev_hash: str,
    hash: str,
    patient_key: str | None,
    event_json: str,
) -> str:
    """The envelope of an event whose AuditEvent is already serialised as ``event_json``."""
    return (
        f'{{"v":1,"event_id":{canonical_json(event_id)},"chain_id":{canonical_json(chain_id)},'
        f'"seq":{seq},"prev_hash":{canonical_json(prev_hash)},"hash":{canonical_json(hash)},'
        f'"patient":{canonical_json(patient_key)},"event":{event_json}}}'
    )


@dataclass
class ChainReport:
    """What :func:`verify` found in one chain.

    Attributes:
        chain_id: The chain.
        count: Distinct events seen.
        first_seq: Lowest sequence number seen.
        last_seq: Highest sequence number seen.
        missing: Inclusive ranges of sequence numbers never seen (deleted or lost events).
        reordered: Sequence numbers that arrived after a higher one from the same source
            (the same Kafka partition, or the same file).
        altered: Sequence numbers whose content does not match their hash.
        broken_links: Sequence numbers whose ``prev_hash`` is not the hash of the event before
            (that event was replaced, or this one was moved).
        conflicts: Sequence numbers seen with two different events.
        duplicates: Identical copies of events already seen (producer retries, republish).
    """

    chain_id: str
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    missing: list[tuple[int, int]] = field(default_factory=list)
    reordered: list[int] = field(default_factory=list)
    altered: list[int] = field(default_factory=list)
    broken_links: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    duplicates: int = 0

    @property
    def ok(self) -> bool:
        """No gap, reorder, alteration, broken link or conflict."""
        return not (
            self.missing or self.reordered or self.altered or self.broken_links or self.conflicts
        )

    def describe(self) -> list[str]:
        """Human-readable findings, one per line (empty when ``ok``)."""
        lines = []
        for low, high in self.missing:
            span = str(low) if low == high else f"{low}-{high}"
            lines.append(f"chain {self.chain_id}: missing seq {span}")
        lines.extend(f"chain {self.chain_id}: seq {s} out of order" for s in self.reordered)
        lines.extend(f"chain {self.chain_id}: seq {s} altered" for s in self.altered)
        lines.extend(
            f"chain {self.chain_id}: seq {s} does not link to seq {s - 1}"
            for s in self.broken_links
        )
        lines.extend(
            f"chain {self.chain_id}: seq {s} seen with different content" for s in self.conflicts
        )
        return lines


@dataclass
class VerifyReport:
    """What :func:`verify` found, per chain."""

    chains: dict[str, ChainReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every chain is intact."""
        return all(report.ok for report in self.chains.values())

    @property
    def count(self) -> int:
        """Distinct events seen across chains."""
        return sum(report.count for report in self.chains.values())

    def describe(self) -> list[str]:
        """Every finding, one per line (empty when ``ok``)."""
        return [line for cid in sorted(self.chains) for line in self.chains[cid].describe()]


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for n in numbers:
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1] = (ranges[-1][0], n)
        else:
            ranges.append((n, n))
    return ranges


def verify(events: Iterable[ChainedEvent], *, start_seq: int | None = 1) -> VerifyReport:
    """Check chains for gaps, reorders and alterations.

    Events may come in any mix of chains. Order is judged per source: events read from Kafka
    carry their partition and must rise within it; events without a partition (an export
    file) must rise within their chain.

    Args:
        events: The events, in the order they were read.
        start_seq: The first sequence number each chain must have (1: complete chains from
            their start). None accepts any start, for windows such as a topic whose retention
            already dropped older events; the first event's link is then not checked.

    Returns:
        One report per chain.
    """
    report = VerifyReport()
    by_chain: dict[str, dict[int, ChainedEvent]] = {}
    high_water: dict[tuple[str, int | None], int] = {}
    seen_ids: dict[str, str] = {}
    for ev in events:
        chain = report.chains.setdefault(ev.chain_id, ChainReport(ev.chain_id))
        if seen_ids.get(ev.event_id) == ev.hash:
            chain.duplicates += 1
            continue
        seen_ids[ev.event_id] = ev.hash
        links = by_chain.setdefault(ev.chain_id, {})
        known = links.get(ev.seq)
        if known is not None:
            if ev.seq not in chain.conflicts:
                chain.conflicts.append(ev.seq)
            continue
        links[ev.seq] = ev
        scope = (ev.chain_id, ev.partition)
        if ev.seq < high_water.get(scope, 0):
            chain.reordered.append(ev.seq)
        high_water[scope] = max(ev.seq, high_water.get(scope, 0))
        if not ev.intact:
            chain.altered.append(ev.seq)

    for chain_id, links in by_chain.items():
        chain = report.chains[chain_id]
        seqs = sorted(links)
        chain.count = len(seqs)
        chain.first_seq, chain.last_seq = seqs[0], seqs[-1]
        first = chain.first_seq if start_seq is None else min(start_seq, chain.first_seq)
        present = set(seqs)
        chain.missing = _ranges([n for n in range(first, chain.last_seq + 1) if n not in present])
        for seq in seqs:
            ev = links[seq]
            before = links.get(seq - 1)
            expected = GENESIS_HASH if seq == 1 else None if before is None else before.hash
            if expected is not None and ev.prev_hash != expected:
                chain.broken_links.append(seq)
        chain.altered.sort()
        chain.reordered.sort()
    return report
