"""HTTP statuses for gateway errors, and problems only the HTTP layer can have (406, 415)."""

from __future__ import annotations

from typing import Any

import his_sdk.errors

__all__ = ["HttpProblem", "http_status_of"]

# Looked up along the error's MRO, so an adapter's own subclasses map like their base.
_STATUS: dict[type[his_sdk.errors.HisError], int] = {
    his_sdk.errors.InvalidRequestError: 400,
    his_sdk.errors.AuthenticationError: 401,
    his_sdk.errors.PermissionDeniedError: 403,
    his_sdk.errors.NotFoundError: 404,
    his_sdk.errors.GoneError: 410,
    his_sdk.errors.ConflictError: 409,
    # FHIR answers business-rule violations with 422 Unprocessable Entity.
    his_sdk.errors.PreconditionFailedError: 422,
    his_sdk.errors.UnsupportedError: 501,
    his_sdk.errors.ResourceExhaustedError: 429,
    his_sdk.errors.DeadlineExceededError: 504,
    his_sdk.errors.UpstreamUnavailableError: 503,
    his_sdk.errors.UpstreamDataError: 502,
    his_sdk.errors.CancelledError: 499,
    his_sdk.errors.HisError: 500,
}


def http_status_of(error: his_sdk.errors.HisError) -> int:
    """The HTTP status a gateway error is answered with."""
    for cls in type(error).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


class HttpProblem(Exception):
    """A failure of the HTTP exchange itself (negotiation, body, method), not of the service.

    Attributes:
        status: The HTTP status.
        issue_code: FHIR ``IssueType`` code for the OperationOutcome.
        message: Human-readable text without patient data.
        diagnostics: Optional extra text.
    """

    def __init__(
        self, status: int, issue_code: str, message: str, *, diagnostics: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.issue_code = issue_code
        self.message = message
        self.diagnostics = diagnostics

    def operation_outcome(self) -> dict[str, Any]:
        """This problem as a FHIR OperationOutcome (JSON-ready dict)."""
        issue: dict[str, Any] = {
            "severity": "error",
            "code": self.issue_code,
            "details": {"text": self.message},
        }
        if self.diagnostics:
            issue["diagnostics"] = self.diagnostics
        return {"resourceType": "OperationOutcome", "issue": [issue]}
