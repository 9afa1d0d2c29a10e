"""Per-call context: who is calling and how the call is identified, set by the gRPC interceptor."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from his_sdk.auth import Principal

__all__ = ["CallContext", "current_call"]


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
    """

    principal: Principal | None
    request_id: str
    trace_parent: str | None = None
    peer: str = ""
    break_glass_reason: str | None = None


current_call: contextvars.ContextVar[CallContext] = contextvars.ContextVar("his_current_call")
