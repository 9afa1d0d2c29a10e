"""The queue's database: engines and transactions that serialise competing writers.

PostgreSQL serialises with row locks (``SELECT ... FOR UPDATE``, and ``SKIP LOCKED`` where
executors claim work). SQLite has no row locks and ignores ``FOR UPDATE``; its safe equivalent
is to take the database's write lock when a writing transaction begins (``BEGIN IMMEDIATE``), so
no two transactions read the same state and then both act on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

__all__ = ["Database"]

_IMMEDIATE = "his_begin_immediate"


class Database:
    """Engines for one queue database.

    Args:
        url: A SQLAlchemy URL (SQLite file, ``:memory:``, or PostgreSQL).
        pool_size: Connections kept open (PostgreSQL).
    """

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        parsed = sa.make_url(url)
        self.url = url
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            memory = database in ("", ":memory:") or database.startswith("file::memory:")
            # pysqlite's own transaction handling is switched off so BEGIN is ours to emit.
            kwargs["connect_args"] = {"timeout": 30.0, "check_same_thread": False}
            if memory:
                kwargs["poolclass"] = StaticPool
            else:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(parsed, **kwargs)
            sa.event.listen(engine, "connect", _sqlite_connect(memory))
            sa.event.listen(engine, "begin", _sqlite_begin)
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
            engine = sa.create_engine(parsed, **kwargs)
        self.engine = engine
        """For reads, the audit trail and migrations."""
        self._writer = engine.execution_options(**{_IMMEDIATE: True})

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a transaction that commits on success and rolls back on any error.

        On SQLite the transaction holds the database's write lock from its start.
        """
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def for_update(self, statement: Any, *, skip_locked: bool = False) -> Any:
        """``statement`` locking its rows: waiting, or skipping rows others hold."""
        return statement.with_for_update(skip_locked=skip_locked)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_connect(memory: bool) -> Any:
    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return connect


def _sqlite_begin(conn: sa.Connection) -> None:
    immediate = conn.get_execution_options().get(_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
