"""The AuditEvents of one approval request, read back from the queue's audit outbox."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass

from his_sdk.audit import ChainedEvent

from .._model import ApprovalRequest
from .._service import ApprovalService

__all__ = ["AuditLine", "request_audit_events"]

_SCAN_LIMIT = 20_000
_OUTCOMES = {"0": "success", "4": "minor failure", "8": "serious failure", "12": "major failure"}


@dataclass(frozen=True)
class AuditLine:
    """One AuditEvent as the console lists it."""

    seq: int
    recorded: datetime.datetime
    operation: str
    outcome: str
    agent: str | None
    user: str | None
    hash: str
    intact: bool


def _line(event: ChainedEvent) -> AuditLine:
    return AuditLine(
        seq=event.seq,
        recorded=event.recorded,
        operation=event.subtype or event.action,
        outcome=_OUTCOMES.get(event.outcome, event.outcome),
        agent=event.client_id,
        user=event.user,
        hash=event.hash,
        intact=event.intact,
    )


def _scan(service: ApprovalService, item: ApprovalRequest) -> list[AuditLine] | None:
    trail = service.audit
    if not trail.settings.enabled:
        return None
    reference = f"Task/{item.id}"
    found = []
    # Events of a request are never older than the request; the chain is in time order.
    since = item.created_at - datetime.timedelta(seconds=1)
    for scanned, event in enumerate(
        trail.outbox.events(since=since, chain_id=trail.settings.effective_chain_id)
    ):
        if scanned >= _SCAN_LIMIT:
            break
        if event.resource == reference:
            found.append(_line(event))
    return found


async def request_audit_events(
    service: ApprovalService, item: ApprovalRequest
) -> list[AuditLine] | None:
    """The AuditEvents about ``item`` still retained in the outbox (``audit.retention``).

    None when the audit trail is off (``audit.enabled: false``).

    Older events live in the audit archive (``his audit ...``); the request's history, kept
    with the request, lists every transition regardless.
    """
    return await asyncio.to_thread(_scan, service, item)
