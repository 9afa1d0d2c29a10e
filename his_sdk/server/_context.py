"""Per-call context: who is calling and how the call is identified, set by the gRPC interceptor."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass, field

from his_sdk.auth import Principal

__all__ = ["AuditNotes", "CallContext", "current_call"]


@dataclass
class AuditNotes:
    """What a call touched, collected by the handlers while it runs, for its audit record."""

    patients: set[str] = field(default_factory=set)
    resource_ids: list[str] = field(default_factory=list)

    def add_patients(self, patients: Iterable[str | None]) -> None:
        """Record patient compartments the call touched (None entries are ignored)."""
        self.patients.update(p for p in patients if p)


@dataclass(frozen=True)
class CallContext:
    """What the transport knows about one call, handed to the service core.

    Attributes:
        principal: The verified caller, or None for unauthenticated methods.
        request_id: The caller's ``x-request-id`` or a generated one.
        trace_parent: W3C ``traceparent`` header when the caller sent one.
        peer: The transport's peer address.
        break_glass_reason: The ``x-his-break-glass`` header: the reason for an emergency
            override, or None.
        audit_notes: What the call touched, for its audit record.
    """

    principal: Principal | None
    request_id: str
    trace_parent: str | None = None
    peer: str = ""
    break_glass_reason: str | None = None
    audit_notes: AuditNotes = field(default_factory=AuditNotes, compare=False)


current_call: contextvars.ContextVar[CallContext] = contextvars.ContextVar("his_current_call")
