"""The ``his audit`` commands: verify, archive, tail, export and republish."""

from __future__ import annotations

import contextlib
import datetime
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import click

from ._archive import Archiver, AuditArchive, AuditFilter, ExportFormat, export, tail
from ._chain import ChainedEvent, verify
from ._errors import AuditPublishError
from ._kafka import KafkaError, read_topic
from ._outbox import Outbox
from ._publisher import Publisher
from ._schema import make_engine
from ._settings import AuditSettings

__all__ = ["audit"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(value: str, *, now: datetime.datetime | None = None) -> datetime.datetime:
    """A point in time from ISO 8601 (UTC when no offset is given) or an age (``2h``, ``7d``).

    Raises:
        click.BadParameter: Neither form.
    """
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        amount, unit = float(match.group(1)), _UNITS[match.group(2)]
        reference = now or datetime.datetime.now(datetime.UTC)
        return reference - datetime.timedelta(**{unit: amount})
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is neither an ISO 8601 time nor an age such as 2h or 7d"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _moment_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> datetime.datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value)
    except click.BadParameter as exc:
        exc.ctx, exc.param = ctx, param
        raise


def _settings(ctx: click.Context) -> AuditSettings:
    found = ctx.find_object(AuditSettings)
    if found is not None:
        return found
    config_path: Path | None = ctx.meta.get("his.audit.config")
    from pydantic import ValidationError

    import his_sdk.config

    try:
        gateway = his_sdk.config.load_settings(config_path)
    except (FileNotFoundError, ValidationError) as exc:
        raise click.ClickException(str(exc)) from exc
    audit_settings = getattr(gateway, "audit", None)
    if not isinstance(audit_settings, AuditSettings):
        raise click.ClickException("the gateway settings have no audit section")
    return audit_settings


def _servers(settings: AuditSettings, override: str | None) -> list[str]:
    servers = (
        [s.strip() for s in override.split(",") if s.strip()]
        if override
        else list(settings.kafka.bootstrap_servers)
    )
    if not servers:
        raise click.UsageError(
            "no Kafka brokers configured (the embedded demo broker lives inside `his serve`): "
            "pass --bootstrap-servers or set audit.kafka.bootstrap_servers"
        )
    return servers


def _kafka(settings: AuditSettings, topic: str | None) -> Any:
    return settings.kafka.model_copy(update={"topic": topic}) if topic else settings.kafka


_BOOTSTRAP = click.option(
    "--bootstrap-servers", help="Comma-separated Kafka brokers (default: from the config)."
)
_TOPIC = click.option("--topic", help="Audit topic (default: from the config).")


@click.group()
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="YAML config file (HIS_* environment variables override it).",
)
@click.pass_context
def audit(ctx: click.Context, config: Path | None) -> None:
    """Inspect, archive and re-send the audit trail (FHIR AuditEvents on Kafka)."""
    ctx.meta["his.audit.config"] = config


@audit.command("verify")
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="An NDJSON export to check ('-' is not accepted; use a file).",
)
@click.option("--store", "store_url", help="Check an audit store (SQLAlchemy URL).")
@click.option("--outbox", "outbox_url", help="Check the outbox (SQLAlchemy URL).")
@click.option(
    "--any-start",
    is_flag=True,
    help="Accept chains that start after seq 1 (a window of a longer history).",
)
@_BOOTSTRAP
@_TOPIC
@click.pass_context
def verify_command(
    ctx: click.Context,
    file: Path | None,
    store_url: str | None,
    outbox_url: str | None,
    any_start: bool,
    bootstrap_servers: str | None,
    topic: str | None,
) -> None:
    """Report gaps, reorders and alterations in the hash chains.

    Reads the Kafka topic unless --file, --store or --outbox names another source. Exits
    with status 1 when anything is wrong.
    """
    settings = _settings(ctx)
    sources = [s for s in (file, store_url, outbox_url) if s]
    if len(sources) > 1:
        raise click.UsageError("give at most one of --file, --store and --outbox")
    with _events_from(settings, file, store_url, outbox_url, bootstrap_servers, topic) as events:
        report = verify(events, start_seq=None if any_start else 1)
    for chain_id in sorted(report.chains):
        chain = report.chains[chain_id]
        click.echo(
            f"chain {chain_id}: {chain.count} events, seq {chain.first_seq}-{chain.last_seq}, "
            f"{chain.duplicates} duplicates: {'ok' if chain.ok else 'PROBLEMS'}"
        )
    for line in report.describe():
        click.echo(line)
    if not report.chains:
        click.echo("no audit events found")
    if not report.ok:
        ctx.exit(1)


@contextlib.contextmanager
def _events_from(
    settings: AuditSettings,
    file: Path | None,
    store_url: str | None,
    outbox_url: str | None,
    bootstrap_servers: str | None,
    topic: str | None,
) -> Iterator[Iterator[ChainedEvent]]:
    if file is not None:
        with file.open(encoding="utf-8") as handle:
            yield _read_ndjson(handle, file)
        return
    if store_url is not None or outbox_url is not None:
        engine = make_engine(store_url or outbox_url or "")
        try:
            if store_url is not None:
                yield AuditArchive(engine).events()
            else:
                yield Outbox(engine, chain_id=settings.effective_chain_id).events()
        finally:
            engine.dispose()
        return
    try:
        yield read_topic(_kafka(settings, topic), _servers(settings, bootstrap_servers))
    except KafkaError as exc:
        raise click.ClickException(f"cannot read the audit topic: {exc}") from exc


def _read_ndjson(handle: TextIO, path: Path) -> Iterator[ChainedEvent]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield ChainedEvent.from_json(line)
        except ValueError as exc:
            raise click.ClickException(f"{path}:{number}: {exc}") from exc


@audit.command("archive")
@click.option("--store", "store_url", help="Audit store SQLAlchemy URL (default: from config).")
@click.option(
    "--follow/--no-follow",
    default=True,
    help="Keep archiving new events, or stop when the topic is drained.",
)
@_BOOTSTRAP
@_TOPIC
@click.pass_context
def archive_command(
    ctx: click.Context,
    store_url: str | None,
    follow: bool,
    bootstrap_servers: str | None,
    topic: str | None,
) -> None:
    """Consume the audit topic into the audit store (de-duplicated, chain-checked)."""
    settings = _settings(ctx)
    engine = make_engine(store_url or settings.archive_url)
    try:
        store = AuditArchive(engine)
        store.create()
        archiver = Archiver(
            store,
            _kafka(settings, topic),
            bootstrap_servers=_servers(settings, bootstrap_servers),
        )
        try:
            stats = archiver.run(follow=follow)
        except KeyboardInterrupt:
            stats = archiver.stats
        click.echo(
            f"archived {stats.inserted} new events ({stats.duplicates} duplicates, "
            f"{stats.rejected} rejected, {stats.resets} topic re-reads)"
        )
        counts = store.status_counts()
        click.echo("store: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    finally:
        engine.dispose()


def _line(event: ChainedEvent) -> str:
    return " ".join(
        [
            str(event.event.get("recorded", "")),
            f"{event.action}/{event.subtype}",
            f"outcome={event.outcome}",
            f"patient={event.patient_key or '-'}",
            f"agent={event.client_id or '-'}",
            f"user={event.user or '-'}",
            f"resource={event.resource or '-'}",
            f"{event.chain_id}#{event.seq}",
        ]
    )


@audit.command("tail")
@click.option("--patient", help="Only events about this patient id.")
@click.option("--agent", help="Only events of this agent (client id).")
@click.option("--action", help="Only this action (R, E, C, U, D) or interaction (read, ...).")
@click.option("--outcome", help="Only this outcome (0, 4, 8, 12, or 'failure').")
@click.option("--from-beginning", is_flag=True, help="Start with the oldest retained event.")
@click.option("--follow/--no-follow", default=True, help="Keep waiting for new events.")
@click.option("--json", "as_json", is_flag=True, help="Print envelopes as JSON lines.")
@_BOOTSTRAP
@_TOPIC
@click.pass_context
def tail_command(
    ctx: click.Context,
    patient: str | None,
    agent: str | None,
    action: str | None,
    outcome: str | None,
    from_beginning: bool,
    follow: bool,
    as_json: bool,
    bootstrap_servers: str | None,
    topic: str | None,
) -> None:
    """Follow the audit stream, filtered by patient, agent, action and outcome."""
    settings = _settings(ctx)
    where = AuditFilter(patient=patient, agent=agent, action=action, outcome=outcome)
    try:
        for event in tail(
            _kafka(settings, topic),
            _servers(settings, bootstrap_servers),
            where=where,
            from_beginning=from_beginning,
            follow=follow,
        ):
            click.echo(event.to_json() if as_json else _line(event))
    except KafkaError as exc:
        raise click.ClickException(f"cannot read the audit topic: {exc}") from exc
    except KeyboardInterrupt:
        return


@audit.command("export")
@click.option("--since", required=True, callback=_moment_option, help="ISO time or age (2h, 7d).")
@click.option(
    "--until", default=None, callback=_moment_option, help="ISO time or age; default: now."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ndjson", "csv"]),
    default="ndjson",
    show_default=True,
)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--store", "store_url", help="Audit store SQLAlchemy URL (default: from config).")
@click.option("--patient", help="Only events about this patient id.")
@click.option("--agent", help="Only events of this agent (client id).")
@click.option("--action", help="Only this action or interaction.")
@click.option("--outcome", help="Only this outcome (0, 4, 8, 12, or 'failure').")
@click.pass_context
def export_command(
    ctx: click.Context,
    since: datetime.datetime,
    until: datetime.datetime | None,
    fmt: str,
    output: Path | None,
    store_url: str | None,
    patient: str | None,
    agent: str | None,
    action: str | None,
    outcome: str | None,
) -> None:
    """Export archived events recorded in [--since, --until) for compliance review."""
    settings = _settings(ctx)
    engine = make_engine(store_url or settings.archive_url)
    where = AuditFilter(patient=patient, agent=agent, action=action, outcome=outcome)
    try:
        events = AuditArchive(engine).events(since=since, until=until, patient=patient)
        fmt_literal: ExportFormat = "csv" if fmt == "csv" else "ndjson"
        if output is None:
            count = export(events, sys.stdout, format=fmt_literal, where=where)
        else:
            with output.open("w", encoding="utf-8", newline="") as handle:
                count = export(events, handle, format=fmt_literal, where=where)
    finally:
        engine.dispose()
    click.echo(f"exported {count} events", err=True)


@audit.command("republish")
@click.option("--since", required=True, callback=_moment_option, help="ISO time or age (2h, 7d).")
@click.option(
    "--until", default=None, callback=_moment_option, help="ISO time or age; default: now."
)
@click.option("--outbox", "outbox_url", help="Outbox SQLAlchemy URL (default: from config).")
@click.option(
    "--drain/--no-drain",
    default=True,
    help="Send the rows now (default), or only queue them for the gateway's publisher.",
)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Drain time limit.")
@_BOOTSTRAP
@_TOPIC
@click.pass_context
def republish_command(
    ctx: click.Context,
    since: datetime.datetime,
    until: datetime.datetime | None,
    outbox_url: str | None,
    drain: bool,
    timeout: float,
    bootstrap_servers: str | None,
    topic: str | None,
) -> None:
    """Send retained outbox events again (after a broker or topic lost data).

    Consumers see duplicates of what they already had and drop them by event id. A running
    gateway's publisher may send the same rows at the same time; that only adds duplicates.
    """
    settings = _settings(ctx)
    engine = make_engine(outbox_url or settings.outbox_url)
    try:
        outbox = Outbox(engine, chain_id=settings.effective_chain_id)
        oldest = outbox.oldest_retained()
        if oldest is not None and since < oldest:
            click.echo(
                f"warning: the outbox only holds events since {oldest.isoformat()}; "
                "older ones were purged after the retention period",
                err=True,
            )
        count = outbox.mark_unpublished(since, until)
        click.echo(f"queued {count} events for publishing again")
        if drain:
            publisher = Publisher(
                outbox,
                _kafka(settings, topic),
                bootstrap_servers=_servers(settings, bootstrap_servers),
                batch_size=settings.publish_batch_size,
            )
            try:
                sent = publisher.drain(timeout)
            except AuditPublishError as exc:
                raise click.ClickException(str(exc)) from exc
            finally:
                publisher.stop()
            click.echo(f"published {sent} events")
    finally:
        engine.dispose()
