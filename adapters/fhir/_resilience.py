"""Retry pacing (backoff, ``Retry-After``) and the circuit breaker in front of the upstream."""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import his_sdk.errors

__all__ = ["BreakerState", "CircuitBreaker", "backoff_delay", "parse_retry_after"]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta: float = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, delta)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff after failed try ``attempt`` (1-based): half fixed, half jitter."""
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class BreakerState(enum.StrEnum):
    """Where the circuit breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Fails calls fast while the upstream is down, and lets one probe through now and then.

    ``failure_threshold`` consecutive failed tries open the circuit; after ``reset_seconds``
    it is half open and admits one probe at a time: success closes it, failure opens it again.

    Args:
        failure_threshold: Consecutive failures that open the circuit.
        reset_seconds: How long it stays open before a probe.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        failure_threshold: int,
        reset_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._reset:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Guard one try: raise at once while open, or while another probe is out.

        Raises:
            his_sdk.errors.UpstreamUnavailableError: The circuit is open.
        """
        state = self.state
        if state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and self._probing):
            assert self._opened_at is not None
            wait = max(0.0, self._reset - (self._clock() - self._opened_at))
            raise his_sdk.errors.UpstreamUnavailableError(
                "the upstream FHIR server is failing; calls are refused for now",
                diagnostics=f"circuit open after {self._failures} failures; next probe in "
                f"{wait:.1f}s",
            )
        probe = state is BreakerState.HALF_OPEN
        self._probing = self._probing or probe
        try:
            yield
        finally:
            if probe:
                self._probing = False

    def record_success(self) -> None:
        """The upstream answered: close the circuit."""
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        """The upstream failed a try: count it, and open (again) at the threshold."""
        self._failures += 1
        if self._opened_at is not None or self._failures >= self._threshold:
            self._opened_at = self._clock()
