"""Alembic environment of the approval queue: runs on the connection ``migrate`` hands it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from approval_service._migrate import VERSION_TABLE
from approval_service._tables import APPROVAL_TABLES, METADATA


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # The queue often shares its database with the audit outbox and the gateway's state;
    # autogenerate must only ever touch the queue's own tables.
    if type_ == "table":
        return name in APPROVAL_TABLES
    table = getattr(obj, "table", None)
    return table is None or table.name in APPROVAL_TABLES


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        version_table=VERSION_TABLE,
        include_object=_ours,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()
