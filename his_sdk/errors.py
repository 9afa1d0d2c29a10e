"""The error tree shared by the gateway, the adapters and the client SDK.

Every error carries the gRPC status code it maps to and a FHIR OperationOutcome issue code, so
the server maps it in one place and the client raises the same class back::

    HisError                              (INTERNAL, "exception")
    ├── InvalidRequestError               (INVALID_ARGUMENT, "invalid")
    │   └── UnsupportedParameterError     (INVALID_ARGUMENT, "not-supported")
    ├── AuthenticationError               (UNAUTHENTICATED, "login")
    ├── PermissionDeniedError             (PERMISSION_DENIED, "forbidden")
    ├── NotFoundError                     (NOT_FOUND, "not-found")
    │   └── GoneError                     (NOT_FOUND, "deleted")
    ├── ConflictError                     (ALREADY_EXISTS, "conflict")
    ├── PreconditionFailedError           (FAILED_PRECONDITION, "business-rule")
    ├── UnsupportedError                  (UNIMPLEMENTED, "not-supported")
    ├── ResourceExhaustedError            (RESOURCE_EXHAUSTED, "throttled")
    ├── DeadlineExceededError             (DEADLINE_EXCEEDED, "timeout")
    ├── UpstreamUnavailableError          (UNAVAILABLE, "transient")
    ├── UpstreamDataError                 (DATA_LOSS, "exception")
    └── CancelledError                    (CANCELLED, "transient")

Messages must never contain patient data: they travel to the caller and into logs. Name the
resource type, the logical id and the parameter instead.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import grpc

__all__ = [
    "ERROR_CLASS_METADATA_KEY",
    "OUTCOME_METADATA_KEY",
    "AuthenticationError",
    "CancelledError",
    "ConflictError",
    "DeadlineExceededError",
    "GoneError",
    "HisError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "ResourceExhaustedError",
    "UnsupportedError",
    "UnsupportedParameterError",
    "UpstreamDataError",
    "UpstreamUnavailableError",
    "error_class_for",
]

OUTCOME_METADATA_KEY = "his-operation-outcome-bin"
"""gRPC trailing metadata key carrying the OperationOutcome JSON of a failed call."""
ERROR_CLASS_METADATA_KEY = "his-error"
"""gRPC trailing metadata key naming the ``his_sdk.errors`` class of a failed call."""

_BY_STATUS: dict[grpc.StatusCode, type[HisError]] = {}
_BY_NAME: dict[str, type[HisError]] = {}


class HisError(Exception):
    """Root of every error the gateway reports to a caller.

    Attributes:
        message: Human-readable text without patient data.
        issue_code: FHIR ``IssueType`` code for the OperationOutcome.
        diagnostics: Optional extra text for the OperationOutcome (no patient data).
        expression: FHIRPath-ish locations the issue is about (parameter names, elements).
    """

    grpc_status_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    issue_code: ClassVar[str] = "exception"

    def __init__(
        self,
        message: str,
        *,
        diagnostics: str | None = None,
        expression: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.diagnostics = diagnostics
        self.expression = list(expression or [])

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _BY_NAME[cls.__name__] = cls
        # The first class registered for a status is the one the client raises for it.
        _BY_STATUS.setdefault(cls.grpc_status_code, cls)

    def operation_outcome(self) -> dict[str, Any]:
        """This error as a FHIR OperationOutcome (JSON-ready dict)."""
        issue: dict[str, Any] = {
            "severity": "error",
            "code": self.issue_code,
            "details": {"text": self.message},
        }
        if self.diagnostics:
            issue["diagnostics"] = self.diagnostics
        if self.expression:
            issue["expression"] = self.expression
        return {"resourceType": "OperationOutcome", "issue": [issue]}

    def operation_outcome_json(self) -> bytes:
        """The OperationOutcome serialised as compact JSON bytes."""
        return json.dumps(self.operation_outcome(), separators=(",", ":")).encode()


class InvalidRequestError(HisError):
    """The request is malformed: bad parameter value, unknown type, bad cursor."""

    grpc_status_code = grpc.StatusCode.INVALID_ARGUMENT
    issue_code = "invalid"


class UnsupportedParameterError(InvalidRequestError):
    """A search parameter or modifier the serving adapter does not support."""

    issue_code = "not-supported"


class AuthenticationError(HisError):
    """No bearer token, or a token that failed verification."""

    grpc_status_code = grpc.StatusCode.UNAUTHENTICATED
    issue_code = "login"


class PermissionDeniedError(HisError):
    """The policy denied the request; the message says what would allow it."""

    grpc_status_code = grpc.StatusCode.PERMISSION_DENIED
    issue_code = "forbidden"


class NotFoundError(HisError):
    """No resource with that type and id."""

    grpc_status_code = grpc.StatusCode.NOT_FOUND
    issue_code = "not-found"


class GoneError(NotFoundError):
    """The resource existed but was deleted (for example a soft-deleted legacy row)."""

    issue_code = "deleted"


class ConflictError(HisError):
    """The request conflicts with the current state (duplicate, version mismatch)."""

    grpc_status_code = grpc.StatusCode.ALREADY_EXISTS
    issue_code = "conflict"


class PreconditionFailedError(HisError):
    """The system is not in the state the operation needs."""

    grpc_status_code = grpc.StatusCode.FAILED_PRECONDITION
    issue_code = "business-rule"


class UnsupportedError(HisError):
    """An interaction or resource type no configured adapter serves."""

    grpc_status_code = grpc.StatusCode.UNIMPLEMENTED
    issue_code = "not-supported"


class ResourceExhaustedError(HisError):
    """A limit was hit: page size, rate, message size."""

    grpc_status_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    issue_code = "throttled"


class DeadlineExceededError(HisError):
    """The call's deadline passed before the work finished."""

    grpc_status_code = grpc.StatusCode.DEADLINE_EXCEEDED
    issue_code = "timeout"


class UpstreamUnavailableError(HisError):
    """The legacy system behind an adapter cannot be reached; retrying later may succeed."""

    grpc_status_code = grpc.StatusCode.UNAVAILABLE
    issue_code = "transient"


class UpstreamDataError(HisError):
    """The legacy system returned data that cannot be mapped to valid FHIR."""

    grpc_status_code = grpc.StatusCode.DATA_LOSS
    issue_code = "exception"


class CancelledError(HisError):
    """The caller cancelled the call."""

    grpc_status_code = grpc.StatusCode.CANCELLED
    issue_code = "transient"


def error_class_for(code: grpc.StatusCode, name: str | None = None) -> type[HisError]:
    """The error class for a gRPC status, preferring the exact class ``name`` when known."""
    if name and name in _BY_NAME and _BY_NAME[name].grpc_status_code == code:
        return _BY_NAME[name]
    return _BY_STATUS.get(code, HisError)
