"""The AuditTrail: reads recorded in batches, writes fail closed, the publisher drains to Kafka."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest
import sqlalchemy as sa

from his_sdk.audit import (
    AuditAction,
    AuditContext,
    AuditOutcome,
    AuditSettings,
    AuditTrail,
    AuditUnavailableError,
    AuditUser,
    KafkaSettings,
    Outbox,
    Publisher,
    read_topic,
    verify,
)
from tests.his_sdk.audit.audit_helpers import PRINCIPAL, broker_outage, read_ctx

ORDERS = sa.Table(
    "legacy_orders",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("patient", sa.String(64)),
)


def write_ctx(order_id: int) -> AuditContext:
    return AuditContext(
        action=AuditAction.CREATE,
        principal=PRINCIPAL,
        resource_type="MedicationRequest",
        resource_ids=(str(order_id),),
        patient_ids=("p1",),
        approvers=(AuditUser("rev-1", "Practitioner/rev1"),),
        request_id=f"req-{order_id}",
        client_address="10.0.0.5",
    )


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


async def async_wait_until(predicate, within: float = 20.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {within} s")


def _fail_outbox_inserts(engine: sa.Engine) -> None:
    """Make every outbox insert fail inside the database, as a full disk or revoked grant would."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER audit_outbox_broken BEFORE INSERT ON his_audit_outbox "
                "BEGIN SELECT RAISE(ABORT, 'outbox unavailable'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION audit_outbox_broken() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'outbox unavailable'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER audit_outbox_broken BEFORE INSERT ON his_audit_outbox "
                "FOR EACH ROW EXECUTE FUNCTION audit_outbox_broken()"
            )


def _repair_outbox_inserts(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER audit_outbox_broken"
            + ("" if engine.dialect.name == "sqlite" else " ON his_audit_outbox")
        )


def test_write_whose_outbox_insert_fails_is_rolled_back_and_reported(audit_settings, engine):
    ORDERS.metadata.create_all(engine)
    trail = AuditTrail(audit_settings, engine=engine, publish=False)
    trail.start()
    try:
        with engine.begin() as conn:
            conn.execute(ORDERS.insert().values(id=1, patient="p1"))
            trail.append(conn, write_ctx(1))
        _fail_outbox_inserts(engine)
        with pytest.raises(AuditUnavailableError, match="not committed") as info:
            with engine.begin() as conn:
                conn.execute(ORDERS.insert().values(id=2, patient="p1"))
                trail.append(conn, write_ctx(2))
        assert isinstance(info.value.__cause__, sa.exc.SQLAlchemyError)
        assert "p1" not in str(info.value)
        with engine.connect() as conn:
            assert conn.execute(sa.select(ORDERS.c.id)).scalars().all() == [1]
        assert trail.outbox.head()[0] == 1
        _repair_outbox_inserts(engine)
        with engine.begin() as conn:
            conn.execute(ORDERS.insert().values(id=3, patient="p1"))
            [event] = trail.append(conn, write_ctx(3))
        assert event.seq == 2
        assert verify(trail.outbox.events()).ok
    finally:
        trail.close()


def test_write_event_commits_only_with_the_write(audit_settings, engine):
    ORDERS.metadata.create_all(engine)
    trail = AuditTrail(audit_settings, engine=engine, publish=False)
    trail.start()
    try:
        with pytest.raises(ZeroDivisionError), engine.begin() as conn:
            trail.append(conn, write_ctx(1))
            conn.execute(ORDERS.insert().values(id=1, patient="p1"))
            _ = 1 / 0
        assert trail.outbox.head()[0] == 0
        assert list(trail.outbox.events()) == []
    finally:
        trail.close()


async def test_reads_are_published_to_kafka_keyed_by_patient(audit_settings):
    async with AuditTrail(audit_settings) as trail:
        for i in range(30):
            await trail.record(read_ctx(f"p{i % 3}", f"obs-{i}", request_id=f"r{i}"))
        await asyncio.to_thread(trail.flush)
        await async_wait_until(lambda: trail.health().backlog == 0)
        health = trail.health()
        assert health.status == "serving"
        assert health.last_published_at is not None
    events = list(read_topic(audit_settings.kafka, audit_settings.kafka.bootstrap_servers))
    assert len(events) == 30
    assert verify(events).ok
    by_patient: dict[str | None, set[int | None]] = {}
    for event in events:
        by_patient.setdefault(event.patient_key, set()).add(event.partition)
    assert all(len(parts) == 1 for parts in by_patient.values())
    requests = [e.request_id for e in sorted(events, key=lambda e: e.seq)]
    assert requests == [f"r{i}" for i in range(30)]


async def test_committed_read_mode_waits_for_the_commit(audit_settings):
    settings = audit_settings.model_copy(update={"read_mode": "committed"})
    async with AuditTrail(settings, publish=False) as trail:
        await asyncio.gather(*(trail.record(read_ctx("p1", f"o{i}")) for i in range(20)))
        assert trail.health().queued == 0
        assert trail.outbox.head()[0] == 20


async def test_committed_read_fails_when_outbox_fails(audit_settings, engine):
    settings = audit_settings.model_copy(update={"read_mode": "committed"})
    async with AuditTrail(settings, engine=engine, publish=False) as trail:
        _fail_outbox_inserts(engine)
        with pytest.raises(AuditUnavailableError):
            await trail.record(read_ctx("p1", "o1"))
        assert trail.health().status == "failing"
        _repair_outbox_inserts(engine)
        await trail.record(read_ctx("p1", "o2"))
        assert trail.health().status == "serving"


async def test_buffered_reads_survive_an_outbox_outage(audit_settings, engine):
    async with AuditTrail(audit_settings, engine=engine, publish=False) as trail:
        _fail_outbox_inserts(engine)
        for i in range(5):
            await trail.record(read_ctx("p1", f"o{i}"))
        await async_wait_until(lambda: trail.health().status == "failing")
        _repair_outbox_inserts(engine)
        await asyncio.to_thread(trail.flush)
        assert trail.health().status == "serving"
        assert trail.outbox.head()[0] == 5


async def test_full_queue_refuses_reads(audit_settings, engine):
    settings = audit_settings.model_copy(
        update={"queue_size": 2, "write_batch_size": 2, "enqueue_timeout_seconds": 0.2}
    )
    async with AuditTrail(settings, engine=engine, publish=False) as trail:
        _fail_outbox_inserts(engine)
        with pytest.raises(AuditUnavailableError, match="queue is full"):
            for i in range(10):
                await trail.record(read_ctx("p1", f"o{i}"))
        _repair_outbox_inserts(engine)
        await asyncio.to_thread(trail.flush)


async def test_record_before_start_is_refused(audit_settings):
    trail = AuditTrail(audit_settings, publish=False)
    with pytest.raises(AuditUnavailableError, match="not running"):
        await trail.record(read_ctx("p1", "o1"))
    trail.engine.dispose()


async def test_disabled_trail_records_nothing(audit_settings):
    settings = audit_settings.model_copy(update={"enabled": False})
    async with AuditTrail(settings) as trail:
        await trail.record(read_ctx("p1", "o1"))
        with trail.engine.begin() as conn:
            assert trail.append(conn, write_ctx(1)) == []
        assert sa.inspect(trail.engine).get_table_names() == []


def test_sync_recording_and_denials(audit_settings):
    with AuditTrail(audit_settings, publish=False) as trail:
        trail.record_sync(
            AuditContext(
                action=AuditAction.READ,
                principal=PRINCIPAL,
                resource_type="Observation",
                resource_ids=("o9",),
                patient_ids=("p9",),
                outcome=AuditOutcome.MINOR_FAILURE,
                outcome_text="forbidden: no care relationship",
            )
        )
        trail.flush()
        [event] = list(trail.outbox.events())
        assert event.outcome == "4"
        assert event.event["outcomeDesc"] == "forbidden: no care relationship"


@broker_outage
def test_publisher_survives_unreachable_broker(db_url):
    settings = KafkaSettings(
        bootstrap_servers=["127.0.0.1:9"],
        topic="unreachable",
        delivery_timeout_seconds=1.0,
        request_timeout_seconds=0.5,
    )
    audit_settings = AuditSettings(outbox_url=db_url, instance_id="gw-x", kafka=settings)
    trail = AuditTrail(audit_settings, bootstrap_servers=settings.bootstrap_servers)
    trail.start()
    try:
        trail.record_sync(read_ctx("p1", "o1"))
        trail.flush()
        health = wait_until(lambda: (h := trail.health()).publisher_error and h)
        assert health.status == "degraded"
        assert health.backlog == 1
        assert health.oldest_unpublished_at is not None
    finally:
        trail.close()


def test_republish_and_purge(audit_settings, engine):
    outbox = Outbox(engine, chain_id="gw-test-1")
    outbox.create()
    publisher = Publisher(
        outbox,
        audit_settings.kafka,
        retention=datetime.timedelta(seconds=0),
    )
    try:
        with AuditTrail(audit_settings, engine=engine, publish=False) as trail:
            for i in range(10):
                trail.record_sync(read_ctx("p1", f"o{i}"))
            trail.flush()
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
        assert publisher.drain(10) == 10
        assert outbox.backlog() == 0
        assert publisher.republish(start) == 10
        assert outbox.backlog() == 10
        assert publisher.drain(10) == 10
        events = list(read_topic(audit_settings.kafka, audit_settings.kafka.bootstrap_servers))
        assert len(events) == 20
        report = verify(events)
        assert report.ok and report.count == 10 and report.chains["gw-test-1"].duplicates == 10
        assert publisher.purge() == 10
        assert list(outbox.events()) == []
        assert outbox.head()[0] == 10
    finally:
        publisher.stop()
