"""The queue's values as its callers see them: requests, versions, decisions, history, queries."""

from __future__ import annotations

import datetime
import enum
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.task import Task

import his_sdk.auth
from his_sdk.adapter import Interaction

from ._policy import RiskTier

__all__ = [
    "ApprovalRequest",
    "DecisionAction",
    "DecisionRecord",
    "HistoryEvent",
    "Outcome",
    "Party",
    "RequestPage",
    "RequestQuery",
    "RequestStatus",
    "RequestVersion",
]


class RequestStatus(enum.StrEnum):
    """``pending -> approved | rejected | expired``; ``approved -> executed | failed``."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTED = "executed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """Whether nothing can follow this status."""
        return self in (
            RequestStatus.REJECTED,
            RequestStatus.EXPIRED,
            RequestStatus.EXECUTED,
            RequestStatus.FAILED,
        )

    @property
    def task_status(self) -> str:
        """The FHIR ``Task.status`` the agent sees."""
        return _TASK_STATUS[self]


_TASK_STATUS = {
    RequestStatus.PENDING: "requested",
    RequestStatus.APPROVED: "accepted",
    RequestStatus.REJECTED: "rejected",
    RequestStatus.EXPIRED: "cancelled",
    RequestStatus.EXECUTED: "completed",
    RequestStatus.FAILED: "failed",
}

TRANSITIONS: Mapping[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.PENDING: frozenset(
        {RequestStatus.APPROVED, RequestStatus.REJECTED, RequestStatus.EXPIRED}
    ),
    RequestStatus.APPROVED: frozenset({RequestStatus.EXECUTED, RequestStatus.FAILED}),
    RequestStatus.REJECTED: frozenset(),
    RequestStatus.EXPIRED: frozenset(),
    RequestStatus.EXECUTED: frozenset(),
    RequestStatus.FAILED: frozenset(),
}
"""The state machine: the statuses each status may move to."""


class DecisionAction(enum.StrEnum):
    """What a reviewer decides."""

    APPROVE = "approve"
    APPROVE_WITH_EDITS = "approve_with_edits"
    REJECT = "reject"


@dataclass(frozen=True)
class Party:
    """A party to a request: the requesting agent and its human, or a reviewer.

    Attributes:
        client_id: The OAuth2 client.
        subject: The token's subject.
        user: The human behind the call (the agent's ``act`` user, or the token subject
            for a person's own token), if known.
        fhir_user: That human's FHIR identity (``Practitioner/12``).
        display: A display name.
        roles: Roles from the token.
        issuer: The token issuer.
        token_id: The token's ``jti``.
        purpose_of_use: Purpose-of-use codes.
    """

    client_id: str
    subject: str
    user: str | None = None
    fhir_user: str | None = None
    display: str | None = None
    roles: tuple[str, ...] = ()
    issuer: str | None = None
    token_id: str | None = None
    purpose_of_use: tuple[str, ...] = ()

    @classmethod
    def of(cls, principal: his_sdk.auth.Principal) -> Party:
        """The party a verified principal is."""
        actor = principal.on_behalf_of
        if actor is not None:
            user: str | None = actor.subject
            fhir_user = actor.fhir_user
            display = actor.display
        elif principal.subject != principal.client_id:
            user, fhir_user, display = principal.subject, principal.fhir_user, None
        else:
            user, fhir_user, display = None, principal.fhir_user, None
        return cls(
            client_id=principal.client_id,
            subject=principal.subject,
            user=user,
            fhir_user=fhir_user,
            display=display,
            roles=tuple(sorted(principal.roles)),
            issuer=principal.issuer,
            token_id=principal.token_id,
            purpose_of_use=tuple(principal.purpose_of_use),
        )

    @property
    def person(self) -> str:
        """Who this party is as a human reviewer: the user, else the token subject."""
        return self.user or self.subject

    def identities(self) -> frozenset[str]:
        """Every identity naming this party or the human behind it (for self-approval checks)."""
        names = {f"client:{self.client_id}", f"subject:{self.subject}"}
        if self.user:
            names.add(f"subject:{self.user}")
        if self.fhir_user:
            names.add(f"fhir:{self.fhir_user}")
        return frozenset(names)

    def to_json(self) -> str:
        """Compact JSON for storage."""
        return json.dumps(
            {
                "client_id": self.client_id,
                "subject": self.subject,
                "user": self.user,
                "fhir_user": self.fhir_user,
                "display": self.display,
                "roles": list(self.roles),
                "issuer": self.issuer,
                "token_id": self.token_id,
                "purpose_of_use": list(self.purpose_of_use),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Party:
        """The party stored by :meth:`to_json`."""
        data: dict[str, Any] = json.loads(text)
        return cls(
            client_id=data["client_id"],
            subject=data["subject"],
            user=data.get("user"),
            fhir_user=data.get("fhir_user"),
            display=data.get("display"),
            roles=tuple(data.get("roles") or ()),
            issuer=data.get("issuer"),
            token_id=data.get("token_id"),
            purpose_of_use=tuple(data.get("purpose_of_use") or ()),
        )


SYSTEM_PARTY = Party(client_id="his-approval-service", subject="his-approval-service")
"""The queue itself, as the actor of expiry and execution."""


@dataclass(frozen=True)
class RequestVersion:
    """One version of the proposed resource.

    Attributes:
        number: 1 for the agent's proposal; each edit adds one.
        resource: The proposed resource as FHIR JSON (None for a delete).
        diff: JSON Patch operations from the previous version (empty for version 1).
        author: Who wrote the version.
        reason: Why it was edited.
        created_at: When.
    """

    number: int
    resource: dict[str, Any] | None
    diff: list[dict[str, Any]]
    author: Party
    reason: str | None
    created_at: datetime.datetime


@dataclass(frozen=True)
class DecisionRecord:
    """A reviewer's decision on one version."""

    action: DecisionAction
    reviewer: Party
    version: int
    reason: str | None
    decided_at: datetime.datetime


@dataclass(frozen=True)
class HistoryEvent:
    """One entry of a request's history."""

    kind: str
    actor: Party
    from_status: RequestStatus | None
    to_status: RequestStatus | None
    detail: str | None
    at: datetime.datetime


@dataclass(frozen=True)
class Outcome:
    """What executing the approved write produced (or the EHR's error)."""

    resource_type: str | None
    resource_id: str | None
    version_id: str | None
    message: str | None
    error: str | None
    executed_at: datetime.datetime | None


@dataclass(frozen=True)
class ApprovalRequest:
    """One approval request as reviewers (console, CLI, gRPC) see it.

    ``versions``, ``decisions`` and ``history`` are empty in list results. ``task`` (the FHIR
    Task the agent sees) is validated on first access; ``task_data`` is its JSON.
    """

    id: str
    status: RequestStatus
    risk: RiskTier
    risk_reason: str
    interaction: Interaction
    resource_type: str
    resource_id: str | None
    patient_id: str | None
    requester: Party
    justification: str
    idempotency_key: str
    current_version: int
    approvals_required: int
    approvals_given: int
    reviewer_roles: tuple[str, ...]
    escalated: bool
    created_at: datetime.datetime
    updated_at: datetime.datetime
    expires_at: datetime.datetime
    status_reason: str | None
    revision: int
    outcome: Outcome | None
    proposed: dict[str, Any] | None
    """The version that executes once approved (the latest)."""
    current_resource: dict[str, Any] | None
    """The EHR's target resource when the write was proposed (update, delete)."""
    task_data: dict[str, Any]
    versions: tuple[RequestVersion, ...] = ()
    decisions: tuple[DecisionRecord, ...] = ()
    history: tuple[HistoryEvent, ...] = ()

    @functools.cached_property
    def task(self) -> Task:
        """The FHIR Task the agent sees for this request."""
        return Task.model_validate(self.task_data)


@dataclass(frozen=True)
class RequestQuery:
    """Filters and paging of a list call.

    Attributes:
        statuses: Any of these (empty: all).
        risks: Any of these tiers (empty: all).
        patient_id: Only this patient's requests.
        requester: The requesting client id or the user it acted for.
        min_age: Only requests at least this old.
        max_age: Only requests at most this old.
        page_size: Requests per page (the service's default when None).
        page_token: The previous page's ``next_page_token``.
    """

    statuses: tuple[RequestStatus, ...] = ()
    risks: tuple[RiskTier, ...] = ()
    patient_id: str | None = None
    requester: str | None = None
    min_age: datetime.timedelta | None = None
    max_age: datetime.timedelta | None = None
    page_size: int | None = None
    page_token: str | None = None


@dataclass(frozen=True)
class RequestPage:
    """One page of requests, newest first."""

    requests: list[ApprovalRequest] = field(default_factory=list)
    next_page_token: str | None = None
