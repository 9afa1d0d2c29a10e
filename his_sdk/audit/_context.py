"""What the gateway tells the audit trail about one call: the :class:`AuditContext` input."""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import his_sdk.errors

if TYPE_CHECKING:
    import his_sdk.auth

__all__ = [
    "AuditAction",
    "AuditContext",
    "AuditObserver",
    "AuditOutcome",
    "AuditPrincipal",
    "AuditUser",
    "outcome_for_error",
]


class AuditAction(enum.StrEnum):
    """The audited interaction; the value is its FHIR ``restful-interaction`` code."""

    READ = "read"
    VREAD = "vread"
    HISTORY = "history-instance"
    SEARCH = "search-type"
    SEARCH_SYSTEM = "search-system"
    CAPABILITIES = "capabilities"
    CREATE = "create"
    UPDATE = "update"
    PATCH = "patch"
    DELETE = "delete"
    OPERATION = "operation"
    """A named operation (tool invocation, inference, approval decision): set ``operation``."""

    @property
    def is_search(self) -> bool:
        """Whether the action is a query (its parameters are recorded, never its results)."""
        return self in (AuditAction.SEARCH, AuditAction.SEARCH_SYSTEM)

    @property
    def is_write(self) -> bool:
        """Whether the action changes data (create, update, patch, delete)."""
        return self in (
            AuditAction.CREATE,
            AuditAction.UPDATE,
            AuditAction.PATCH,
            AuditAction.DELETE,
        )


class AuditOutcome(enum.StrEnum):
    """``AuditEvent.outcome`` codes."""

    SUCCESS = "0"
    MINOR_FAILURE = "4"
    """The request was refused or invalid: denied, not found, bad parameter (HTTP 4xx)."""
    SERIOUS_FAILURE = "8"
    """The request failed on the server side: upstream down, internal error (HTTP 5xx)."""
    MAJOR_FAILURE = "12"
    """The service itself became unavailable."""


_CALLER_ERRORS: tuple[type[his_sdk.errors.HisError], ...] = (
    his_sdk.errors.InvalidRequestError,
    his_sdk.errors.AuthenticationError,
    his_sdk.errors.PermissionDeniedError,
    his_sdk.errors.NotFoundError,
    his_sdk.errors.ConflictError,
    his_sdk.errors.PreconditionFailedError,
    his_sdk.errors.UnsupportedError,
    his_sdk.errors.ResourceExhaustedError,
    his_sdk.errors.CancelledError,
)


def outcome_for_error(error: BaseException) -> tuple[AuditOutcome, str]:
    """The audit outcome and ``outcomeDesc`` text for an error that ended a call.

    Errors the caller caused (denied, invalid, not found, ...) are minor failures; anything
    else is a serious failure. The text is the OperationOutcome issue code and message of a
    :class:`his_sdk.errors.HisError` (which never hold patient data), or only the class name of
    any other exception, whose message might.
    """
    if isinstance(error, his_sdk.errors.HisError):
        outcome = (
            AuditOutcome.MINOR_FAILURE
            if isinstance(error, _CALLER_ERRORS)
            else AuditOutcome.SERIOUS_FAILURE
        )
        return outcome, f"{error.issue_code}: {error.message}"
    return AuditOutcome.SERIOUS_FAILURE, f"exception: {type(error).__name__}"


@dataclass(frozen=True, slots=True)
class AuditUser:
    """A person in an audit record: the user an agent acts for, or an approver.

    Attributes:
        subject: The person's subject at the identity provider (``sub``).
        fhir_user: Their FHIR identity (``Practitioner/12``), when known.
        display: Their display name, when known.
    """

    subject: str
    fhir_user: str | None = None
    display: str | None = None


@dataclass(frozen=True, slots=True)
class AuditPrincipal:
    """Who called: the agent (OAuth2 client), the user it acts for, and their grants.

    Attributes:
        client_id: The agent's OAuth2 client id.
        issuer: The token issuer; the identifier system of the client and user.
        token_id: The token's ``jti``, recorded as ``agent.policy`` (never the token).
        user: The human the agent acts for, if any.
        roles: The caller's roles.
        purpose_of_use: Purpose-of-use codes (``v3-ActReason``: ``TREAT``, ``ETREAT``, ...).
        prior_actors: Earlier parties in the delegation chain, nearest first.
    """

    client_id: str
    issuer: str | None = None
    token_id: str | None = None
    user: AuditUser | None = None
    roles: tuple[str, ...] = ()
    purpose_of_use: tuple[str, ...] = ()
    prior_actors: tuple[AuditUser, ...] = ()

    @classmethod
    def from_principal(cls, principal: his_sdk.auth.Principal) -> AuditPrincipal:
        """The audit view of a verified :class:`his_sdk.auth.Principal`.

        The user is the RFC 8693 actor the agent works for; without one, the token's own
        subject when it names a ``fhirUser`` (a user-facing app); otherwise none (a pure
        machine client).
        """
        user: AuditUser | None = None
        if principal.on_behalf_of is not None:
            actor = principal.on_behalf_of
            user = AuditUser(actor.subject, actor.fhir_user, actor.display)
        elif principal.fhir_user is not None and principal.subject != principal.client_id:
            user = AuditUser(principal.subject, principal.fhir_user)
        return cls(
            client_id=principal.client_id,
            issuer=principal.issuer,
            token_id=principal.token_id,
            user=user,
            roles=tuple(sorted(principal.roles)),
            purpose_of_use=tuple(principal.purpose_of_use),
            prior_actors=tuple(
                AuditUser(a.subject, a.fhir_user, a.display) for a in principal.prior_actors
            ),
        )


@dataclass(frozen=True, slots=True)
class AuditObserver:
    """The system that records the event: ``AuditEvent.source`` and the server agent.

    Attributes:
        instance_id: The gateway instance (``source.observer`` identifier).
        site: The deployment or hospital (``source.site``).
        address: The server's network address (host name or IP).
    """

    instance_id: str
    site: str = "his-gateway"
    address: str | None = None


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Everything the audit trail records about one call; the gateway fills one per call.

    One AuditEvent is built per patient in ``patient_ids`` (IHE BALP's Patient variants), or a
    single one without a patient entity when the list is empty (a population search).

    Attributes:
        action: The interaction.
        principal: Who called.
        resource_type: The FHIR type acted on (None for system-level actions).
        resource_ids: Logical ids of ``resource_type`` read or written (at most one for reads
            and writes; never the results of a search).
        patient_ids: Patients whose data the call touched.
        outcome: Success or the failure class.
        outcome_text: The OperationOutcome text for failures (no patient data).
        query: For searches, the raw query parameter string as received (``a=1&b=2``); it is
            stored base64-encoded.
        operation: The operation's name for ``OPERATION`` (``$invoke-tool``,
            ``approval-decide``).
        version_id: The version read (vread) or produced (writes), if known.
        approvers: Reviewers who approved an executed write.
        request_id: The call's request id (``x-request-id``).
        traceparent: The W3C ``traceparent`` of the call.
        client_address: The caller's network address (gRPC peer strings are accepted).
        observer: Overrides the trail's own observer (for events relayed from elsewhere).
        recorded: When the action happened; defaults to when it is recorded.
    """

    action: AuditAction
    principal: AuditPrincipal
    resource_type: str | None = None
    resource_ids: tuple[str, ...] = ()
    patient_ids: tuple[str, ...] = ()
    outcome: AuditOutcome = AuditOutcome.SUCCESS
    outcome_text: str | None = None
    query: str | None = None
    operation: str | None = None
    version_id: str | None = None
    approvers: tuple[AuditUser, ...] = ()
    request_id: str | None = None
    traceparent: str | None = None
    client_address: str | None = None
    observer: AuditObserver | None = None
    recorded: datetime.datetime | None = field(default=None)

    def __post_init__(self) -> None:
        if self.action.is_search and self.resource_ids:
            raise ValueError("a search is audited by its query, never by the ids it returned")
        if self.action.is_search and self.query is None:
            raise ValueError("a search needs its raw query string (may be empty)")
        if not self.action.is_search and self.query is not None:
            raise ValueError(f"{self.action.value} takes no query")
        if self.action is AuditAction.OPERATION and not self.operation:
            raise ValueError("an OPERATION needs its operation name")
        if (
            self.action is not AuditAction.OPERATION
            and not self.action.is_search
            and len(self.resource_ids) > 1
        ):
            raise ValueError(f"{self.action.value} acts on one resource; record one per call")
        if self.outcome is not AuditOutcome.SUCCESS and not self.outcome_text:
            raise ValueError("a failure needs its OperationOutcome text")
        if self.recorded is not None and self.recorded.tzinfo is None:
            raise ValueError("recorded must be timezone-aware")
