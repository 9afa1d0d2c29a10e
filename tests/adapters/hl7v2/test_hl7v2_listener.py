import asyncio
import contextlib
import datetime as dt
import ipaddress

import pytest
import sqlalchemy as sa
from hl7v2_helpers import Client, adt, hl7, sample

from adapters.hl7v2 import MessageFilter, MessageStatus, parse_message, read_ack
from adapters.hl7v2._mllp import END_BLOCK, START_BLOCK


async def test_aa_only_after_durable_store(adapter, client):
    reply = await client.send(adt("C100"))
    ack = read_ack(reply)
    assert (ack.code, ack.control_id) == ("AA", "C100")
    # The ACK is sent after commit: a fresh connection sees the row and its resources.
    rows = await adapter.find_messages(MessageFilter(control_id="C100"))
    assert [r.status for r in rows] == [MessageStatus.CONVERTED]
    assert rows[0].ack_code == "AA"
    msh = parse_message(reply).msh
    assert msh.get(9) == "ACK" and msh.get(9, 2) == "A01" and msh.get(5) == "SENDAPP"


async def test_pipelined_messages_answered_in_order(adapter, client):
    await client.conn.connect()
    for i in range(30):
        await client.conn.send(adt(f"P{i}", mrn=f"M{i % 5}"))
    ids = [read_ack(await client.conn.receive(10)).control_id for _ in range(30)]
    assert ids == [f"P{i}" for i in range(30)]
    assert len(await adapter.find_messages(limit=100)) == 30


async def test_duplicate_acknowledged_not_applied(adapter, client):
    assert read_ack(await client.send(adt("D1"))).code == "AA"
    page = await adapter.search(_query("Patient"))
    version = page.resources[0].meta.versionId
    ack = read_ack(await client.send(adt("D1")))
    assert ack.code == "AA" and "duplicate" in ack.text
    rows = await adapter.find_messages(MessageFilter(control_id="D1"))
    assert [r.status for r in rows] == [MessageStatus.CONVERTED, MessageStatus.DUPLICATE]
    assert rows[1].duplicate_of == rows[0].id
    assert (await adapter.search(_query("Patient"))).resources[0].meta.versionId == version


@pytest.mark.parametrize(
    ("message", "code", "err"),
    [
        (adt("V1", version="3.0"), "AR", "203"),
        (hl7("MSH|^~\\&|A|B|C|D|2024||BAR^P01|U1|P|2.5", "PID|1||1"), "AR", "200"),
        (hl7("MSH|^~\\&|A|B|C|D|2024||ADT^A99|U2|P|2.5", "PID|1||1"), "AR", "201"),
        (hl7("MSH|^~\\&|A|B|C|D|2024||ADT^A01||P|2.5", "PID|1||1"), "AR", "101"),
    ],
)
async def test_rejects(adapter, client, message, code, err):
    reply = await client.send(message)
    ack = read_ack(reply)
    assert ack.code == code
    assert parse_message(reply).first("ERR").get(3) == err
    assert ack.control_id == parse_message(message).control_id


async def test_garbage_gets_ar_not_a_closed_socket(adapter, client):
    ack = read_ack(await client.send(b"HELLO WORLD"))
    assert ack.code == "AR"
    # The connection stays usable.
    assert read_ack(await client.send(adt("after-garbage"))).code == "AA"


async def test_conversion_failure_ae_dead_letter_and_replay(adapter, client):
    bad = hl7("MSH|^~\\&|A|B|C|D|2024||ADT^A01|F1|P|2.5", "PID|1||||Doe^J")
    reply = await client.send(bad)
    ack = read_ack(reply)
    assert ack.code == "AE" and "PID-3" in ack.text
    assert parse_message(reply).first("ERR").get(3) == "207"
    # The failed message does not block the next one.
    assert read_ack(await client.send(adt("F2"))).code == "AA"
    dead = await adapter.dead_letters()
    assert [d.control_id for d in dead] == ["F1"] and "PID-3" in dead[0].error
    again = await adapter.replay([dead[0].id])
    assert again == {dead[0].id: MessageStatus.FAILED}
    ok = (await adapter.find_messages(MessageFilter(control_id="F2")))[0]
    assert await adapter.replay([ok.id]) == {ok.id: MessageStatus.CONVERTED}
    assert (await adapter.find_messages(MessageFilter(control_id="F2")))[0].attempts == 2


async def test_oversized_frame_rejected_with_control_id(make_adapter):
    adapter = await make_adapter(listen={"host": "127.0.0.1", "port": 0, "max_message_bytes": 2000})
    client = Client(adapter.listener_port)
    big = adt("BIG1", extra="NTE|1||" + "x" * 5000)
    ack = read_ack(await client.send(big))
    assert (ack.code, ack.control_id) == ("AR", "BIG1")
    assert read_ack(await client.send(adt("SMALL"))).code == "AA"
    await client.close()


async def test_enhanced_mode_commit_acks(adapter, client):
    reply = await client.send(adt("E1", msh15="AL", msh16="NE"))
    assert read_ack(reply).code == "CA"
    await client.conn.connect()
    await client.conn.send(adt("E2", msh15="NE", msh16="NE"))
    with pytest.raises(TimeoutError):
        await client.conn.receive(0.5)
    await client.close()
    # Commit-mode messages are converted after the ACK, in the background.
    for _ in range(50):
        rows = await adapter.find_messages(MessageFilter(status=MessageStatus.CONVERTED))
        if len(rows) == 2:
            break
        await asyncio.sleep(0.1)
    assert sorted(r.control_id for r in rows) == ["E1", "E2"]


async def test_deferred_conversion_mode(make_adapter):
    adapter = await make_adapter(convert_before_ack=False)
    client = Client(adapter.listener_port)
    assert read_ack(await client.send(adt("DEF1"))).code == "AA"
    for _ in range(50):
        rows = await adapter.find_messages(MessageFilter(control_id="DEF1"))
        if rows[0].status is MessageStatus.CONVERTED:
            break
        await asyncio.sleep(0.1)
    assert rows[0].status is MessageStatus.CONVERTED
    await client.close()


async def test_store_unavailable_answers_ae(adapter, client):
    with adapter.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE hl7_message"))
    reply = await client.send(adt("S1"))
    ack = read_ack(reply)
    assert ack.code == "AE" and "store unavailable" in ack.text
    metrics = await _metrics_without_store(adapter)
    assert metrics["hl7v2_store_failures_total"] >= 1


async def _metrics_without_store(adapter):
    return adapter._processor.metrics.snapshot()


async def test_allowed_peers_refuses_others(make_adapter):
    adapter = await make_adapter(
        listen={"host": "127.0.0.1", "port": 0, "allowed_peers": ["10.0.0.0/8"]}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.listener_port)
    try:
        writer.write(START_BLOCK + adt("X") + END_BLOCK)
        assert await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        pass  # refused before reading: a reset is as good as an orderly close
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    assert ipaddress.ip_address("127.0.0.1") not in ipaddress.ip_network("10.0.0.0/8")
    assert (await adapter.metrics())["hl7v2_connections_refused_total"] == 1


async def test_idle_timeout_closes(make_adapter):
    adapter = await make_adapter(
        listen={"host": "127.0.0.1", "port": 0, "idle_timeout_seconds": 0.3}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.listener_port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()


async def test_frames_split_across_reads_and_junk_between(adapter):
    reader, writer = await asyncio.open_connection("127.0.0.1", adapter.listener_port)
    data = b"\r\n" + START_BLOCK + adt("S-1") + END_BLOCK + b"\n" + START_BLOCK + adt("S-2")
    data += END_BLOCK
    for i in range(0, len(data), 7):
        writer.write(data[i : i + 7])
        await writer.drain()
    replies = []
    for _ in range(2):
        chunk = await asyncio.wait_for(reader.readuntil(END_BLOCK), 5)
        replies.append(read_ack(chunk[1:-2]).control_id)
    assert replies == ["S-1", "S-2"]
    writer.close()
    await writer.wait_closed()


async def test_message_search_and_metrics(adapter, client):
    await client.send(sample("LAB-ORU-1.hl7"))
    await client.send(adt("M1", mrn="PX"))
    rows = await adapter.find_messages(MessageFilter(message_code="ORU", trigger_event="R01"))
    assert len(rows) == 1 and rows[0].raw is None
    rows = await adapter.find_messages(MessageFilter(patient_id="PX"))
    assert [r.control_id for r in rows] == ["M1"]
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert len(await adapter.find_messages(MessageFilter(received_from=since))) == 2
    metrics = await adapter.metrics()
    assert metrics["hl7v2_messages_received_total"] == 2
    assert metrics["hl7v2_stored_converted"] == 2
    assert metrics["hl7v2_ack_latency_p99_seconds"] > 0


def _query(resource_type, count=50, **kwargs):
    from his_sdk.search import SearchQuery

    return SearchQuery(resource_type, count=count, **kwargs)
