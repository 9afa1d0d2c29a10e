import asyncio

import sqlalchemy as sa
from hl7v2_helpers import Client, adt, hl7

from adapters.hl7v2 import MessageFilter, MessageStatus, read_ack
from adapters.hl7v2._store import IngestItem


async def _send_concurrently(adapter, messages):
    clients = [Client(adapter.listener_port) for _ in messages]
    try:
        replies = await asyncio.gather(*(c.send(m) for c, m in zip(clients, messages, strict=True)))
    finally:
        for c in clients:
            await c.close()
    return [read_ack(r) for r in replies]


async def test_store_failure_mid_batch_no_aa_for_unstored(adapter, monkeypatch):
    store = adapter.store
    real_apply = store._apply_outputs
    calls = []

    def failing_apply(conn, writes):
        # The message rows of the batch are already inserted when the store goes away.
        calls.append(len(writes))
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(store, "_apply_outputs", failing_apply)
    acks = await _send_concurrently(adapter, [adt(f"G{i}", mrn=f"M{i}") for i in range(6)])
    assert calls
    assert [a.code for a in acks] == ["AE"] * 6
    assert all("store unavailable" in a.text for a in acks)
    # The batch rolled back: nothing of it is stored, so nothing was acknowledged with AA.
    assert await adapter.find_messages(MessageFilter()) == []

    monkeypatch.setattr(store, "_apply_outputs", real_apply)
    acks = await _send_concurrently(adapter, [adt(f"G{i}", mrn=f"M{i}") for i in range(6)])
    assert [a.code for a in acks] == ["AA"] * 6
    rows = await adapter.find_messages(MessageFilter())
    assert sorted(r.control_id for r in rows) == [f"G{i}" for i in range(6)]
    assert {r.status for r in rows} == {MessageStatus.CONVERTED}


def _item(raw: bytes, control_id: str) -> IngestItem:
    return IngestItem(
        raw=raw,
        channel="default",
        sending_application="SENDAPP",
        sending_facility="SENDFAC",
        control_id=control_id,
        message_code="ADT",
        trigger_event="A01",
    )


async def test_one_batch_folds_writes_in_order_and_detects_duplicates(adapter):
    store = adapter.store
    newer = adt("B1", extra="").replace(b"20240102030405+0000", b"20240301000000+0000", 1)
    older = adt("B2").replace(b"Doe^Jane", b"Old^Name")
    batch = [
        _item(adt("B0"), "B0"),
        _item(newer.replace(b"Doe^Jane", b"New^Name"), "B1"),
        _item(older, "B2"),
        _item(adt("B0"), "B0"),
    ]
    results = store.ingest(batch, adapter.convert_raw, "v1")
    assert [r.status for r in results] == [
        MessageStatus.CONVERTED,
        MessageStatus.CONVERTED,
        MessageStatus.CONVERTED,
        MessageStatus.DUPLICATE,
    ]
    assert results[3].duplicate_of == results[0].message_id
    assert results[3].original_ack_code == "AA"
    # B2 is older (MSH-7) than B1: it must not overwrite what B1 wrote.
    assert results[2].resources < results[1].resources
    patients, _ = store.search_resources(
        "Patient", [], after_id=None, limit=10, include_total=False
    )
    assert len(patients) == 1
    patient = patients[0]
    assert patient.content["name"][0]["family"] == "New"
    assert patient.version_id == 2
    assert patient.content["meta"]["versionId"] == "2"

    # The search index holds only the latest content.
    def family(value):
        return [
            sa.text(
                "EXISTS (SELECT 1 FROM hl7_search s WHERE s.resource_id = hl7_resource.resource_id"
                f" AND s.param = 'family' AND s.value = '{value}')"
            )
        ]

    for value, expected in (("new", 1), ("doe", 0), ("old", 0)):
        found, _ = store.search_resources(
            "Patient", family(value), after_id=None, limit=10, include_total=False
        )
        assert len(found) == expected, value


async def test_deferred_conversion_in_worker_process(make_adapter):
    adapter = await make_adapter(convert_before_ack=False, conversion_processes=1)
    bad = hl7("MSH|^~\\&|A|B|C|D|2024||ADT^A01|W0|P|2.5", "PID|1||||Doe^J")
    messages = [bad] + [adt(f"W{i}", mrn=f"M{i % 3}") for i in range(1, 8)]
    acks = await _send_concurrently(adapter, messages)
    # AA once stored: a mapping failure can no longer be answered AE.
    assert [a.code for a in acks] == ["AA"] * 8
    for _ in range(200):
        rows = await adapter.find_messages(MessageFilter())
        if len(rows) == 8 and all(r.status is not MessageStatus.RECEIVED for r in rows):
            break
        await asyncio.sleep(0.05)
    status = {r.control_id: r.status for r in rows}
    assert status.pop("W0") is MessageStatus.FAILED
    assert set(status.values()) == {MessageStatus.CONVERTED}
    dead = await adapter.dead_letters()
    assert [d.control_id for d in dead] == ["W0"] and "PID-3" in (dead[0].error or "")
    patients, _ = adapter.store.search_resources(
        "Patient", [], after_id=None, limit=10, include_total=False
    )
    assert len(patients) == 3
