"""Audit around every service call: one IHE BALP record set per call, success or failure.

The auditor wraps the whole call (validation, policy, adapter), so refused and invalid calls
are recorded as well as answered ones. Handlers further down leave what they learn (the
patient compartments the policy decided on) in the call's :class:`AuditNotes`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlencode

from his_sdk.audit import (
    AuditAction,
    AuditContext,
    AuditOutcome,
    AuditPrincipal,
    AuditTrail,
    outcome_for_error,
)
from his_sdk.server._context import AuditNotes, CallContext

__all__ = ["AuditNotes", "CallAuditor", "query_string"]

_ANONYMOUS = AuditPrincipal(client_id="unauthenticated")


def query_string(parameters: Iterable[tuple[str, str]]) -> str:
    """The search as FHIR REST would spell it, for the audit record's query entity."""
    return urlencode(list(parameters), safe=",|:/")


class CallAuditor:
    """Records every call through an :class:`AuditTrail`; does nothing when auditing is off."""

    def __init__(self, trail: AuditTrail | None) -> None:
        self._trail = trail

    @contextlib.asynccontextmanager
    async def audit(
        self,
        call: CallContext,
        action: AuditAction,
        resource_type: str,
        *,
        resource_id: str | None = None,
        query: str | None = None,
        operation: str | None = None,
    ) -> AsyncIterator[AuditNotes]:
        """Record the call when the block ends, with its outcome; re-raise any error.

        ``operation`` names the operation of an ``AuditAction.OPERATION`` (a tool invocation).

        A read whose audit record cannot be stored is not answered: the error from the trail
        (UNAVAILABLE) replaces the result.
        """
        notes = call.audit_notes
        if resource_id:
            notes.resource_ids.append(resource_id)
        try:
            yield notes
        except BaseException as exc:
            if self._trail is not None and isinstance(exc, Exception):
                outcome, text = outcome_for_error(exc)
                await self._record(
                    call, action, resource_type, query, notes, outcome, text, operation
                )
            raise
        if self._trail is not None:
            await self._record(
                call, action, resource_type, query, notes, AuditOutcome.SUCCESS, None, operation
            )

    async def _record(
        self,
        call: CallContext,
        action: AuditAction,
        resource_type: str,
        query: str | None,
        notes: AuditNotes,
        outcome: AuditOutcome,
        text: str | None,
        operation: str | None = None,
    ) -> None:
        assert self._trail is not None
        principal = AuditPrincipal.from_principal(call.principal) if call.principal else _ANONYMOUS
        context = AuditContext(
            action=action,
            principal=principal,
            resource_type=resource_type or None,
            resource_ids=() if action.is_search else tuple(notes.resource_ids[:1]),
            patient_ids=tuple(sorted(notes.patients)),
            outcome=outcome,
            outcome_text=text,
            query=query if action.is_search else None,
            operation=operation,
            request_id=call.request_id,
            traceparent=call.trace_parent,
            client_address=call.peer or None,
        )
        await self._trail.record(context)
