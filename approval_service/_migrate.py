"""Schema migrations: ``migrate(url)`` upgrades a database to the newest shipped revision."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

__all__ = ["VERSION_TABLE", "current_revision", "head_revision", "migrate"]

VERSION_TABLE = "his_approval_alembic_version"
"""Alembic's bookkeeping table; named apart so other Alembic users of the database coexist."""
_SCRIPTS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: replicas starting together take turns migrating.
_PG_LOCK_KEY = 0x4849535F41505052


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    """The newest revision shipped with this package."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("the approval queue ships no migrations")
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """The revision a database is at (None before the first migration)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def migrate(url: str | sa.Engine, revision: str = "head") -> None:
    """Upgrade the queue's tables to ``revision`` (the newest by default).

    Safe to run from several replicas at once on PostgreSQL (an advisory lock serialises
    them) and on SQLite (the database lock does).

    Args:
        url: A SQLAlchemy URL or an engine.
        revision: The target revision.
    """
    engine = sa.create_engine(url) if isinstance(url, str) else url
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            config = _config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        if isinstance(url, str):
            engine.dispose()
