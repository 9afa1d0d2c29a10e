"""Routing, failover, retries, breaker and deadlines against an in-memory backend twin."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
import pytest

import his_sdk.errors
import inference_bridge
from inference_bridge import (
    Backend,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    InferenceBridge,
    InferenceRequest,
    InferenceSettings,
    Placement,
    Priority,
    Router,
    RoutingPreferences,
    encode_inputs,
)
from tests.inference_bridge.ib_helpers import (
    BREAST,
    BackendTwin,
    breast_features,
    make_call,
    make_principal,
)


def placement(endpoint: str, accelerator: str = "nvidia-h100", **kwargs) -> Placement:
    return Placement(backend="triton", endpoint=endpoint, accelerator=accelerator, **kwargs)


def make_router(placements, twin, **settings) -> tuple[Router, inference_bridge.ModelEntry]:
    catalog = inference_bridge.Catalog.load().with_placements({BREAST: placements})
    router = Router(
        catalog,
        {Backend.TRITON: twin, Backend.TORCH: twin},
        InferenceSettings(**settings),
    )
    return router, catalog.get(BREAST)


def inputs(rows: int = 1):
    return encode_inputs({"features__0": np.ones((rows, 30), np.float32)}, {"features__0": "FP32"})


async def route(router, entry, *, preferences=None, seconds=5.0, priority=0):
    return await router.infer(
        entry,
        inputs(),
        request_id="r",
        deadline=time.monotonic() + seconds,
        priority=priority,
        preferences=preferences or RoutingPreferences(),
    )


async def test_preferences_rank_placements():
    twin = BackendTwin()
    router, entry = make_router(
        [placement("a:1", "nvidia-h100"), placement("b:1", "amd-mi300x", site="north")], twin
    )
    assert (
        await route(router, entry, preferences=RoutingPreferences(("amd",)))
    ).placement.endpoint == "b:1"
    assert (
        await route(router, entry, preferences=RoutingPreferences(("nvidia-h100", "amd")))
    ).placement.endpoint == "a:1"
    assert (
        await route(router, entry, preferences=RoutingPreferences(site="north"))
    ).placement.endpoint == "b:1"
    vendors, _ = make_router(
        [placement("a:1", "nvidia-h100"), placement("b:1", "amd-mi300x")],
        twin,
        routing={"prefer_vendors": ["amd"]},
    )
    assert (await route(vendors, entry)).placement.endpoint == "b:1"


async def test_priority_then_rotation_between_equals():
    twin = BackendTwin()
    router, entry = make_router(
        [placement("a:1"), placement("b:1"), placement("c:1", priority=1)], twin
    )
    served = [(await route(router, entry)).placement.endpoint for _ in range(6)]
    assert sorted(set(served)) == ["a:1", "b:1"]
    assert served.count("a:1") == served.count("b:1") == 3


async def test_data_residency_excludes_other_regions():
    twin = BackendTwin()
    router, entry = make_router(
        [placement("a:1", region="us"), placement("b:1", region="eu", priority=5)],
        twin,
        routing={"allowed_regions": ["eu"]},
    )
    assert {(await route(router, entry)).placement.endpoint for _ in range(3)} == {"b:1"}


async def test_failover_resends_the_same_bytes_under_the_same_id():
    twin = BackendTwin()
    twin.at("a:1").fail = grpc.StatusCode.UNAVAILABLE
    router, entry = make_router([placement("a:1"), placement("b:1", priority=1)], twin)
    result = await route(router, entry)
    assert (result.placement.endpoint, result.attempts) == ("b:1", 2)
    assert result.failed == ("triton:nvidia-h100@a:1",)
    first, second = twin.calls
    assert first.inputs is second.inputs
    assert first.request_id == second.request_id == "r"
    assert second.timeout < first.timeout


async def test_retries_the_same_placement_when_alone_and_gives_up_bounded():
    twin = BackendTwin()
    twin.at("a:1").fail = grpc.StatusCode.UNAVAILABLE
    router, entry = make_router(
        [placement("a:1")],
        twin,
        routing={"max_attempts": 2, "retry_backoff_seconds": 0.01},
        breaker={"failure_threshold": 5},
    )
    with pytest.raises(inference_bridge.NoPlacementAvailableError) as caught:
        await route(router, entry)
    assert caught.value.grpc_status_code is grpc.StatusCode.UNAVAILABLE
    assert len(twin.calls) == 2


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN]
)
async def test_unsafe_codes_are_not_retried(code):
    twin = BackendTwin()
    twin.at("a:1").fail = code
    router, entry = make_router([placement("a:1"), placement("b:1", priority=1)], twin)
    with pytest.raises(inference_bridge.BackendRejectedError):
        await route(router, entry)
    assert len(twin.calls) == 1


async def test_deadline_from_the_backend_and_before_sending():
    twin = BackendTwin()
    twin.at("a:1").fail = grpc.StatusCode.DEADLINE_EXCEEDED
    router, entry = make_router([placement("a:1"), placement("b:1", priority=1)], twin)
    with pytest.raises(his_sdk.errors.DeadlineExceededError):
        await route(router, entry)
    assert len(twin.calls) == 1
    with pytest.raises(his_sdk.errors.DeadlineExceededError):
        await route(router, entry, seconds=-1)


async def test_breaker_opens_half_opens_and_closes():
    now = [0.0]
    breaker = CircuitBreaker(BreakerSettings(failure_threshold=2, open_seconds=5), lambda: now[0])
    breaker.failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and not breaker.available()
    now[0] = 5.0
    assert breaker.state is BreakerState.HALF_OPEN and breaker.available()
    breaker.begin()
    assert not breaker.available(), "half-open admits one trial at a time"
    breaker.failure()
    assert breaker.state is BreakerState.OPEN, "a failed trial opens again"
    now[0] = 10.0
    breaker.begin()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.available()


async def test_router_skips_open_circuits_and_probes_close_them():
    twin = BackendTwin()
    twin.at("a:1").fail = grpc.StatusCode.UNAVAILABLE
    router, entry = make_router(
        [placement("a:1"), placement("b:1", priority=1)],
        twin,
        breaker={"failure_threshold": 1, "open_seconds": 0.05},
    )
    await route(router, entry)
    assert router.status(entry)[0].breaker is BreakerState.OPEN
    twin.calls.clear()
    await route(router, entry)
    assert [c.placement.endpoint for c in twin.calls] == ["b:1"]
    twin.at("a:1").fail = None
    await router.refresh()
    assert "a:1" not in twin.probes, "an open circuit is not probed before its open time"
    await asyncio.sleep(0.06)
    await router.refresh()
    assert router.status(entry)[0].breaker is BreakerState.CLOSED
    assert (await route(router, entry)).placement.endpoint == "a:1"


async def test_probes_mark_placements_not_ready():
    twin = BackendTwin()
    twin.at("a:1").ready = False
    router, entry = make_router([placement("a:1"), placement("b:1", priority=1)], twin)
    await router.refresh()
    assert [s.healthy for s in router.status(entry)] == [False, True]
    assert (await route(router, entry)).placement.endpoint == "b:1"
    twin.at("b:1").ready = False
    await router.refresh()
    # With every probe failing, placements are still tried rather than refusing at once.
    assert (await route(router, entry)).placement.endpoint == "a:1"
    twin.at("a:1").fail = twin.at("b:1").fail = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(inference_bridge.NoPlacementAvailableError):
        await route(router, entry)
    for _ in range(3):
        with pytest.raises(inference_bridge.NoPlacementAvailableError):
            await route(router, entry)
    with pytest.raises(inference_bridge.NoPlacementAvailableError, match="no placement"):
        await route(router, entry)


async def test_message_caps():
    twin = BackendTwin()
    router, entry = make_router(
        [placement("a:1", max_message_bytes=100), placement("b:1", max_message_bytes=10_000)],
        twin,
        triton={"envelope_bytes": 0},
    )
    assert {(await route(router, entry)).placement.endpoint for _ in range(3)} == {"b:1"}
    small, _ = make_router([placement("a:1", max_message_bytes=100)], twin)
    with pytest.raises(inference_bridge.InputTooLargeError):
        await route(small, entry)


def system_call():
    return make_call(make_principal("system/RiskAssessment.c", roles=("system",), acting=None))


def twin_bridge(policy, twin, **settings) -> InferenceBridge:
    catalog = inference_bridge.Catalog.load().with_placements({BREAST: [placement("a:1")]})
    return InferenceBridge(
        InferenceSettings(**settings),
        policy=policy,
        catalog=catalog,
        backends={Backend.TRITON: twin, Backend.TORCH: twin},
    )


async def test_priorities_map_to_triton_levels(policy, samples):
    twin = BackendTwin()
    bridge = twin_bridge(policy, twin)
    features = breast_features(samples.breast_x[0])
    for priority, level in ((Priority.STAT, 1), (Priority.ROUTINE, 2)):
        await bridge.infer(
            system_call(), InferenceRequest(BREAST, features=features, priority=priority)
        )
        assert twin.calls[-1].priority == level
    await bridge.close()


async def test_gateway_input_limit_applies_before_routing(policy, samples, audit):
    twin = BackendTwin()
    bridge = twin_bridge(policy, twin, max_input_bytes=64)
    with pytest.raises(inference_bridge.InputTooLargeError):
        await bridge.infer(
            system_call(), InferenceRequest(BREAST, features=breast_features(samples.breast_x[0]))
        )
    assert twin.calls == []
    await bridge.close()
