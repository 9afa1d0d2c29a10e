"""SIGKILL the broker while 10,000 reads are audited: nothing is lost, duplicated or reordered."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
from collections import defaultdict

from his_sdk.audit import (
    Archiver,
    AuditArchive,
    AuditSettings,
    AuditTrail,
    KafkaSettings,
    make_engine,
    verify,
)
from his_sdk.testing import TansuBroker
from tests.his_sdk.audit.audit_helpers import broker_outage, read_ctx

READS = 10_000
PATIENTS = 50
WAVE = 500
KILL_AFTER_WAVE = 6


async def wait_for(predicate, what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@broker_outage
async def test_broker_killed_mid_stream_then_republished(tmp_path):
    broker = TansuBroker.start()
    kafka = KafkaSettings(
        bootstrap_servers=[broker.bootstrap_servers],
        partitions=3,
        delivery_timeout_seconds=3.0,
        request_timeout_seconds=1.0,
    )
    settings = AuditSettings(
        outbox_url=f"sqlite:///{tmp_path}/gateway.db",
        instance_id="gw-kill",
        kafka=kafka,
        publish_interval_seconds=0.05,
        publish_retry_max_seconds=0.5,
        write_interval_seconds=0.01,
    )
    archive_engine = make_engine(f"sqlite:///{tmp_path}/archive.db")
    store = AuditArchive(archive_engine)
    store.create()
    archiver = Archiver(store, kafka, check_interval=0.5)
    stop = threading.Event()
    archive_errors: list[BaseException] = []

    def archive() -> None:
        try:
            archiver.run(stop=stop)
        except BaseException as exc:
            archive_errors.append(exc)

    archive_thread = threading.Thread(target=archive, name="test-archiver")
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    requests_by_patient: dict[str, list[str]] = defaultdict(list)
    try:
        async with AuditTrail(settings) as trail:
            archive_thread.start()

            async def read(i: int) -> None:
                patient = f"p{i % PATIENTS}"
                requests_by_patient[patient].append(f"req-{i}")
                await trail.record(read_ctx(patient, f"obs-{i}", request_id=f"req-{i}"))

            for wave in range(READS // WAVE):
                await asyncio.gather(*(read(i) for i in range(wave * WAVE, (wave + 1) * WAVE)))
                if wave == KILL_AFTER_WAVE:
                    await wait_for(lambda: store.count() > 0, "the archive to start")
                    broker.kill()
                await asyncio.sleep(0.01)

            # Reads went on while the broker was dead; the outbox holds the backlog.
            await asyncio.to_thread(trail.flush)
            await wait_for(lambda: trail.health().status == "degraded", "the outage to show")
            outage = trail.health()
            assert outage.backlog > 0
            assert outage.publisher_error is not None
            assert trail.outbox.head()[0] == READS

            broker.restart()  # in-memory storage: the broker comes back empty
            republished = trail.republish(since)
            assert republished > 0
            await wait_for(lambda: trail.health().backlog == 0, "the outbox to drain")
            assert trail.health().status == "serving"

        await wait_for(lambda: store.count() >= READS, "the archive to catch up")
        await asyncio.sleep(1.0)  # late duplicates still arriving must change nothing
    finally:
        stop.set()
        if archive_thread.is_alive():
            archive_thread.join(30)
        broker.stop()
    assert archive_errors == []

    archived = list(store.events())
    archive_engine.dispose()
    # Every event exactly once.
    assert len(archived) == READS
    assert len({e.event_id for e in archived}) == READS
    assert sorted(str(e.request_id) for e in archived) == sorted(f"req-{i}" for i in range(READS))
    assert archiver.stats.duplicates > 0
    assert archiver.stats.resets >= 1
    # The chain is intact and every event was verified on arrival.
    report = verify(archived)
    assert report.ok, report.describe()[:10]
    assert report.chains["gw-kill"].count == READS
    assert store.status_counts() == {"ok": READS}
    # Per-patient order: each patient's events, in chain order, are its reads in call order.
    by_patient: dict[str | None, list[str | None]] = defaultdict(list)
    for event in sorted(archived, key=lambda e: e.seq):
        by_patient[event.patient_key].append(event.request_id)
    assert by_patient == requests_by_patient
