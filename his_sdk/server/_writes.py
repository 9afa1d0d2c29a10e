"""The contract between the gateway's write path and the approval queue behind it.

A write never reaches an adapter from a call: :class:`his_sdk.server.FhirService` authorizes it
and hands a :class:`ProposedWrite` to the configured :class:`WriteQueue` (``approval_service``
by default, loaded by import string from ``approvals.implementation``), which answers with the
FHIR Task the agent follows. Once reviewers approve, the queue executes the write exactly once
through the :data:`WriteExecutor` the gateway gives it (the routed adapter's ``execute``).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import grpc
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

from his_sdk.adapter import ApprovedWrite, Interaction, WriteOutcome
from his_sdk.config import ApprovalSettings, AuditSettings
from his_sdk.server._context import CallContext

__all__ = [
    "ProposalResult",
    "ProposedWrite",
    "WriteExecutor",
    "WriteQueue",
    "load_write_queue",
]

WriteExecutor = Callable[[ApprovedWrite], Awaitable[WriteOutcome]]
"""Executes an approved write on the adapter serving its type (idempotent by ``write.key``)."""


@dataclass(frozen=True)
class ProposedWrite:
    """One authorized write, as the agent proposed it.

    Attributes:
        call: The proposing call (its principal is the requester).
        interaction: CREATE, UPDATE or DELETE.
        resource_type: The type written.
        resource_id: The target of an UPDATE or DELETE; None for CREATE.
        resource: The proposed body (CREATE and UPDATE); None for DELETE.
        current: The EHR's current version of the target (UPDATE and DELETE).
        patient_id: The patient compartment the write touches, if any.
        justification: The agent's reason, shown to reviewers (never empty).
        idempotency_key: The caller's key, or None to derive one.
    """

    call: CallContext
    interaction: Interaction
    resource_type: str
    resource_id: str | None
    resource: Resource | None
    current: Resource | None
    patient_id: str | None
    justification: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ProposalResult:
    """The Task answering a proposal.

    Attributes:
        task: The FHIR Task tracking the approval request.
        replayed: True when an earlier proposal with the same idempotency key was returned.
    """

    task: Task
    replayed: bool


@runtime_checkable
class WriteQueue(Protocol):
    """Where authorized writes wait for human approval; implemented by ``approval_service``."""

    @classmethod
    def from_settings(
        cls,
        settings: ApprovalSettings,
        *,
        executor: WriteExecutor,
        default_url: str,
        audit: AuditSettings,
    ) -> WriteQueue:
        """Build the queue.

        Args:
            settings: The ``approvals`` section.
            executor: Runs approved writes on the adapters.
            default_url: The database to use when ``settings.url`` is empty (the state one).
            audit: The audit settings for the queue's AuditEvents.
        """
        ...

    async def start(self) -> None:
        """Prepare the database and start background work (expiry, recovery)."""
        ...

    async def close(self) -> None:
        """Stop background work and release connections."""
        ...

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        """Register the queue's own gRPC services; return their full names (for reflection)."""
        ...

    async def propose(self, write: ProposedWrite) -> ProposalResult:
        """Queue a write (or find the one with the same idempotency key)."""
        ...

    async def get_task(self, call: CallContext, task_id: str) -> Task:
        """The Task of one request the caller may see.

        Raises:
            his_sdk.errors.NotFoundError: No such request, or not the caller's.
        """
        ...

    def watch_task(self, call: CallContext, task_id: str) -> AsyncIterator[Task]:
        """The Task now and after each status change, ending after a terminal status.

        Raises:
            his_sdk.errors.NotFoundError: No such request, or not the caller's.
        """
        ...


def load_write_queue(
    settings: ApprovalSettings,
    *,
    executor: WriteExecutor,
    default_url: str,
    audit: AuditSettings,
) -> WriteQueue:
    """Import ``settings.implementation`` (``module:Class``) and build it with ``from_settings``.

    Raises:
        ValueError: The import string is malformed or names no write queue.
    """
    module_name, _, attr = settings.implementation.partition(":")
    if not module_name or not attr:
        raise ValueError(
            f"approvals.implementation must be 'module:Class', got {settings.implementation!r}"
        )
    try:
        cls: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {settings.implementation!r}: {exc}") from exc
    queue = cls.from_settings(settings, executor=executor, default_url=default_url, audit=audit)
    if not isinstance(queue, WriteQueue):
        raise ValueError(f"{settings.implementation} is not a WriteQueue")
    return queue
