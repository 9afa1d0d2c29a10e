"""Audit throughput: AuditEvents per second appended to the outbox and drained to Kafka.

Runs against SQLite and PostgreSQL (when reachable) and a tansu broker started here (or the
brokers given with ``--bootstrap-servers``), and prints one table row per database::

    python bench/audit_throughput.py --events 50000
"""

from __future__ import annotations

import argparse
import datetime
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from his_sdk.audit import (
    AuditAction,
    AuditContext,
    AuditObserver,
    AuditPrincipal,
    AuditUser,
    KafkaSettings,
    Outbox,
    Publisher,
    build_audit_events,
    make_engine,
    read_topic,
)
from his_sdk.testing import TansuBroker

PRINCIPAL = AuditPrincipal(
    client_id="bench-agent",
    issuer="http://127.0.0.1/bench-issuer",
    token_id="jti-bench",
    user=AuditUser("user-1", "Practitioner/bench", "Dr Bench"),
    roles=("clinician",),
    purpose_of_use=("TREAT",),
)
OBSERVER = AuditObserver("gw-bench", site="bench-hospital", address="10.0.0.1")


@dataclass
class Row:
    backend: str
    events: int
    append_per_s: float
    publish_per_s: float
    verified: str


def _contexts(count: int) -> Iterator[AuditContext]:
    for i in range(count):
        yield AuditContext(
            action=AuditAction.READ,
            principal=PRINCIPAL,
            resource_type="Observation",
            resource_ids=(f"obs-{i}",),
            patient_ids=(f"p{i % 500}",),
            request_id=f"req-{i}",
            traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
            client_address="ipv4:10.1.0.7:50000",
        )


@contextmanager
def _postgres(admin_url: str) -> Iterator[str | None]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"his_audit_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL skipped: {exc.orig}")
        admin.dispose()
        yield None
        return
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_backend(
    backend: str, url: str, kafka: KafkaSettings, events: int, batch: int, verify: bool
) -> Row:
    engine = make_engine(url)
    try:
        outbox = Outbox(engine, chain_id=f"bench-{backend}")
        outbox.create()
        pending = []
        started = time.perf_counter()
        for ctx in _contexts(events):
            pending.extend(build_audit_events(ctx, observer=OBSERVER))
            if len(pending) >= 500:
                with engine.begin() as conn:
                    outbox.append(conn, pending)
                pending = []
        if pending:
            with engine.begin() as conn:
                outbox.append(conn, pending)
        append_s = time.perf_counter() - started

        topic = f"his.audit.bench.{backend}.{uuid.uuid4().hex[:6]}"
        settings = kafka.model_copy(update={"topic": topic})
        publisher = Publisher(outbox, settings, batch_size=batch)
        try:
            started = time.perf_counter()
            published = publisher.drain(timeout=600)
            publish_s = time.perf_counter() - started
        finally:
            publisher.stop()
        assert published == events, (published, events)
        verified = "-"
        if verify:
            seen = {e.event_id for e in read_topic(settings, settings.bootstrap_servers)}
            verified = "ok" if len(seen) == events else f"{len(seen)}/{events}"
        return Row(backend, events, events / append_s, events / publish_s, verified)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=2_000, help="publisher batch size")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--bootstrap-servers", default=None, help="default: start tansu")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--verify", action="store_true", help="read the topic back")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    broker = None if args.bootstrap_servers else TansuBroker.start()
    servers = args.bootstrap_servers or (broker.bootstrap_servers if broker else "")
    kafka = KafkaSettings(bootstrap_servers=servers.split(","), partitions=args.partitions)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(
                run_backend(
                    "sqlite",
                    f"sqlite:///{tmp}/outbox.db",
                    kafka,
                    args.events,
                    args.batch_size,
                    args.verify,
                )
            )
        if not args.skip_postgres:
            with _postgres(args.postgres_url) as url:
                if url is not None:
                    rows.append(
                        run_backend(
                            "postgresql", url, kafka, args.events, args.batch_size, args.verify
                        )
                    )
    finally:
        if broker is not None:
            broker.stop()

    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\naudit throughput, {when}, broker: {'tansu (memory)' if broker else servers}")
    print("| backend | events | outbox append/s | outbox -> Kafka/s | read back |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row.backend} | {row.events:,} | {row.append_per_s:,.0f} | "
            f"{row.publish_per_s:,.0f} | {row.verified} |"
        )


if __name__ == "__main__":
    main()
