"""Consumer-side tools: the audit store (archive), following the stream, and exports."""

from __future__ import annotations

import csv
import datetime
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ._chain import GENESIS_HASH, ChainedEvent, canonical_json, envelope_json
from ._kafka import (
    KafkaError,
    TopicPartition,
    describe_topic,
    make_admin,
    make_consumer,
    read_topic,
)
from ._schema import archive_chain_table, archive_metadata, archive_offset_table, archive_table
from ._settings import KafkaSettings

__all__ = [
    "ArchiveStats",
    "Archiver",
    "AuditArchive",
    "AuditFilter",
    "export",
    "tail",
]

_log = logging.getLogger(__name__)
_IN_CHUNK = 500

ExportFormat = Literal["ndjson", "csv"]

_CSV_COLUMNS = (
    "recorded",
    "event_id",
    "chain_id",
    "seq",
    "action",
    "subtype",
    "outcome",
    "outcome_desc",
    "patient",
    "client_id",
    "user",
    "resource",
    "request_id",
    "hash",
    "prev_hash",
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events to show: every given criterion must match.

    Attributes:
        patient: Patient id (the event's patient key).
        agent: The agent's client id.
        action: An action code (``R``, ``E``, ``C``, ``U``, ``D``) or interaction
            (``read``, ``search-type``, ...).
        outcome: An outcome code (``0``, ``4``, ``8``, ``12``), or ``failure`` for any
            non-zero one.
    """

    patient: str | None = None
    agent: str | None = None
    action: str | None = None
    outcome: str | None = None

    def matches(self, event: ChainedEvent) -> bool:
        """Whether ``event`` passes."""
        if self.patient is not None and event.patient_key != self.patient:
            return False
        if self.agent is not None and event.client_id != self.agent:
            return False
        if self.action is not None and self.action not in (event.action, event.subtype):
            return False
        if self.outcome is not None:
            if self.outcome == "failure":
                return event.outcome != "0"
            return event.outcome == self.outcome
        return True


@dataclass
class ArchiveStats:
    """What an archive run did.

    Attributes:
        received: Messages read from Kafka.
        inserted: Events stored for the first time.
        duplicates: Events already stored (producer retries, republish, re-reads).
        rejected: Messages that were not audit envelopes.
        id_conflicts: Event ids already stored with different content (logged as errors).
        resets: Times the topic was re-read from its start because the broker lost data.
    """

    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    id_conflicts: int = 0
    resets: int = 0

    def add(self, other: ArchiveStats) -> None:
        """Accumulate ``other`` into this one."""
        self.received += other.received
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.id_conflicts += other.id_conflicts
        self.resets += other.resets


@dataclass
class _ChainState:
    verified_seq: int
    verified_hash: str
    pending: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    """seq -> (event_id, prev_hash, hash) of stored events not yet linked to the start."""


def _row_to_event(row: Any) -> ChainedEvent:
    return ChainedEvent.from_json(
        envelope_json(
            event_id=row.event_id,
            chain_id=row.chain_id,
            seq=int(row.seq),
            prev_hash=row.prev_hash,
            hash=row.hash,
            patient_key=row.patient_key,
            event_json=row.payload,
        ),
        partition=row.kafka_partition,
        offset=row.kafka_offset,
    )


class AuditArchive:
    """The durable audit store compliance queries: each event once, chain-checked on arrival.

    Events are keyed by event id, so copies from producer retries or a republish are
    recognised and dropped. Each chain is verified from its first event as events arrive:
    an event is ``ok`` once it links to a verified predecessor, ``pending`` while its
    predecessor is missing (it may still arrive, for example from a republish), ``altered``
    when its content does not match its hash, ``broken`` when it does not link to its
    predecessor, and ``conflict`` when another event already holds its place.

    One process should ingest into a store at a time (it keeps chain state in memory).

    Args:
        engine: The audit store database (PostgreSQL in production, SQLite works).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._chains: dict[str, _ChainState] = {}

    def create(self) -> None:
        """Create the tables if missing."""
        archive_metadata.create_all(self.engine)

    def _chain(self, conn: Connection, chain_id: str) -> _ChainState:
        state = self._chains.get(chain_id)
        if state is not None:
            return state
        c = archive_chain_table.c
        row = conn.execute(
            sa.select(c.verified_seq, c.verified_hash).where(c.chain_id == chain_id)
        ).first()
        state = (
            _ChainState(0, GENESIS_HASH)
            if row is None
            else _ChainState(int(row.verified_seq), str(row.verified_hash))
        )
        a = archive_table.c
        for r in conn.execute(
            sa.select(a.seq, a.event_id, a.prev_hash, a.hash).where(
                a.chain_id == chain_id,
                a.seq > state.verified_seq,
                a.chain_status.in_(("pending", "altered")),
            )
        ):
            state.pending[int(r.seq)] = (r.event_id, r.prev_hash, r.hash)
        self._chains[chain_id] = state
        return state

    def ingest(
        self,
        events: Sequence[ChainedEvent],
        *,
        topic: str | None = None,
        next_offsets: Mapping[int, int] | None = None,
        topic_id: str | None = None,
    ) -> ArchiveStats:
        """Store new events, link them into their chains, and record the consumer position.

        Args:
            events: Events as read (any chains, any order, duplicates allowed).
            topic: The topic they came from, to record ``next_offsets`` for.
            next_offsets: partition -> offset to resume from, committed with the events.
            topic_id: The broker's id of the topic those offsets belong to.

        Returns:
            Counts of inserted and duplicate events.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The store could not be written; nothing was.
        """
        stats = ArchiveStats(received=len(events))
        try:
            with self.engine.begin() as conn:
                self._ingest(conn, events, stats)
                if topic is not None and next_offsets:
                    self._save_offsets(conn, topic, next_offsets, topic_id)
        except Exception:
            # The in-memory chain state may be ahead of the rolled-back database.
            self._chains.clear()
            raise
        return stats

    def _ingest(
        self, conn: Connection, events: Sequence[ChainedEvent], stats: ArchiveStats
    ) -> None:
        unique: dict[str, ChainedEvent] = {}
        for ev in events:
            if ev.event_id in unique:
                stats.duplicates += 1
            else:
                unique[ev.event_id] = ev
        a = archive_table.c
        ids = list(unique)
        existing: dict[str, str] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            for r in conn.execute(sa.select(a.event_id, a.hash).where(a.event_id.in_(chunk))):
                existing[r.event_id] = r.hash
        archived_at = _now()
        rows: list[dict[str, Any]] = []
        touched: set[str] = set()
        for ev in unique.values():
            stored_hash = existing.get(ev.event_id)
            if stored_hash is not None:
                stats.duplicates += 1
                if stored_hash != ev.hash:
                    stats.id_conflicts += 1
                    _log.error(
                        "audit event %s arrived again with different content (chain %s seq %d)",
                        ev.event_id,
                        ev.chain_id,
                        ev.seq,
                    )
                continue
            state = self._chain(conn, ev.chain_id)
            occupied = ev.seq <= state.verified_seq or ev.seq in state.pending
            if occupied:
                status = "conflict"
                _log.error(
                    "audit chain %s seq %d arrived twice with different events (%s)",
                    ev.chain_id,
                    ev.seq,
                    ev.event_id,
                )
            elif not ev.intact:
                status = "altered"
                _log.error("audit event %s does not match its hash", ev.event_id)
            else:
                status = "pending"
            if status != "conflict":
                state.pending[ev.seq] = (ev.event_id, ev.prev_hash, ev.hash)
                touched.add(ev.chain_id)
            rows.append(
                {
                    "event_id": ev.event_id,
                    "chain_id": ev.chain_id,
                    "seq": ev.seq,
                    "prev_hash": ev.prev_hash,
                    "hash": ev.hash,
                    "patient_key": ev.patient_key,
                    "client_id": ev.client_id,
                    "user_ref": ev.user,
                    "action": ev.action[:1] or "?",
                    "subtype": ev.subtype[:64],
                    "outcome": ev.outcome[:2],
                    "resource": ev.resource,
                    "recorded": ev.recorded,
                    "payload": canonical_json(ev.event),
                    "archived_at": archived_at,
                    "chain_status": status,
                    "kafka_partition": ev.partition,
                    "kafka_offset": ev.offset,
                }
            )
        if rows:
            conn.execute(archive_table.insert(), rows)
            stats.inserted += len(rows)
        for chain_id in sorted(touched):
            self._advance(conn, chain_id)

    def _advance(self, conn: Connection, chain_id: str) -> None:
        state = self._chains[chain_id]
        linked: list[str] = []
        broken: list[str] = []
        while state.verified_seq + 1 in state.pending:
            event_id, prev_hash, digest = state.pending.pop(state.verified_seq + 1)
            if prev_hash == state.verified_hash:
                linked.append(event_id)
            else:
                broken.append(event_id)
                _log.error(
                    "audit chain %s seq %d does not link to its predecessor",
                    chain_id,
                    state.verified_seq + 1,
                )
            state.verified_seq += 1
            state.verified_hash = digest
        if not linked and not broken:
            return
        a = archive_table.c
        for status, event_ids in (("ok", linked), ("broken", broken)):
            for start in range(0, len(event_ids), _IN_CHUNK):
                chunk = event_ids[start : start + _IN_CHUNK]
                conn.execute(
                    archive_table.update()
                    .where(a.event_id.in_(chunk), a.chain_status == "pending")
                    .values(chain_status=status)
                )
        c = archive_chain_table.c
        values = {"verified_seq": state.verified_seq, "verified_hash": state.verified_hash}
        updated = conn.execute(
            archive_chain_table.update().where(c.chain_id == chain_id).values(**values)
        )
        if updated.rowcount == 0:
            conn.execute(archive_chain_table.insert().values(chain_id=chain_id, **values))

    def _save_offsets(
        self, conn: Connection, topic: str, next_offsets: Mapping[int, int], tid: str | None
    ) -> None:
        c = archive_offset_table.c
        for partition, offset in next_offsets.items():
            updated = conn.execute(
                archive_offset_table.update()
                .where(c.topic == topic, c.partition == partition)
                .values(next_offset=offset, topic_id=tid)
            )
            if updated.rowcount == 0:
                conn.execute(
                    archive_offset_table.insert().values(
                        topic=topic, partition=partition, next_offset=offset, topic_id=tid
                    )
                )

    def offsets(self, topic: str) -> tuple[dict[int, int], str | None]:
        """Stored resume offsets of ``topic`` (partition -> offset) and their topic id."""
        c = archive_offset_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.partition, c.next_offset, c.topic_id).where(c.topic == topic)
            ).all()
        ids = {r.topic_id for r in rows}
        return {int(r.partition): int(r.next_offset) for r in rows}, (
            ids.pop() if len(ids) == 1 else None
        )

    def count(self) -> int:
        """Events stored."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(archive_table)).scalar_one()
            )

    def status_counts(self) -> dict[str, int]:
        """Events per ``chain_status``."""
        a = archive_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(a.chain_status, sa.func.count()).group_by(a.chain_status)
            ).all()
        return {str(status): int(n) for status, n in rows}

    def events(
        self,
        *,
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        patient: str | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ChainedEvent]:
        """Stored events in chain order, optionally limited by ``recorded`` and patient."""
        a = archive_table.c
        conditions = []
        if since is not None:
            conditions.append(a.recorded >= since)
        if until is not None:
            conditions.append(a.recorded < until)
        if patient is not None:
            conditions.append(a.patient_key == patient)
        last: tuple[str, int] = ("", 0)
        while True:
            query = (
                sa.select(
                    a.event_id,
                    a.chain_id,
                    a.seq,
                    a.prev_hash,
                    a.hash,
                    a.patient_key,
                    a.payload,
                    a.kafka_partition,
                    a.kafka_offset,
                )
                .where(*conditions, sa.tuple_(a.chain_id, a.seq) > sa.tuple_(*last))
                .order_by(a.chain_id, a.seq, a.event_id)
                .limit(batch_size)
            )
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            for row in rows:
                yield _row_to_event(row)
            last = (rows[-1].chain_id, int(rows[-1].seq))


class Archiver:
    """Consumes the audit topic into an :class:`AuditArchive` with assign/seek.

    Resumes from the offsets stored with the events. When the broker's id of the topic
    changes (the topic was recreated, or an in-memory broker restarted empty) it re-reads the
    topic from the start; de-duplication by event id makes that safe, and it is what lets a
    ``republish`` refill the archive. Brokers that report no topic ids (Kafka before 2.8) are
    only caught when the stored offset lies beyond the new log's end (the consumer then
    restarts at the earliest offset).

    Args:
        store: The audit store.
        kafka: Topic and client settings.
        bootstrap_servers: The brokers (overrides ``kafka.bootstrap_servers``).
        check_interval: How often the topic's identity and partitions are re-checked (s).
        max_records: Most messages ingested per transaction.
    """

    def __init__(
        self,
        store: AuditArchive,
        kafka: KafkaSettings,
        *,
        bootstrap_servers: list[str] | None = None,
        check_interval: float = 1.0,
        max_records: int = 2000,
    ) -> None:
        self.store = store
        self.kafka = kafka
        self.bootstrap_servers = list(bootstrap_servers or kafka.bootstrap_servers)
        if not self.bootstrap_servers:
            raise ValueError("the archiver needs Kafka bootstrap servers")
        self.check_interval = check_interval
        self.max_records = max_records
        self.stats = ArchiveStats()
        """Totals since this archiver was created."""
        self._consumer: Any = None
        self._admin: Any = None
        self._topic_id: str | None = None
        self._assigned: list[Any] = []

    def _connect(self) -> None:
        if self._consumer is None:
            self._consumer = make_consumer(
                self.kafka, self.bootstrap_servers, max_poll_records=self.max_records
            )
        if self._admin is None:
            self._admin = make_admin(self.kafka, self.bootstrap_servers)

    def close(self) -> None:
        """Close the Kafka clients."""
        for client in (self._consumer, self._admin):
            if client is not None:
                client.close()
        self._consumer = self._admin = None
        self._assigned = []

    def _describe(self) -> tuple[str | None, set[int]] | None:
        try:
            return describe_topic(self._admin, self.kafka.topic)
        except KafkaError as exc:
            _log.warning("cannot describe audit topic %s: %s", self.kafka.topic, exc)
            return None

    def _assign(self, partitions: set[int], *, from_start: bool) -> None:
        tps = [TopicPartition(self.kafka.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        self._assigned = tps
        stored, stored_tid = self.store.offsets(self.kafka.topic)
        resume = not from_start and stored_tid == self._topic_id
        for tp in tps:
            if resume and tp.partition in stored:
                self._consumer.seek(tp, stored[tp.partition])
            else:
                self._consumer.seek_to_beginning(tp)

    def _reassign(self) -> None:
        self._assign({tp.partition for tp in self._assigned}, from_start=False)

    def _check_topic(self) -> None:
        described = self._describe()
        if described is None:
            return
        tid, partitions = described
        if not partitions:
            # The topic is missing (not created yet, or the broker restarted empty): keep
            # the assignment; the recreated topic gets a new id and is re-read from its start.
            return
        if not self._assigned:
            self._topic_id = tid
            self._assign(partitions, from_start=False)
            return
        if tid is not None and self._topic_id is not None and tid != self._topic_id:
            _log.warning(
                "audit topic %s was recreated (broker lost its data?): re-reading from the start",
                self.kafka.topic,
            )
            self._topic_id = tid
            self.stats.resets += 1
            self._assign(partitions, from_start=True)
            return
        if tid is not None and self._topic_id is None:
            self._topic_id = tid
        if {tp.partition for tp in self._assigned} != partitions:
            self._assign(partitions, from_start=False)

    def poll(self, timeout: float = 0.5) -> ArchiveStats:
        """Read one batch of messages and ingest it.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The store could not be written (the batch will be
                read again).
        """
        self._connect()
        if not self._assigned:
            self._check_topic()
            if not self._assigned:
                time.sleep(min(timeout, 0.2))
                return ArchiveStats()
        batch = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=self.max_records)
        events: list[ChainedEvent] = []
        next_offsets: dict[int, int] = {}
        rejected = 0
        for tp, messages in batch.items():
            for message in messages:
                next_offsets[tp.partition] = message.offset + 1
                try:
                    events.append(
                        ChainedEvent.from_json(
                            message.value, partition=tp.partition, offset=message.offset
                        )
                    )
                except ValueError as exc:
                    rejected += 1
                    _log.error(
                        "audit topic message %s/%d@%d is not an audit envelope: %s",
                        tp.topic,
                        tp.partition,
                        message.offset,
                        exc,
                    )
        if not next_offsets:
            return ArchiveStats()
        try:
            stats = self.store.ingest(
                events, topic=self.kafka.topic, next_offsets=next_offsets, topic_id=self._topic_id
            )
        except Exception:
            # Read the batch again next time rather than skip it.
            self._reassign()
            raise
        stats.rejected += rejected
        stats.received += rejected
        self.stats.add(stats)
        return stats

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        follow: bool = True,
        idle_timeout: float = 2.0,
    ) -> ArchiveStats:
        """Archive until ``stop`` is set, or (without ``follow``) until the topic is drained.

        Args:
            stop: Set it to end the loop (after the current batch).
            follow: Keep waiting for new events.
            idle_timeout: Without ``follow``, stop after this long without a message.

        Returns:
            Totals of this run.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The store could not be written.
        """
        run_stats = ArchiveStats()
        next_check = 0.0
        last_message = time.monotonic()
        try:
            while stop is None or not stop.is_set():
                self._connect()
                now = time.monotonic()
                if now >= next_check:
                    self._check_topic()
                    next_check = now + self.check_interval
                stats = self.poll(0.5)
                run_stats.add(stats)
                if stats.received:
                    last_message = time.monotonic()
                elif not follow and time.monotonic() - last_message > idle_timeout:
                    return run_stats
        finally:
            self.close()
        return run_stats


def tail(
    kafka: KafkaSettings,
    bootstrap_servers: list[str] | None = None,
    *,
    where: AuditFilter | None = None,
    from_beginning: bool = False,
    follow: bool = True,
    stop_after: float | None = None,
) -> Iterator[ChainedEvent]:
    """Follow the audit topic, yielding events that pass ``where``.

    Args:
        kafka: Topic and client settings.
        bootstrap_servers: The brokers (overrides ``kafka.bootstrap_servers``).
        where: The filter; None passes everything.
        from_beginning: Start with the oldest retained event instead of new ones.
        follow: Keep waiting for new events; otherwise stop at the end of the topic.
        stop_after: Stop after this many seconds in any case.

    Raises:
        KafkaError: The broker could not be reached.
    """
    servers = list(bootstrap_servers or kafka.bootstrap_servers)
    for event in read_topic(
        kafka, servers, from_beginning=from_beginning, follow=follow, stop_after=stop_after
    ):
        if where is None or where.matches(event):
            yield event


def _csv_row(event: ChainedEvent) -> list[str]:
    return [
        str(event.event.get("recorded", "")),
        event.event_id,
        event.chain_id,
        str(event.seq),
        event.action,
        event.subtype,
        event.outcome,
        str(event.event.get("outcomeDesc", "")),
        event.patient_key or "",
        event.client_id or "",
        event.user or "",
        event.resource or "",
        event.request_id or "",
        event.hash,
        event.prev_hash,
    ]


def export(
    events: Iterable[ChainedEvent],
    out: TextIO,
    *,
    format: ExportFormat = "ndjson",
    where: AuditFilter | None = None,
) -> int:
    """Write events as NDJSON envelopes (verifiable with ``verify``) or flat CSV.

    Args:
        events: Usually ``AuditArchive.events(since=...)``.
        out: A text stream.
        format: ``ndjson`` (one envelope per line) or ``csv`` (one row per event, header first).
        where: Only events passing this filter.

    Returns:
        How many events were written.
    """
    count = 0
    writer = csv.writer(out) if format == "csv" else None
    if writer is not None:
        writer.writerow(_CSV_COLUMNS)
    for event in events:
        if where is not None and not where.matches(event):
            continue
        if writer is not None:
            writer.writerow(_csv_row(event))
        else:
            out.write(event.to_json())
            out.write("\n")
        count += 1
    return count
