"""Routing: choose a healthy placement by policy and load, fail over, break circuits."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import grpc

import his_sdk.errors

from ._backend import BackendCall, BackendCallError, InferenceBackend
from ._catalog import Backend, Catalog, ModelEntry, Placement
from ._errors import BackendRejectedError, InputTooLargeError, NoPlacementAvailableError
from ._settings import BreakerSettings, InferenceSettings
from ._tensors import EncodedInputs, Tensors

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "PlacementStatus",
    "RoutedResult",
    "Router",
    "RoutingPreferences",
]

_log = logging.getLogger(__name__)

Clock = Callable[[], float]


class BreakerState(enum.StrEnum):
    """State of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker of one placement.

    Closed: calls flow. ``failure_threshold`` consecutive failures open it: no calls for
    ``open_seconds``. Then it is half-open: one trial call (or a successful health probe)
    closes it, a failed trial opens it again.

    Args:
        settings: Threshold and open time.
        clock: Monotonic clock.
    """

    def __init__(self, settings: BreakerSettings, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> BreakerState:
        """The current state."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self._settings.open_seconds:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def available(self) -> bool:
        """Whether a call may be routed here now (half-open admits one trial at a time)."""
        state = self.state
        return state is BreakerState.CLOSED or (state is BreakerState.HALF_OPEN and not self._trial)

    def begin(self) -> None:
        """A call was routed here; in half-open state it is the trial."""
        if self.state is BreakerState.HALF_OPEN:
            self._trial = True

    def success(self) -> None:
        """A call or probe succeeded: close."""
        self._failures = 0
        self._opened_at = None
        self._trial = False

    def failure(self) -> None:
        """A call failed on a retryable code: count it, open at the threshold."""
        self._failures += 1
        if self._trial or self._failures >= self._settings.failure_threshold:
            self._opened_at = self._clock()
        self._trial = False


@dataclass(frozen=True, slots=True)
class RoutingPreferences:
    """A request's soft preferences; placements that match are tried first.

    Attributes:
        accelerators: Accelerator kinds (``amd-mi300x``) or vendors (``amd``), most wanted
            first.
        site: Preferred site.
    """

    accelerators: tuple[str, ...] = ()
    site: str | None = None


@dataclass
class _PlacementState:
    entry_key: str
    placement: Placement
    breaker: CircuitBreaker
    in_flight: int = 0
    healthy: bool | None = None
    detail: str = ""
    queue_ratio: float = 0.0
    served: int = 0


@dataclass(frozen=True, slots=True)
class PlacementStatus:
    """A placement as routing sees it (for ``ListModels`` and operators).

    Attributes:
        placement: The placement.
        healthy: The last probe's answer; None before the first probe.
        detail: Why it is not healthy.
        breaker: The circuit state.
        in_flight: Calls running there now.
        served: Calls it answered since start.
    """

    placement: Placement
    healthy: bool | None
    detail: str
    breaker: BreakerState
    in_flight: int
    served: int


@dataclass(frozen=True, slots=True)
class RoutedResult:
    """The outputs of a routed call and where they came from.

    Attributes:
        outputs: Output tensors.
        placement: The placement that answered.
        attempts: Attempts made, the answering one included.
        failed: Labels of the placements that failed before it, in order.
    """

    outputs: Tensors
    placement: Placement
    attempts: int
    failed: tuple[str, ...] = field(default=())


class Router:
    """Routes calls of catalog models to placements.

    A placement is eligible when its region is allowed, the input fits its message cap and
    its circuit admits calls; placements whose last health probe failed are used only when
    no other is eligible. Eligible placements are
    ranked by the request's accelerator and site preferences, the configured vendor and site
    preferences, the placement's priority, then load (calls in flight plus the queue ratio
    from server statistics); ties rotate. A retryable failure (``routing.retry_codes``)
    counts against the placement's breaker and the call moves to the next placement, or
    retries the same one after a pause when no other is left, within ``max_attempts`` and
    the deadline. Every attempt sends the same encoded bytes under the same request id.

    Args:
        catalog: The models.
        backends: One backend per kind.
        settings: Bridge settings.
        clock: Monotonic clock.
    """

    def __init__(
        self,
        catalog: Catalog,
        backends: Mapping[Backend, InferenceBackend],
        settings: InferenceSettings,
        clock: Clock = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._backends = dict(backends)
        self._settings = settings
        self._clock = clock
        self._retry_codes = frozenset(
            grpc.StatusCode[name] for name in settings.routing.retry_codes
        )
        self._states: dict[str, list[_PlacementState]] = {}
        self._turn = 0
        for entry in catalog.entries():
            for placement in entry.placements:
                if placement.backend not in self._backends:
                    raise ValueError(f"{entry.key}: no backend for {placement.backend.value}")
            self._states[entry.key] = [
                _PlacementState(entry.key, p, CircuitBreaker(settings.breaker, clock))
                for p in entry.placements
            ]
        self._task: asyncio.Task[None] | None = None

    def status(self, entry: ModelEntry) -> list[PlacementStatus]:
        """How routing sees each placement of ``entry``."""
        return [
            PlacementStatus(
                s.placement, s.healthy, s.detail, s.breaker.state, s.in_flight, s.served
            )
            for s in self._states.get(entry.key, [])
        ]

    async def start(self) -> None:
        """Probe every placement once, then keep probing in the background."""
        await self.refresh()
        self._task = asyncio.create_task(self._probe_loop(), name="inference-health")

    async def close(self) -> None:
        """Stop probing."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def refresh(self) -> None:
        """Probe every placement now (open circuits only once their open time is over)."""
        probes = [
            self._probe(self._catalog.get(key), state)
            for key, states in self._states.items()
            for state in states
            if state.breaker.state is not BreakerState.OPEN
        ]
        await asyncio.gather(*probes)

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.routing.health_interval_seconds)
            await self.refresh()

    async def _probe(self, entry: ModelEntry, state: _PlacementState) -> None:
        backend = self._backends[state.placement.backend]
        timeout = self._settings.routing.probe_timeout_seconds
        try:
            async with asyncio.timeout(timeout * 3):
                health = await backend.probe(entry, state.placement, timeout)
        except (BackendCallError, TimeoutError, OSError) as exc:
            state.healthy, state.detail = False, str(exc) or type(exc).__name__
            _log.warning("probe of %s at %s failed: %s", entry.key, state.placement.label, exc)
            return
        was = state.healthy
        state.healthy, state.detail = health.ready, health.detail
        state.queue_ratio = health.queue_ratio or 0.0
        if health.ready and state.breaker.state is not BreakerState.CLOSED:
            state.breaker.success()
            _log.info("circuit of %s at %s closed by probe", entry.key, state.placement.label)
        if was is not health.ready:
            level = logging.INFO if health.ready else logging.WARNING
            _log.log(
                level,
                "%s at %s is %s%s",
                entry.key,
                state.placement.label,
                "ready" if health.ready else "not ready",
                f": {health.detail}" if health.detail else "",
            )

    def _cap(self, placement: Placement) -> int | None:
        if placement.backend is Backend.TORCH:
            return None
        return placement.max_message_bytes or self._settings.triton.max_message_bytes

    def _eligible(
        self, entry: ModelEntry, inputs: EncodedInputs, exclude: Sequence[str]
    ) -> list[_PlacementState]:
        regions = self._settings.routing.allowed_regions
        admitted = [
            s
            for s in self._states.get(entry.key, [])
            if (not regions or s.placement.region in regions)
            and s.breaker.available()
            and s.placement.label not in exclude
        ]
        # Placements whose last probe failed are used only when nothing else is left: a
        # probe can fail for a moment, and a closed circuit still guards each of them.
        candidates = [s for s in admitted if s.healthy is not False] or admitted
        envelope = self._settings.triton.envelope_bytes
        fitting = [
            s
            for s in candidates
            if (cap := self._cap(s.placement)) is None or inputs.nbytes + envelope <= cap
        ]
        if candidates and not fitting:
            largest = max(c for s in candidates if (c := self._cap(s.placement)) is not None)
            raise InputTooLargeError(
                f"the input of {entry.key} is {inputs.nbytes} bytes; its placements accept "
                f"at most {largest - envelope}"
            )
        return fitting

    def _rank(
        self, state: _PlacementState, preferences: RoutingPreferences
    ) -> tuple[int, int, int, int, float]:
        placement = state.placement
        wanted = preferences.accelerators
        matches = [
            i for i, a in enumerate(wanted) if a in (placement.accelerator, placement.vendor)
        ]
        accelerator_rank = matches[0] if matches else len(wanted)
        vendors = self._settings.routing.prefer_vendors
        vendor_rank = (
            vendors.index(placement.vendor) if placement.vendor in vendors else len(vendors)
        )
        sites = list(self._settings.routing.prefer_sites)
        if preferences.site:
            sites.insert(0, preferences.site)
        site_rank = sites.index(placement.site) if placement.site in sites else len(sites)
        load = state.in_flight + state.queue_ratio
        return (accelerator_rank, vendor_rank, site_rank, placement.priority, load)

    def _choose(
        self,
        entry: ModelEntry,
        inputs: EncodedInputs,
        preferences: RoutingPreferences,
        exclude: Sequence[str],
    ) -> _PlacementState | None:
        eligible = self._eligible(entry, inputs, exclude)
        if not eligible:
            return None
        ranks = {id(s): self._rank(s, preferences) for s in eligible}
        best = min(ranks.values())
        tied = [s for s in eligible if ranks[id(s)] == best]
        self._turn += 1
        return tied[self._turn % len(tied)]

    async def infer(
        self,
        entry: ModelEntry,
        inputs: EncodedInputs,
        *,
        request_id: str,
        deadline: float,
        priority: int,
        preferences: RoutingPreferences,
    ) -> RoutedResult:
        """Run ``entry`` on the best placement, failing over within the deadline.

        Args:
            entry: The model.
            inputs: Encoded inputs, sent unchanged by every attempt.
            request_id: Sent as the KServe v2 request id.
            deadline: Monotonic time by which the answer must be back.
            priority: Triton priority level.
            preferences: The request's soft preferences.

        Raises:
            his_sdk.errors.DeadlineExceededError: The deadline passed.
            InputTooLargeError: The input fits no placement.
            NoPlacementAvailableError: No placement is eligible, or every attempt failed on
                a retryable code.
            BackendRejectedError: A backend refused the request for good.
        """
        failed: list[str] = []
        last: BackendCallError | None = None
        attempts = 0
        max_attempts = self._settings.routing.max_attempts
        while attempts < max_attempts:
            state = self._choose(entry, inputs, preferences, failed)
            if state is None and failed:
                # Nothing new to fail over to: retry the placements already tried, after a pause.
                await self._pause(deadline)
                state = self._choose(entry, inputs, preferences, ())
            if state is None:
                break
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise his_sdk.errors.DeadlineExceededError(
                    f"the deadline of {entry.key} passed after {attempts} attempts"
                )
            attempts += 1
            state.breaker.begin()
            state.in_flight += 1
            call = BackendCall(entry, state.placement, inputs, request_id, remaining, priority)
            try:
                outputs = await self._backends[state.placement.backend].infer(call)
            except BackendCallError as exc:
                if exc.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise his_sdk.errors.DeadlineExceededError(
                        f"{entry.key} did not answer within the deadline at {state.placement.label}"
                    ) from exc
                if exc.code not in self._retry_codes:
                    state.breaker.success()
                    raise BackendRejectedError(
                        f"{state.placement.label} refused {entry.key}: {exc.code.name}",
                        diagnostics=exc.detail[:500],
                    ) from exc
                state.breaker.failure()
                failed.append(state.placement.label)
                last = exc
                _log.warning(
                    "%s at %s failed (%s); %d of %d attempts used",
                    entry.key,
                    state.placement.label,
                    exc.code.name,
                    attempts,
                    max_attempts,
                )
                continue
            finally:
                state.in_flight -= 1
            state.breaker.success()
            state.served += 1
            return RoutedResult(outputs, state.placement, attempts, tuple(failed))
        message = (
            f"{entry.key} failed on {', '.join(failed)}"
            if failed
            else f"no placement of {entry.key} is available"
        )
        error = NoPlacementAvailableError(message, diagnostics=last.detail[:500] if last else None)
        if last is not None:
            raise error from last
        raise error

    async def _pause(self, deadline: float) -> None:
        pause = min(self._settings.routing.retry_backoff_seconds, deadline - self._clock())
        if pause > 0:
            await asyncio.sleep(pause)
