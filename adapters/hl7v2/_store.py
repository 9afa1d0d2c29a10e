"""The durable store: received messages, converted FHIR resources, their search index, outbox.

Everything runs on a synchronous SQLAlchemy engine (SQLite or PostgreSQL). Callers in asyncio
code run these methods in a worker thread; :class:`Hl7Store` itself holds no event-loop state.
Inbound messages are written in batches, one transaction per batch (group commit), so a busy
listener pays for one fsync per batch rather than one per message.
"""

from __future__ import annotations

import enum
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ._index import index_rows

__all__ = [
    "ConversionFailure",
    "ConversionOutput",
    "Hl7Store",
    "IngestItem",
    "IngestResult",
    "MessageFilter",
    "MessageStatus",
    "OutboundRecord",
    "OutboundStatus",
    "StoredMessage",
    "StoredResource",
]


class MessageStatus(enum.StrEnum):
    """Where one received message stands."""

    RECEIVED = "received"
    """Stored; conversion has not run yet (deferred conversion or enhanced mode)."""
    CONVERTED = "converted"
    """Converted; its resources are in the FHIR store."""
    FAILED = "failed"
    """Conversion failed: the dead-letter state, with the reason in ``error``."""
    DUPLICATE = "duplicate"
    """Same sending application, facility and MSH-10 as an earlier message; not applied."""
    SKIPPED = "skipped"
    """Stored for the record only: a message type this adapter does not convert."""
    REJECTED = "rejected"
    """Refused with AR/CR (bad header, unsupported version or type)."""


class OutboundStatus(enum.StrEnum):
    """Where one outbound (write-back) message stands."""

    PENDING = "pending"
    SENT = "sent"
    REJECTED = "rejected"
    DEAD = "dead"


_metadata = sa.MetaData()

messages_table = sa.Table(
    "hl7_message",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("peer", sa.String(128), nullable=False, default=""),
    sa.Column("dedup_key", sa.String(64), nullable=True, unique=True),
    sa.Column("sending_application", sa.String(255), nullable=False, default=""),
    sa.Column("sending_facility", sa.String(255), nullable=False, default=""),
    sa.Column("control_id", sa.String(199), nullable=False, default=""),
    sa.Column("message_code", sa.String(8), nullable=False, default=""),
    sa.Column("trigger_event", sa.String(8), nullable=False, default=""),
    sa.Column("structure", sa.String(16), nullable=False, default=""),
    sa.Column("version", sa.String(16), nullable=False, default=""),
    sa.Column("processing_id", sa.String(8), nullable=False, default=""),
    sa.Column("message_time", sa.DateTime, nullable=True),
    sa.Column("patient_id", sa.String(128), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("ack_code", sa.String(2), nullable=False, default=""),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duplicate_of", sa.Integer, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("converted_at", sa.DateTime, nullable=True),
    sa.Column("mapping_version", sa.String(64), nullable=True),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Index("ix_hl7_message_status", "status", "id"),
    sa.Index("ix_hl7_message_type", "message_code", "trigger_event"),
    sa.Index("ix_hl7_message_patient", "patient_id"),
    sa.Index("ix_hl7_message_control", "control_id"),
    sa.Index("ix_hl7_message_received", "received_at"),
)

resources_table = sa.Table(
    "hl7_resource",
    _metadata,
    sa.Column("resource_type", sa.String(64), primary_key=True),
    sa.Column("resource_id", sa.String(64), primary_key=True),
    sa.Column("version_id", sa.Integer, nullable=False),
    sa.Column("last_updated", sa.DateTime, nullable=False),
    sa.Column("source_time", sa.DateTime, nullable=True),
    sa.Column("message_id", sa.Integer, nullable=True),
    sa.Column("patient_id", sa.String(64), nullable=True),
    sa.Column("content", sa.Text, nullable=False),
    sa.Index("ix_hl7_resource_patient", "patient_id"),
)

search_table = sa.Table(
    "hl7_search",
    _metadata,
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("param", sa.String(64), nullable=False),
    sa.Column("system", sa.String(255), nullable=True),
    sa.Column("value", sa.String(255), nullable=True),
    sa.Column("lo", sa.DateTime, nullable=True),
    sa.Column("hi", sa.DateTime, nullable=True),
    sa.Index("ix_hl7_search_value", "resource_type", "param", "value"),
    sa.Index("ix_hl7_search_owner", "resource_type", "resource_id"),
)

outbound_table = sa.Table(
    "hl7_outbound",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(255), nullable=False, unique=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("control_id", sa.String(64), nullable=False),
    sa.Column("message_type", sa.String(16), nullable=False),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("ack_code", sa.String(2), nullable=False, default=""),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Index("ix_hl7_outbound_status", "status", "id"),
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def dedup_key(
    channel: str, sending_application: str, sending_facility: str, control_id: str
) -> str:
    """The duplicate-detection key: a hash of channel, MSH-3, MSH-4 and MSH-10."""
    text = "\x1f".join((channel, sending_application, sending_facility, control_id))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ConversionOutput:
    """What converting one message produced: validated resources as JSON-ready dicts."""

    resources: list[dict[str, Any]]
    patient_id: str | None = None
    source_time: datetime | None = None


class ConversionFailure(Exception):
    """A message that cannot be converted (the reason goes into the dead-letter record)."""


Converter = Callable[[bytes], ConversionOutput]
"""Parse and convert raw message bytes; raises :class:`ConversionFailure`."""

BatchConverter = Callable[[Sequence[bytes]], "list[ConversionOutput | str]"]
"""Convert several raw messages in order: each output, or the reason its conversion failed."""


@dataclass(frozen=True)
class IngestItem:
    """One received message to store, with its parsed header values."""

    raw: bytes
    channel: str
    peer: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    control_id: str = ""
    message_code: str = ""
    trigger_event: str = ""
    structure: str = ""
    version: str = ""
    processing_id: str = ""
    message_time: datetime | None = None
    patient_id: str | None = None
    """PID-3.1 of the first patient (the sender's identifier, searchable as sent)."""
    status: MessageStatus = MessageStatus.RECEIVED
    """RECEIVED to store (and convert when a converter is given), SKIPPED or REJECTED."""
    error: str | None = None
    ack_code: str = ""
    """The code to record when the store does not decide it by converting (AR, CR, CA...)."""
    convert: bool = True
    """Convert in the same transaction (original mode) rather than later."""


@dataclass(frozen=True)
class IngestResult:
    """What storing one message did."""

    message_id: int
    status: MessageStatus
    error: str | None = None
    duplicate_of: int | None = None
    original_ack_code: str = ""
    resources: int = 0


@dataclass(frozen=True)
class StoredMessage:
    """One row of the message store (without the raw bytes unless asked for)."""

    id: int
    channel: str
    received_at: datetime
    peer: str
    sending_application: str
    sending_facility: str
    control_id: str
    message_code: str
    trigger_event: str
    structure: str
    version: str
    processing_id: str
    message_time: datetime | None
    patient_id: str | None
    status: MessageStatus
    ack_code: str
    error: str | None
    duplicate_of: int | None
    attempts: int
    converted_at: datetime | None
    mapping_version: str | None
    raw: bytes | None = None


@dataclass(frozen=True)
class MessageFilter:
    """Criteria for :meth:`Hl7Store.find_messages`; unset fields match everything."""

    channel: str | None = None
    message_code: str | None = None
    trigger_event: str | None = None
    patient_id: str | None = None
    control_id: str | None = None
    status: MessageStatus | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    after_id: int | None = None


@dataclass(frozen=True)
class StoredResource:
    """One FHIR resource as stored."""

    resource_type: str
    resource_id: str
    version_id: int
    last_updated: datetime
    content: dict[str, Any]


@dataclass
class OutboundRecord:
    """One outbound write-back message."""

    id: int
    key: str
    channel: str
    control_id: str
    message_type: str
    resource_type: str
    resource_id: str
    status: OutboundStatus
    attempts: int
    ack_code: str
    last_error: str | None
    payload: str
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)


@dataclass
class _ResourceState:
    """One resource while a batch is applied: as stored, or as last written by the batch."""

    version: int
    source_time: datetime | None
    stored: str | None
    exists: bool
    resource: dict[str, Any] | None = None
    message_id: int | None = None
    original: str | None = None
    """The JSON stored before the batch (what the search index currently reflects)."""

    def content(self) -> dict[str, Any]:
        if self.resource is None:
            assert self.stored is not None
            self.resource = json.loads(self.stored)
        return self.resource


_INSERT_MESSAGE = messages_table.insert()
_MARK_FAILED = (
    messages_table.update()
    .where(messages_table.c.id == sa.bindparam("b_id"))
    .values(
        status=MessageStatus.FAILED.value,
        error=sa.bindparam("error"),
        attempts=sa.bindparam("attempts"),
        mapping_version=sa.bindparam("mapping_version"),
    )
)
_MARK_CONVERTED = (
    messages_table.update()
    .where(messages_table.c.id == sa.bindparam("b_id"))
    .values(
        status=MessageStatus.CONVERTED.value,
        error=None,
        attempts=sa.bindparam("attempts"),
        converted_at=sa.bindparam("converted_at"),
        mapping_version=sa.bindparam("mapping_version"),
    )
)
_NOT_CONVERTED = frozenset((MessageStatus.DUPLICATE, MessageStatus.REJECTED, MessageStatus.SKIPPED))
_SELECT_RESOURCES = sa.select(
    resources_table.c.resource_id,
    resources_table.c.version_id,
    resources_table.c.source_time,
    resources_table.c.content,
).where(
    resources_table.c.resource_type == sa.bindparam("rtype"),
    resources_table.c.resource_id.in_(sa.bindparam("rids", expanding=True)),
)
_INSERT_RESOURCE = resources_table.insert().values(
    resource_type=sa.bindparam("b_type"),
    resource_id=sa.bindparam("b_id"),
    version_id=sa.bindparam("version_id"),
    last_updated=sa.bindparam("last_updated"),
    source_time=sa.bindparam("source_time"),
    message_id=sa.bindparam("message_id"),
    patient_id=sa.bindparam("patient_id"),
    content=sa.bindparam("content"),
)
_UPDATE_RESOURCE = (
    resources_table.update()
    .where(
        resources_table.c.resource_type == sa.bindparam("b_type"),
        resources_table.c.resource_id == sa.bindparam("b_id"),
    )
    .values(
        version_id=sa.bindparam("version_id"),
        last_updated=sa.bindparam("last_updated"),
        source_time=sa.bindparam("source_time"),
        message_id=sa.bindparam("message_id"),
        patient_id=sa.bindparam("patient_id"),
        content=sa.bindparam("content"),
    )
)
_DELETE_INDEX = search_table.delete().where(
    search_table.c.resource_type == sa.bindparam("b_type"),
    search_table.c.resource_id == sa.bindparam("b_id"),
)


class Hl7Store:
    """Message store, FHIR resource store and outbox over one SQLAlchemy engine.

    Args:
        url: SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://...``).
        sqlite_synchronous: SQLite ``PRAGMA synchronous`` (``FULL`` survives power loss).
        echo: Log SQL (debugging only: statements carry patient data as parameters).
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", echo: bool = False) -> None:
        self.url = url
        self._sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self._sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if self._sqlite:
            sync = sqlite_synchronous.upper()
            if sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
                raise ValueError("sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA")

            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                if ":memory:" not in url:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

        self._write_lock = threading.Lock()

    def create_schema(self) -> None:
        """Create the tables and indexes that do not exist yet."""
        _metadata.create_all(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def ping(self) -> None:
        """Run a trivial query; raises the driver's error when the database is unreachable."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # ---- inbound messages -------------------------------------------------------------

    def ingest(
        self,
        items: Sequence[IngestItem],
        converter: Converter | None,
        mapping_version: str | None = None,
    ) -> list[IngestResult]:
        """Store a batch of messages in one transaction, converting those that ask for it.

        A message whose dedup key was seen before (in the store or earlier in the batch) is
        stored as DUPLICATE pointing at the original and not converted. A conversion failure
        marks only that message FAILED. Any database error aborts the whole batch and is
        raised: nothing of the batch is stored, and no message of it may be acknowledged.
        """
        with self._write_lock, self.engine.begin() as conn:
            return self._ingest(conn, items, converter, mapping_version)

    def _ingest(
        self,
        conn: Connection,
        items: Sequence[IngestItem],
        converter: Converter | None,
        mapping_version: str | None,
    ) -> list[IngestResult]:
        t = messages_table
        keys = [
            dedup_key(i.channel, i.sending_application, i.sending_facility, i.control_id)
            if i.status is not MessageStatus.REJECTED and i.control_id
            else None
            for i in items
        ]
        wanted = {k for k in keys if k is not None}
        known: dict[str, tuple[int, str]] = {}
        if wanted:
            found = conn.execute(
                sa.select(t.c.dedup_key, t.c.id, t.c.ack_code).where(t.c.dedup_key.in_(wanted))
            )
            known = {r.dedup_key: (r.id, r.ack_code) for r in found}
        now = _now()
        # Pass 1 (no SQL): decide each message's row; conversion runs here.
        rows: list[dict[str, Any] | None] = [None] * len(items)
        outputs: list[ConversionOutput | None] = [None] * len(items)
        duplicate_of_position: dict[int, int] = {}
        first_position: dict[str, int] = {}
        for position, (item, key) in enumerate(zip(items, keys, strict=True)):
            base: dict[str, Any] = {
                "channel": item.channel,
                "received_at": now,
                "peer": item.peer[:128],
                "sending_application": item.sending_application[:255],
                "sending_facility": item.sending_facility[:255],
                "control_id": item.control_id[:199],
                "message_code": item.message_code[:8],
                "trigger_event": item.trigger_event[:8],
                "structure": item.structure[:16],
                "version": item.version[:16],
                "processing_id": item.processing_id[:8],
                "message_time": _naive_utc(item.message_time),
                "patient_id": item.patient_id[:128] if item.patient_id else None,
                "raw": item.raw,
                "attempts": 0,
                "dedup_key": key,
                "error": None,
                "duplicate_of": None,
                "converted_at": None,
                "mapping_version": None,
            }
            if key is not None and key in known:
                original_id, original_ack = known[key]
                base.update(
                    dedup_key=None,
                    status=MessageStatus.DUPLICATE.value,
                    ack_code=original_ack,
                    duplicate_of=original_id,
                )
                rows[position] = base
                continue
            if key is not None and key in first_position:
                # Resolved once the earlier message of this batch has its id.
                duplicate_of_position[position] = first_position[key]
                base.update(dedup_key=None, status=MessageStatus.DUPLICATE.value)
                rows[position] = base
                continue
            if key is not None:
                first_position[key] = position
            status = item.status
            error = item.error
            ack = item.ack_code
            if status is MessageStatus.RECEIVED and item.convert and converter is not None:
                try:
                    outputs[position] = converter(item.raw)
                    status = MessageStatus.CONVERTED
                    ack = "AA"
                except ConversionFailure as exc:
                    status = MessageStatus.FAILED
                    error = str(exc)
                    ack = "AE"
            elif status in (MessageStatus.RECEIVED, MessageStatus.SKIPPED):
                ack = ack or "AA"
            base.update(status=status.value, ack_code=ack, error=error)
            if outputs[position] is not None:
                base.update(converted_at=now, mapping_version=mapping_version, attempts=1)
            elif status is MessageStatus.FAILED:
                base["attempts"] = 1
            rows[position] = base
        # Pass 2: insert the originals, then the in-batch duplicates pointing at them.
        ids: list[int] = [0] * len(items)
        originals = [i for i in range(len(items)) if i not in duplicate_of_position]
        for position, new_id in zip(
            originals, self._insert_messages(conn, [rows[i] for i in originals]), strict=True
        ):
            ids[position] = new_id
        if duplicate_of_position:
            later = sorted(duplicate_of_position)
            for position in later:
                row = rows[position]
                original = rows[duplicate_of_position[position]]
                assert row is not None and original is not None
                row.update(
                    duplicate_of=ids[duplicate_of_position[position]],
                    ack_code=original["ack_code"],
                )
            for position, new_id in zip(
                later, self._insert_messages(conn, [rows[i] for i in later]), strict=True
            ):
                ids[position] = new_id
        # Pass 3: the resources of the whole batch, in message order, in a few statements.
        writes: list[tuple[ConversionOutput, int]] = []
        written_by: list[int] = []
        for position, output in enumerate(outputs):
            if output is not None:
                writes.append((output, ids[position]))
                written_by.append(position)
        counts = dict(zip(written_by, self._apply_outputs(conn, writes), strict=True))
        results: list[IngestResult] = []
        for position, row in enumerate(rows):
            assert row is not None
            status = MessageStatus(row["status"])
            if status is MessageStatus.DUPLICATE:
                results.append(
                    IngestResult(
                        ids[position],
                        status,
                        duplicate_of=row["duplicate_of"],
                        original_ack_code=row["ack_code"],
                    )
                )
            else:
                results.append(
                    IngestResult(
                        ids[position],
                        status,
                        error=row["error"],
                        resources=counts.get(position, 0),
                    )
                )
        return results

    def _insert_messages(
        self, conn: Connection, rows: Sequence[dict[str, Any] | None]
    ) -> list[int]:
        """Insert message rows; returns their ids in the same order."""
        if not rows:
            return []
        params = [row for row in rows if row is not None]
        if (
            len(params) > 1
            and self.engine.dialect.insert_executemany_returning_sort_by_parameter_order
        ):
            result = conn.execute(
                messages_table.insert().returning(
                    messages_table.c.id, sort_by_parameter_order=True
                ),
                params,
            )
            return [int(v) for v in result.scalars().all()]
        out = []
        for row in params:
            pk = conn.execute(_INSERT_MESSAGE, row).inserted_primary_key
            assert pk is not None
            out.append(int(pk[0]))
        return out

    def mark_ack(self, message_id: int, ack_code: str) -> None:
        """Record the acknowledgment code actually sent for a stored message."""
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(
                messages_table.update()
                .where(messages_table.c.id == message_id)
                .values(ack_code=ack_code)
            )

    def convert_stored(
        self,
        message_ids: Iterable[int],
        converter: Converter,
        mapping_version: str | None = None,
        *,
        convert_many: BatchConverter | None = None,
    ) -> dict[int, MessageStatus]:
        """(Re)convert stored messages through the current mappings, in id order.

        Messages are converted outside the write lock and written in one transaction per
        chunk of 200. Duplicates, rejected and skipped messages are left alone. A failure
        marks the message FAILED with the reason and moves on; it never stops the ones after
        it. ``convert_many``, when given, converts each chunk (e.g. in worker processes)
        instead of calling ``converter`` per message.
        """
        outcome: dict[int, MessageStatus] = {}
        t = messages_table
        ids = list(message_ids)
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            with self.engine.connect() as conn:
                rows = {
                    int(row.id): row
                    for row in conn.execute(
                        sa.select(t.c.id, t.c.status, t.c.raw, t.c.attempts).where(
                            t.c.id.in_(chunk)
                        )
                    )
                }
            # Conversion is pure CPU work: it runs before the write transaction so the
            # listener's group commits are not held up by it.
            todo = [
                rows[message_id]
                for message_id in chunk
                if message_id in rows and rows[message_id].status not in _NOT_CONVERTED
            ]
            done: list[tuple[int, int, ConversionOutput | str]] = []
            if convert_many is not None:
                converted_all = convert_many([row.raw for row in todo])
                for row, result in zip(todo, converted_all, strict=True):
                    done.append((int(row.id), row.attempts, result))
            else:
                for row in todo:
                    try:
                        done.append((int(row.id), row.attempts, converter(row.raw)))
                    except ConversionFailure as exc:
                        done.append((int(row.id), row.attempts, str(exc)))
            if not done:
                continue
            with self._write_lock, self.engine.begin() as conn:
                writes: list[tuple[ConversionOutput, int]] = []
                failed: list[dict[str, Any]] = []
                converted: list[dict[str, Any]] = []
                now = _now()
                for message_id, attempts, result in done:
                    if isinstance(result, str):
                        failed.append(
                            {
                                "b_id": message_id,
                                "error": result,
                                "attempts": attempts + 1,
                                "mapping_version": mapping_version,
                            }
                        )
                        outcome[message_id] = MessageStatus.FAILED
                        continue
                    writes.append((result, message_id))
                    converted.append(
                        {
                            "b_id": message_id,
                            "attempts": attempts + 1,
                            "converted_at": now,
                            "mapping_version": mapping_version,
                        }
                    )
                    outcome[message_id] = MessageStatus.CONVERTED
                self._apply_outputs(conn, writes)
                if failed:
                    conn.execute(_MARK_FAILED, failed)
                if converted:
                    conn.execute(_MARK_CONVERTED, converted)
        return outcome

    def pending_ids(self, limit: int = 100) -> list[int]:
        """Ids of messages stored but not converted yet, oldest first."""
        t = messages_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.id)
                .where(t.c.status == MessageStatus.RECEIVED.value)
                .order_by(t.c.id)
                .limit(limit)
            )
            return [int(r.id) for r in rows]

    def find_messages(
        self, flt: MessageFilter, *, limit: int = 100, with_raw: bool = False
    ) -> list[StoredMessage]:
        """Stored messages matching ``flt``, in id order, at most ``limit``."""
        t = messages_table
        cols = [c for c in t.c if c.name != "dedup_key" and (with_raw or c.name != "raw")]
        q = sa.select(*cols)
        conds: list[sa.ColumnElement[bool]] = []
        if flt.channel is not None:
            conds.append(t.c.channel == flt.channel)
        if flt.message_code is not None:
            conds.append(t.c.message_code == flt.message_code.upper())
        if flt.trigger_event is not None:
            conds.append(t.c.trigger_event == flt.trigger_event.upper())
        if flt.patient_id is not None:
            conds.append(t.c.patient_id == flt.patient_id)
        if flt.control_id is not None:
            conds.append(t.c.control_id == flt.control_id)
        if flt.status is not None:
            conds.append(t.c.status == flt.status.value)
        if flt.received_from is not None:
            conds.append(t.c.received_at >= _naive_utc(flt.received_from))
        if flt.received_to is not None:
            conds.append(t.c.received_at < _naive_utc(flt.received_to))
        if flt.after_id is not None:
            conds.append(t.c.id > flt.after_id)
        q = q.where(*conds).order_by(t.c.id).limit(limit)
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(q):
                m = r._mapping
                out.append(
                    StoredMessage(
                        id=m["id"],
                        channel=m["channel"],
                        received_at=m["received_at"],
                        peer=m["peer"],
                        sending_application=m["sending_application"],
                        sending_facility=m["sending_facility"],
                        control_id=m["control_id"],
                        message_code=m["message_code"],
                        trigger_event=m["trigger_event"],
                        structure=m["structure"],
                        version=m["version"],
                        processing_id=m["processing_id"],
                        message_time=m["message_time"],
                        patient_id=m["patient_id"],
                        status=MessageStatus(m["status"]),
                        ack_code=m["ack_code"],
                        error=m["error"],
                        duplicate_of=m["duplicate_of"],
                        attempts=m["attempts"],
                        converted_at=m["converted_at"],
                        mapping_version=m["mapping_version"],
                        raw=m["raw"] if with_raw else None,
                    )
                )
            return out

    def status_counts(self) -> dict[tuple[str, str], int]:
        """Number of stored messages per (channel, status)."""
        t = messages_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.channel, t.c.status, sa.func.count()).group_by(
                    t.c.channel, t.c.status
                )
            )
            return {(r[0], r[1]): int(r[2]) for r in rows}

    # ---- FHIR resources ---------------------------------------------------------------

    def _upsert_resources(self, conn: Connection, output: ConversionOutput, message_id: int) -> int:
        return self._apply_outputs(conn, [(output, message_id)])[0]

    def _apply_outputs(
        self, conn: Connection, writes: Sequence[tuple[ConversionOutput, int]]
    ) -> list[int]:
        """Write the resources of several converted messages, in order, in a few statements.

        Each resource is read once, the messages' writes are folded in memory in the order
        given (an older message never overwrites a resource written from a newer one; every
        applied write bumps the version), and the final state is written with one
        ``executemany`` per statement. Returns the number of resources each message wrote.
        """
        counts = [0] * len(writes)
        wanted: dict[str, set[str]] = {}
        for output, _ in writes:
            for resource in output.resources:
                wanted.setdefault(resource["resourceType"], set()).add(resource["id"])
        if not wanted:
            return counts
        state: dict[tuple[str, str], _ResourceState] = {}
        for rtype, ids in wanted.items():
            ordered = sorted(ids)
            for start in range(0, len(ordered), 500):
                rows = conn.execute(
                    _SELECT_RESOURCES, {"rtype": rtype, "rids": ordered[start : start + 500]}
                )
                for row in rows:
                    state[(rtype, row.resource_id)] = _ResourceState(
                        version=row.version_id,
                        source_time=row.source_time,
                        stored=row.content,
                        exists=True,
                        original=row.content,
                    )
        now = _now()
        stamp = now.replace(tzinfo=UTC).isoformat(timespec="milliseconds")
        changed: dict[tuple[str, str], _ResourceState] = {}
        for position, (output, message_id) in enumerate(writes):
            source_time = _naive_utc(output.source_time)
            for resource in output.resources:
                key = (resource["resourceType"], resource["id"])
                current = state.get(key)
                if (
                    current is not None
                    and current.source_time is not None
                    and (source_time is not None and source_time < current.source_time)
                ):
                    # An older message arriving late must not overwrite newer data.
                    continue
                version = 1 if current is None else current.version + 1
                merge = resource.pop("_merge", None)
                if merge and current is not None:
                    resource = _merge_resource(current.content(), resource, merge)
                resource["meta"] = {
                    **resource.get("meta", {}),
                    "versionId": str(version),
                    "lastUpdated": stamp,
                }
                entry = _ResourceState(
                    version=version,
                    source_time=source_time,
                    stored=None,
                    exists=current is not None and current.exists,
                    original=current.original if current is not None else None,
                    resource=resource,
                    message_id=message_id,
                )
                state[key] = changed[key] = entry
                counts[position] += 1
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        index: list[dict[str, Any]] = []
        reindex: list[dict[str, str]] = []
        for (rtype, rid), entry in changed.items():
            resource = entry.content()
            params: dict[str, Any] = {
                "b_type": rtype,
                "b_id": rid,
                "version_id": entry.version,
                "last_updated": now,
                "source_time": entry.source_time,
                "message_id": entry.message_id,
                "patient_id": _patient_of(resource),
                "content": json.dumps(resource, separators=(",", ":"), ensure_ascii=False),
            }
            if not entry.exists:
                inserts.append(params)
            else:
                updates.append(params)
                if entry.original is not None and _same_content(entry.original, resource):
                    # Same content as stored (a resend, a patient repeated in every
                    # message): its search rows stay as they are.
                    continue
                reindex.append({"b_type": rtype, "b_id": rid})
            index.extend(entry_row._asdict() for entry_row in index_rows(resource))
        if inserts:
            conn.execute(_INSERT_RESOURCE, inserts)
        if updates:
            conn.execute(_UPDATE_RESOURCE, updates)
        if reindex:
            conn.execute(_DELETE_INDEX, reindex)
        if index:
            conn.execute(search_table.insert(), index)
        return counts

    def get_resource(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """One stored resource, or None."""
        r = resources_table
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(r.c.version_id, r.c.last_updated, r.c.content).where(
                    r.c.resource_type == resource_type, r.c.resource_id == resource_id
                )
            ).first()
        if row is None:
            return None
        return StoredResource(
            resource_type, resource_id, row.version_id, row.last_updated, json.loads(row.content)
        )

    def put_resource(self, resource: dict[str, Any], *, message_id: int | None = None) -> int:
        """Insert or replace one resource outside message ingestion; returns its version."""
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_resources(conn, ConversionOutput([resource]), message_id or 0)
            r = resources_table
            version = conn.execute(
                sa.select(r.c.version_id).where(
                    r.c.resource_type == resource["resourceType"], r.c.resource_id == resource["id"]
                )
            ).scalar_one()
            return int(version)

    def search_resources(
        self,
        resource_type: str,
        conditions: Sequence[sa.ColumnElement[bool]],
        *,
        after_id: str | None,
        limit: int,
        include_total: bool,
    ) -> tuple[list[StoredResource], int | None]:
        """Resources of one type matching every condition, in id order (keyset paging)."""
        r = resources_table
        base = [r.c.resource_type == resource_type, *conditions]
        q = sa.select(r.c.resource_id, r.c.version_id, r.c.last_updated, r.c.content).where(*base)
        if after_id is not None:
            q = q.where(r.c.resource_id > after_id)
        q = q.order_by(r.c.resource_id).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            total = None
            if include_total:
                total = int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(r).where(*base)
                    ).scalar_one()
                )
        return [
            StoredResource(
                resource_type,
                row.resource_id,
                row.version_id,
                row.last_updated,
                json.loads(row.content),
            )
            for row in rows
        ], total

    # ---- outbound ---------------------------------------------------------------------

    def outbound_get(self, key: str) -> OutboundRecord | None:
        """The outbound record of an idempotency key, or None."""
        o = outbound_table
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(o).where(o.c.key == key)).first()
        return _outbound(row._mapping) if row is not None else None

    def outbound_create(self, record: OutboundRecord) -> OutboundRecord:
        """Insert a new outbound record (status PENDING); returns it with its id."""
        o = outbound_table
        with self._write_lock, self.engine.begin() as conn:
            pk = conn.execute(
                o.insert().values(
                    key=record.key,
                    channel=record.channel,
                    control_id=record.control_id,
                    message_type=record.message_type,
                    resource_type=record.resource_type,
                    resource_id=record.resource_id,
                    status=record.status.value,
                    attempts=record.attempts,
                    ack_code=record.ack_code,
                    last_error=record.last_error,
                    created_at=_now(),
                    updated_at=_now(),
                    payload=record.payload,
                )
            ).inserted_primary_key
        assert pk is not None
        record.id = int(pk[0])
        return record

    def outbound_update(
        self,
        record_id: int,
        *,
        status: OutboundStatus,
        attempts: int,
        ack_code: str = "",
        last_error: str | None = None,
    ) -> None:
        """Record the outcome of a send attempt."""
        o = outbound_table
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(
                o.update()
                .where(o.c.id == record_id)
                .values(
                    status=status.value,
                    attempts=attempts,
                    ack_code=ack_code,
                    last_error=last_error,
                    updated_at=_now(),
                )
            )

    def outbound_list(
        self, status: OutboundStatus | None = None, limit: int = 100
    ) -> list[OutboundRecord]:
        """Outbound records, oldest first, optionally of one status."""
        o = outbound_table
        q = sa.select(o)
        if status is not None:
            q = q.where(o.c.status == status.value)
        with self.engine.connect() as conn:
            return [_outbound(r._mapping) for r in conn.execute(q.order_by(o.c.id).limit(limit))]


def _outbound(m: sa.RowMapping) -> OutboundRecord:
    return OutboundRecord(
        id=m["id"],
        key=m["key"],
        channel=m["channel"],
        control_id=m["control_id"],
        message_type=m["message_type"],
        resource_type=m["resource_type"],
        resource_id=m["resource_id"],
        status=OutboundStatus(m["status"]),
        attempts=m["attempts"],
        ack_code=m["ack_code"],
        last_error=m["last_error"],
        payload=m["payload"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _patient_of(resource: dict[str, Any]) -> str | None:
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict):
            text = ref.get("reference", "")
            if isinstance(text, str) and text.startswith("Patient/"):
                return text[8:]
    for participant in resource.get("participant", []) or []:
        text = (participant.get("actor") or {}).get("reference", "")
        if isinstance(text, str) and text.startswith("Patient/"):
            return text[8:]
    return None


def _same_content(stored: str, resource: dict[str, Any]) -> bool:
    """Whether ``resource`` equals the stored JSON apart from ``versionId``/``lastUpdated``."""
    before: dict[str, Any] = json.loads(stored)
    return _without_version(before) == _without_version(resource)


def _without_version(resource: dict[str, Any]) -> dict[str, Any]:
    out = dict(resource)
    meta = out.get("meta")
    if isinstance(meta, dict):
        rest = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if rest:
            out["meta"] = rest
        else:
            del out["meta"]
    return out


def _merge_resource(
    current: dict[str, Any], new: dict[str, Any], keys: Sequence[str]
) -> dict[str, Any]:
    """Overlay only ``keys`` of ``new`` onto ``current`` (partial updates such as merges)."""
    merged = dict(current)
    merged.pop("meta", None)
    for key in keys:
        if key in new:
            merged[key] = new[key]
        else:
            merged.pop(key, None)
    return merged
