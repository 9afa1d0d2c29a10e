"""Every call to the upstream: bearer token, timeouts, retries, circuit breaker, typed errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

import his_sdk.errors

from ._resilience import CircuitBreaker, backoff_delay, parse_retry_after
from ._settings import FhirSettings
from ._smart import TokenSource

__all__ = ["FHIR_JSON", "RETRYABLE_STATUSES", "UpstreamHttp", "UpstreamResponse", "error_for"]

FHIR_JSON = "application/fhir+json"
"""The media type sent and asked for."""
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses retried (after ``Retry-After`` when the upstream sends one)."""

_OUTCOME_TEXT_LIMIT = 300
_ERRORS: dict[int, tuple[type[his_sdk.errors.HisError], str]] = {
    400: (his_sdk.errors.InvalidRequestError, "rejected the request"),
    401: (his_sdk.errors.UpstreamUnavailableError, "refused this gateway's credentials"),
    403: (his_sdk.errors.PermissionDeniedError, "denied access by its own policy"),
    404: (his_sdk.errors.NotFoundError, "has no such resource"),
    405: (his_sdk.errors.UnsupportedError, "does not support this interaction"),
    409: (his_sdk.errors.ConflictError, "reported a conflict"),
    410: (his_sdk.errors.GoneError, "reports the resource deleted"),
    412: (his_sdk.errors.ConflictError, "reports the resource changed (version mismatch)"),
    422: (his_sdk.errors.InvalidRequestError, "refused the resource as invalid"),
    429: (his_sdk.errors.ResourceExhaustedError, "is throttling this gateway"),
    501: (his_sdk.errors.UnsupportedError, "does not implement this interaction"),
}


@dataclass(frozen=True)
class UpstreamResponse:
    """A response the caller handles itself (2xx, 304 or a status it asked for)."""

    status: int
    headers: httpx.Headers
    content: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object.

        Raises:
            his_sdk.errors.UpstreamDataError: The body is not a JSON object.
        """
        try:
            value = json.loads(self.content)
        except ValueError as exc:
            raise his_sdk.errors.UpstreamDataError(
                "the upstream FHIR server answered with invalid JSON"
            ) from exc
        if not isinstance(value, dict):
            raise his_sdk.errors.UpstreamDataError(
                "the upstream FHIR server answered with JSON that is not an object"
            )
        return value


def _outcome_text(content: bytes) -> str | None:
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return None
    texts = []
    for issue in body.get("issue") or []:
        if isinstance(issue, dict):
            details = issue.get("details")
            text = details.get("text") if isinstance(details, dict) else None
            texts.append(str(text or issue.get("diagnostics") or issue.get("code") or ""))
    joined = "; ".join(t for t in texts if t)
    return joined[:_OUTCOME_TEXT_LIMIT] or None


def error_for(status: int, content: bytes, action: str) -> his_sdk.errors.HisError:
    """The gateway error for an upstream error status.

    The upstream's OperationOutcome text (meant for its client, this gateway) travels as
    diagnostics, so an agent learns why the upstream refused.
    """
    cls, what = _ERRORS.get(
        status,
        (his_sdk.errors.UpstreamUnavailableError, f"failed with HTTP {status}")
        if status >= 500
        else (his_sdk.errors.InvalidRequestError, f"refused the request with HTTP {status}"),
    )
    text = _outcome_text(content)
    diagnostics = f"upstream: {text}" if text else None
    return cls(f"the upstream FHIR server {what} ({action})", diagnostics=diagnostics)


class UpstreamHttp:
    """Sends requests to the upstream FHIR server with the adapter's resilience rules.

    Each try goes through the circuit breaker and carries the bearer token. Idempotent calls
    are retried on 429/502/503/504, timeouts and broken connections, after the upstream's
    ``Retry-After`` when it sends one (up to ``retry.max_retry_after_seconds``) or else after an
    exponential backoff, while the call's budget lasts. A 401 on a token fetches a new token
    and tries once more. Failures become ``his_sdk.errors`` types; 5xx answers, timeouts and
    connection errors count against the breaker.

    Args:
        settings: Timeouts, retry and breaker settings, extra headers.
        auth: Where bearer tokens come from; None sends none.
        http: The HTTP client (its transport is the injectable I/O edge).
        sleep: Awaitable sleep (injectable for tests).
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        settings: FhirSettings,
        *,
        auth: TokenSource | None,
        http: httpx.AsyncClient,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._auth = auth
        self._http = http
        self._sleep = sleep
        self._clock = clock
        self.breaker = CircuitBreaker(
            settings.breaker.failure_threshold, settings.breaker.reset_seconds, clock=clock
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        action: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        accept: Collection[int] = (),
        attempts: int | None = None,
    ) -> UpstreamResponse:
        """Send one call and return its answer.

        Args:
            method: HTTP method.
            url: Absolute URL on the upstream.
            action: What the call does, for error messages (``reading Patient/12``).
            body: JSON body for POST and PUT.
            headers: Extra headers of this call.
            idempotent: Whether a try whose answer was lost may be repeated.
            accept: Error statuses returned to the caller instead of raised.
            attempts: Tries for this call; ``retry.attempts`` by default.

        Raises:
            his_sdk.errors.HisError: The mapped error once retries are spent or not allowed.
        """
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        base_headers = {"Accept": FHIR_JSON, **self._settings.headers, **(headers or {})}
        if content is not None:
            base_headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
        limit = attempts or self._settings.retry.attempts
        deadline = self._clock() + self._settings.call_timeout_seconds
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = await self._auth.token() if self._auth is not None else None
            call_headers = dict(base_headers)
            if token:
                call_headers["Authorization"] = f"Bearer {token}"
            retry_after: float | None = None
            cause: Exception | None = None
            with self.breaker.admit():
                try:
                    response = await self._http.request(
                        method, url, content=content, headers=call_headers
                    )
                except httpx.TimeoutException as exc:
                    self.breaker.record_failure()
                    failure: his_sdk.errors.HisError = his_sdk.errors.DeadlineExceededError(
                        f"the upstream FHIR server did not answer in time ({action})",
                        diagnostics=type(exc).__name__,
                    )
                    cause, retryable = exc, idempotent
                except httpx.TransportError as exc:
                    self.breaker.record_failure()
                    failure = his_sdk.errors.UpstreamUnavailableError(
                        f"the upstream FHIR server cannot be reached ({action})",
                        diagnostics=type(exc).__name__,
                    )
                    # A connection refused never reached the server; anything else may have.
                    cause, retryable = exc, idempotent or isinstance(exc, httpx.ConnectError)
                else:
                    status = response.status_code
                    if status >= 500:
                        self.breaker.record_failure()
                    else:
                        self.breaker.record_success()
                    if status == 401 and token and self._auth is not None and not refreshed:
                        # An expired or revoked token: fetch a new one and try again once.
                        self._auth.invalidate(token)
                        refreshed = True
                        attempt -= 1
                        continue
                    if status < 400 or status in accept:
                        return UpstreamResponse(status, response.headers, response.content)
                    failure = error_for(status, response.content, action)
                    if status not in RETRYABLE_STATUSES:
                        raise failure
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    # 429 and 503 promise the request was not processed.
                    retryable = idempotent or status in (429, 503)
            if not retryable or attempt >= limit:
                raise failure from cause
            delay = self._delay(attempt, retry_after)
            if retry_after is not None and delay < retry_after:
                failure.diagnostics = (
                    f"{failure.diagnostics + '; ' if failure.diagnostics else ''}"
                    f"Retry-After {retry_after:g}s exceeds the "
                    f"{self._settings.retry.max_retry_after_seconds:g}s this gateway waits"
                )
                raise failure from cause
            if self._clock() + delay > deadline:
                raise failure from cause
            await self._sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        retry = self._settings.retry
        if retry_after is not None:
            return min(retry_after, retry.max_retry_after_seconds)
        return backoff_delay(attempt, retry.backoff_seconds, retry.backoff_max_seconds)
