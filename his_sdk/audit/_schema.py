"""SQLAlchemy tables of the outbox (gateway side) and the audit store (archive side)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.pool import StaticPool

__all__ = [
    "UtcDateTime",
    "archive_chain_table",
    "archive_metadata",
    "archive_offset_table",
    "archive_table",
    "chain_table",
    "make_engine",
    "outbox_metadata",
    "outbox_table",
]


class UtcDateTime(sa.types.TypeDecorator[datetime.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no time zone type and returns naive values; PostgreSQL stores ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        """Convert to UTC; naive values are refused rather than guessed."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        utc = value.astimezone(datetime.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        """Attach UTC to naive values read back from SQLite."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


outbox_metadata = sa.MetaData()
"""Tables living in the gateway's database."""

outbox_table = sa.Table(
    "his_audit_outbox",
    outbox_metadata,
    sa.Column("chain_id", sa.String(128), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("patient_key", sa.String(128), nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("published_at", UtcDateTime, nullable=True),
    sa.Index(
        "ix_his_audit_outbox_unpublished",
        "chain_id",
        "seq",
        sqlite_where=sa.text("published_at IS NULL"),
        postgresql_where=sa.text("published_at IS NULL"),
    ),
    sa.Index("ix_his_audit_outbox_published_at", "published_at"),
    sa.Index("ix_his_audit_outbox_created_at", "created_at"),
)
"""One row per AuditEvent: its chain link and payload, until published and past retention."""

chain_table = sa.Table(
    "his_audit_chain",
    outbox_metadata,
    sa.Column("chain_id", sa.String(128), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
"""The head of each chain; its row lock serialises appends to the chain."""

archive_metadata = sa.MetaData()
"""Tables of the audit store that ``archive`` fills (any database)."""

archive_table = sa.Table(
    "his_audit_archive",
    archive_metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("chain_id", sa.String(128), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("patient_key", sa.String(128), nullable=True),
    sa.Column("client_id", sa.String(256), nullable=True),
    sa.Column("user_ref", sa.String(256), nullable=True),
    sa.Column("action", sa.String(1), nullable=False),
    sa.Column("subtype", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(2), nullable=False),
    sa.Column("resource", sa.String(256), nullable=True),
    sa.Column("recorded", UtcDateTime, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("archived_at", UtcDateTime, nullable=False),
    sa.Column("chain_status", sa.String(8), nullable=False),
    sa.Column("kafka_partition", sa.Integer, nullable=True),
    sa.Column("kafka_offset", sa.BigInteger, nullable=True),
    sa.Index("ix_his_audit_archive_chain_seq", "chain_id", "seq"),
    sa.Index("ix_his_audit_archive_patient", "patient_key", "recorded"),
    sa.Index("ix_his_audit_archive_recorded", "recorded"),
)
"""Every archived AuditEvent once (keyed by event id), with the columns compliance filters on.

``chain_status``: ``ok`` (linked to a verified predecessor), ``pending`` (predecessor not yet
archived), ``altered`` (content does not match its hash), ``broken`` (does not link to its
predecessor) or ``conflict`` (another event already holds its place in the chain).
"""

archive_chain_table = sa.Table(
    "his_audit_archive_chain",
    archive_metadata,
    sa.Column("chain_id", sa.String(128), primary_key=True),
    sa.Column("verified_seq", sa.BigInteger, nullable=False),
    sa.Column("verified_hash", sa.String(64), nullable=False),
)
"""How far each chain is verified without a gap from its start."""

archive_offset_table = sa.Table(
    "his_audit_archive_offset",
    archive_metadata,
    sa.Column("topic", sa.String(249), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("topic_id", sa.String(64), nullable=True),
)
"""Where the archive resumes in each partition, and which incarnation of the topic that was."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine suited to the audit tables.

    SQLite files get write-ahead logging (readers do not block the writer) and a 30 s busy
    timeout, and their folder is created; ``:memory:`` databases share one connection across
    threads.

    Args:
        url: A SQLAlchemy URL.
        **kwargs: Passed to :func:`sqlalchemy.create_engine`.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(parsed, **kwargs)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", 30.0)
    connect_args.setdefault("check_same_thread", False)
    if in_memory:
        kwargs.setdefault("poolclass", StaticPool)
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    if not in_memory:

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

    return engine
