"""A durable record of every emergency (break-glass) override the policy granted."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from his_sdk.auth import Principal
from his_sdk.policy import AccessRequest
from his_sdk.server._context import CallContext

__all__ = ["BreakGlassLog", "state_engine"]

_log = logging.getLogger(__name__)

_metadata = sa.MetaData()
break_glass_events = sa.Table(
    "his_break_glass_events",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("client_id", sa.String(256), nullable=False),
    sa.Column("user", sa.String(256)),
    sa.Column("token_id", sa.String(256), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("patient_id", sa.String(128)),
    sa.Column("reason", sa.Text, nullable=False),
)


def state_engine(url: str) -> sa.Engine:
    """An engine for the gateway's own database, creating a SQLite file's folder if needed."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, pool_pre_ping=True)


class BreakGlassLog:
    """Writes one row per granted override before the data is released (fails closed)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        _metadata.create_all(engine)

    async def record(self, call: CallContext, principal: Principal, request: AccessRequest) -> None:
        """Persist the override; the call fails if the record cannot be written."""
        user = principal.on_behalf_of.subject if principal.on_behalf_of else principal.subject
        row = {
            "recorded_at": datetime.now(UTC),
            "request_id": call.request_id,
            "client_id": principal.client_id,
            "user": user,
            "token_id": principal.token_id,
            "action": request.action,
            "resource_type": request.resource_type,
            "patient_id": request.patient_id,
            "reason": request.break_glass_reason or "",
        }
        await asyncio.to_thread(self._insert, row)
        _log.warning(
            "break-glass access granted: request=%s client=%s user=%s action=%s type=%s",
            call.request_id,
            principal.client_id,
            user,
            request.action,
            request.resource_type,
        )

    def _insert(self, row: dict[str, object]) -> None:
        with self._engine.begin() as conn:
            conn.execute(break_glass_events.insert().values(**row))

    def recent(self, limit: int = 100) -> list[dict[str, object]]:
        """The latest overrides, newest first (for reviewers and tests)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(break_glass_events).order_by(break_glass_events.c.id.desc()).limit(limit)
            )
            return [dict(r._mapping) for r in rows]
