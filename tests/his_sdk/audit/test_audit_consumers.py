"""Consumer-side tools: archive (de-duplicated, chain-checked), tail, export and the CLI."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json

import pytest
from click.testing import CliRunner

import his_sdk.audit
import his_sdk.testing
from his_sdk.audit import (
    GENESIS_HASH,
    Archiver,
    AuditAction,
    AuditArchive,
    AuditContext,
    AuditFilter,
    AuditObserver,
    AuditOutcome,
    AuditPrincipal,
    AuditSettings,
    AuditTrail,
    ChainedEvent,
    Outbox,
    Publisher,
    audit,
    build_audit_events,
    canonical_json,
    chain_hash,
    export,
    make_engine,
    tail,
    verify,
)
from his_sdk.audit._cli import parse_moment
from tests.his_sdk.audit.audit_helpers import PRINCIPAL, read_ctx

OTHER_AGENT = AuditPrincipal(client_id="agent-9", token_id="jti-9")


def _contexts() -> list[AuditContext]:
    contexts = [read_ctx(f"p{i % 3}", f"o{i}", request_id=f"r{i}") for i in range(9)]
    contexts.append(
        AuditContext(
            action=AuditAction.SEARCH,
            principal=OTHER_AGENT,
            resource_type="Observation",
            query="code=1234",
            client_address="10.0.0.9",
        )
    )
    contexts.append(
        AuditContext(
            action=AuditAction.READ,
            principal=OTHER_AGENT,
            resource_type="Observation",
            resource_ids=("secret",),
            patient_ids=("p1",),
            outcome=AuditOutcome.MINOR_FAILURE,
            outcome_text="forbidden: no consent",
            client_address="10.0.0.9",
        )
    )
    return contexts


@pytest.fixture
def published(audit_settings: AuditSettings):
    """Eleven events recorded and published to the test topic."""
    with AuditTrail(audit_settings, publish=False) as trail:
        for ctx in _contexts():
            trail.record_sync(ctx)
        trail.flush()
        publisher = Publisher(trail.outbox, audit_settings.kafka)
        try:
            assert publisher.drain(20) == 11
        finally:
            publisher.stop()
    return audit_settings


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/archive.db")
    archive = AuditArchive(engine)
    archive.create()
    yield archive
    engine.dispose()


def test_archive_resumes_and_drops_duplicates(published, store, db_url):
    kafka = published.kafka
    first = Archiver(store, kafka).run(follow=False, idle_timeout=0.5)
    assert (first.inserted, first.duplicates) == (11, 0)
    assert store.status_counts() == {"ok": 11}
    again = Archiver(store, kafka).run(follow=False, idle_timeout=0.5)
    assert again.received == 0  # resumed after the stored offsets

    engine = make_engine(db_url)
    publisher = Publisher(Outbox(engine, chain_id=published.effective_chain_id), kafka)
    try:
        assert publisher.republish(datetime.datetime.now(datetime.UTC) - datetime.timedelta(1))
        assert publisher.drain(20) == 11
    finally:
        publisher.stop()
        engine.dispose()
    third = Archiver(store, kafka).run(follow=False, idle_timeout=0.5)
    assert (third.inserted, third.duplicates) == (0, 11)
    assert store.count() == 11
    assert verify(store.events()).ok


def _chain(n: int) -> list[ChainedEvent]:
    events, prev = [], GENESIS_HASH
    observer = AuditObserver("gw-arch")
    for seq in range(1, n + 1):
        [pending] = build_audit_events(read_ctx("p1", f"o{seq}"), observer=observer)
        digest = chain_hash(
            chain_id="c1",
            seq=seq,
            prev_hash=prev,
            patient_key="p1",
            event_json=canonical_json(pending.event),
        )
        events.append(ChainedEvent(pending.event_id, "c1", seq, prev, digest, "p1", pending.event))
        prev = digest
    return events


def _statuses(store: AuditArchive) -> dict[int, str]:
    import sqlalchemy as sa

    from his_sdk.audit._schema import archive_table

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(archive_table.c.seq, archive_table.c.chain_status)).all()
    return {int(seq): status for seq, status in rows}


def test_archive_checks_the_chain_on_arrival(store):
    events = _chain(6)
    store.ingest([events[2], events[3]])
    assert _statuses(store) == {3: "pending", 4: "pending"}
    store.ingest([events[0], events[1]])
    assert set(_statuses(store).values()) == {"ok"}

    altered = dataclasses.replace(events[4], event=dict(events[4].event, outcome="8"))
    store.ingest([altered])
    # A well-formed event that claims a predecessor that never existed.
    impostor = dataclasses.replace(events[5], event_id="impostor", prev_hash="f" * 64)
    impostor = dataclasses.replace(impostor, hash=impostor.computed_hash())
    store.ingest([impostor, dataclasses.replace(events[5], event_id="second")])
    assert _statuses(store)[5] == "altered"

    duplicate = store.ingest([events[0]])
    assert (duplicate.inserted, duplicate.duplicates) == (0, 1)
    assert store.status_counts() == {"ok": 4, "altered": 1, "broken": 1, "conflict": 1}


def test_archive_state_survives_a_restart(store):
    events = _chain(4)
    store.ingest([events[0], events[2]])
    fresh = AuditArchive(store.engine)
    fresh.ingest([events[1], events[3]])
    assert set(_statuses(fresh).values()) == {"ok"}


def test_tail_filters(published):
    kafka = published.kafka

    def seen(**criteria):
        where = AuditFilter(**criteria)
        return list(tail(kafka, where=where, from_beginning=True, follow=False))

    assert len(seen()) == 11
    assert {e.patient_key for e in seen(patient="p1")} == {"p1"}
    assert len(seen(patient="p1")) == 4
    assert len(seen(agent="agent-9")) == 2
    assert [e.subtype for e in seen(action="E")] == ["search-type"]
    assert len(seen(action="read")) == 10
    [denied] = seen(outcome="failure")
    assert denied.outcome == "4" and denied.client_id == "agent-9"
    assert seen(outcome="4") == [denied]
    # Starting at the end skips what is there (tansu reports the start of a partition's last
    # batch as its end, so that batch may show up again).
    assert len(list(tail(kafka, from_beginning=False, follow=False))) < 11


def test_export_ndjson_and_csv(published, store):
    Archiver(store, published.kafka).run(follow=False, idle_timeout=0.5)
    ndjson = io.StringIO()
    assert export(store.events(), ndjson) == 11
    lines = ndjson.getvalue().splitlines()
    assert verify(ChainedEvent.from_json(line) for line in lines).ok

    table = io.StringIO()
    assert export(store.events(), table, format="csv", where=AuditFilter(agent="agent-9")) == 2
    rows = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert [r["client_id"] for r in rows] == ["agent-9", "agent-9"]
    assert {r["outcome"] for r in rows} == {"0", "4"}
    denied = next(r for r in rows if r["outcome"] == "4")
    assert denied["outcome_desc"] == "forbidden: no consent"
    assert denied["resource"] == "Observation/secret"

    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)
    assert list(store.events(since=later)) == []
    assert len(list(store.events(patient="p2"))) == 3


def test_cli_archive_export_verify_tail_republish(published, tmp_path, db_url):
    runner = CliRunner()
    servers = ",".join(published.kafka.bootstrap_servers)
    store_url = f"sqlite:///{tmp_path}/cli-archive.db"
    common = ["--bootstrap-servers", servers, "--topic", published.kafka.topic]

    result = runner.invoke(
        audit, ["archive", "--store", store_url, "--no-follow", *common], obj=published
    )
    assert result.exit_code == 0, result.output
    assert "archived 11 new events" in result.output

    export_file = tmp_path / "export.ndjson"
    result = runner.invoke(
        audit,
        ["export", "--store", store_url, "--since", "1h", "--output", str(export_file)],
        obj=published,
    )
    assert result.exit_code == 0, result.output
    assert len(export_file.read_text().splitlines()) == 11

    result = runner.invoke(audit, ["verify", "--file", str(export_file)], obj=published)
    assert result.exit_code == 0, result.output
    assert "11 events" in result.output and ": ok" in result.output

    lines = export_file.read_text().splitlines()
    tampered = json.loads(lines[4])
    tampered["event"]["agent"][0]["who"]["identifier"]["value"] = "someone-else"
    lines[4] = json.dumps(tampered)
    del lines[7]
    lines[1], lines[2] = lines[2], lines[1]
    bad_file = tmp_path / "tampered.ndjson"
    bad_file.write_text("\n".join(lines) + "\n")
    result = runner.invoke(audit, ["verify", "--file", str(bad_file)], obj=published)
    assert result.exit_code == 1
    assert "altered" in result.output
    assert "missing seq 8" in result.output
    assert "out of order" in result.output

    result = runner.invoke(audit, ["verify", *common], obj=published)
    assert result.exit_code == 0, result.output
    result = runner.invoke(audit, ["verify", "--store", store_url], obj=published)
    assert result.exit_code == 0, result.output
    result = runner.invoke(audit, ["verify", "--outbox", db_url], obj=published)
    assert result.exit_code == 0, result.output

    result = runner.invoke(
        audit,
        [
            "export",
            "--store",
            store_url,
            "--since",
            "2000-01-01",
            "--format",
            "csv",
            "--agent",
            "agent-9",
        ],
        obj=published,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("recorded,event_id,chain_id,seq")
    assert len(result.stdout.splitlines()) == 3

    result = runner.invoke(
        audit,
        ["tail", "--from-beginning", "--no-follow", "--patient", "p2", *common],
        obj=published,
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("patient=p2") == 3

    result = runner.invoke(
        audit, ["republish", "--since", "1h", "--outbox", db_url, *common], obj=published
    )
    assert result.exit_code == 0, result.output
    assert "queued 11 events" in result.output and "published 11 events" in result.output


def test_cli_usage_errors(published):
    runner = CliRunner()
    no_kafka = published.model_copy(
        update={"kafka": published.kafka.model_copy(update={"bootstrap_servers": []})}
    )
    result = runner.invoke(audit, ["tail", "--no-follow"], obj=no_kafka)
    assert result.exit_code == 2 and "no Kafka brokers configured" in result.output
    result = runner.invoke(audit, ["export", "--since", "yesterday"], obj=published)
    assert result.exit_code == 2 and "neither an ISO 8601 time" in result.output
    result = runner.invoke(
        audit, ["verify", "--store", "sqlite://", "--outbox", "sqlite://"], obj=published
    )
    assert result.exit_code == 2


def test_parse_moment():
    now = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC)
    assert parse_moment("2h", now=now) == now - datetime.timedelta(hours=2)
    assert parse_moment("7d", now=now) == now - datetime.timedelta(days=7)
    assert parse_moment("2024-05-01T10:00:00") == datetime.datetime(
        2024, 5, 1, 10, tzinfo=datetime.UTC
    )
    assert parse_moment("2024-05-01T10:00:00+02:00").utcoffset() == datetime.timedelta(hours=2)


def test_exports_are_pinned():
    assert set(his_sdk.audit.__all__) == {
        "GENESIS_HASH",
        "ArchiveStats",
        "Archiver",
        "AuditAction",
        "AuditArchive",
        "AuditContext",
        "AuditFilter",
        "AuditHealth",
        "AuditObserver",
        "AuditOutcome",
        "AuditPrincipal",
        "AuditPublishError",
        "AuditSettings",
        "AuditTrail",
        "AuditUnavailableError",
        "AuditUser",
        "ChainReport",
        "ChainedEvent",
        "KafkaSettings",
        "Outbox",
        "OutboxRow",
        "PendingEvent",
        "Publisher",
        "VerifyReport",
        "audit",
        "build_audit_events",
        "canonical_json",
        "chain_hash",
        "export",
        "make_engine",
        "outcome_for_error",
        "read_topic",
        "tail",
        "verify",
    }
    assert {"TansuBroker", "TansuUnavailableError", "tansu_binary"} <= set(his_sdk.testing.__all__)
    for module in (his_sdk.audit, his_sdk.testing):
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_audit_errors_map_to_unavailable():
    import grpc

    import his_sdk.errors

    assert his_sdk.audit.AuditUnavailableError.grpc_status_code == grpc.StatusCode.UNAVAILABLE
    assert (
        his_sdk.errors.error_class_for(grpc.StatusCode.UNAVAILABLE, "AuditUnavailableError")
        is his_sdk.audit.AuditUnavailableError
    )
    assert his_sdk.errors.error_class_for(grpc.StatusCode.INTERNAL) is his_sdk.errors.HisError


def test_principal_values_reach_the_event():
    [pending] = build_audit_events(read_ctx("p1", "o1"), observer=AuditObserver("gw"))
    assert pending.event["agent"][0]["policy"] == [PRINCIPAL.token_id]
