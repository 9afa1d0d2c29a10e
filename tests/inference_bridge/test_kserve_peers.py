"""The bridge against real KServe v2 servers on loopback: MLServer and KServe ModelServer."""

from __future__ import annotations

import asyncio
import json
import math
import time

import numpy as np
import pytest
import torch
import tritonclient.grpc.aio as triton_aio
from fhir.resources.R4B import get_fhir_model_class
from tritonclient.grpc import InferInput

import his_sdk.errors
import inference_bridge
from inference_bridge import (
    BreakerState,
    ConsultRequest,
    InferenceBridge,
    InferenceOutcome,
    InferenceRequest,
    InferenceSettings,
    Placement,
    RoutingPreferences,
)
from inference_bridge._torch import build_torch_model
from tests.inference_bridge.ib_helpers import (
    BREAST,
    DIABETES,
    SLOW,
    Facts,
    breast_features,
    diabetes_features,
)

pytestmark = pytest.mark.kserve_peer


def triton(target: str, accelerator: str, **kwargs) -> Placement:
    return Placement(backend="triton", endpoint=target, accelerator=accelerator, **kwargs)


TORCH = Placement(backend="torch", accelerator="cpu", priority=1)


def expected_predictions(name: str, rows: np.ndarray) -> np.ndarray:
    model = build_torch_model(inference_bridge.Catalog.load().get(name))
    with torch.inference_mode():
        prediction, _ = model(torch.tensor(rows, dtype=torch.float32))
    return prediction.numpy()[:, 0]


def make_bridge(policy, audit, placements, **settings) -> InferenceBridge:
    return InferenceBridge(
        InferenceSettings(placements=placements, **settings),
        policy=policy,
        audit=audit,
        facts=Facts(),
    )


def valid(resource) -> None:
    data = json.loads(resource.model_dump_json(exclude_none=True))
    get_fhir_model_class(data["resourceType"]).model_validate(data)


async def test_mlserver_answers_like_torch_with_provenance(
    live_mlservers, policy, audit, clinician_call, samples
):
    a, _ = live_mlservers
    placements = {
        BREAST: [triton(a.target, "nvidia-h100")],
        DIABETES: [triton(a.target, "nvidia-h100")],
    }
    rows = samples.breast_x[:5]
    expected = expected_predictions(BREAST, rows)
    async with make_bridge(policy, audit, placements) as bridge:
        for row, want in zip(rows, expected, strict=True):
            result = await bridge.infer(
                clinician_call,
                InferenceRequest(BREAST, patient_id="p1", features=breast_features(row)),
            )
            assert math.isclose(result.prediction, float(want), rel_tol=1e-5)
            assert (result.provenance.backend, result.provenance.endpoint) == ("triton", a.target)
            assert result.provenance.accelerator == "nvidia-h100"
            for resource in result.resources:
                valid(resource)
            device = json.loads(result.device.model_dump_json())
            assert device["url"] == f"grpc://{a.target}"
        consult = await bridge.consult(
            clinician_call,
            ConsultRequest(
                (BREAST, DIABETES),
                patient_id="p1",
                features={
                    **breast_features(rows[0]),
                    **diabetes_features(samples.diabetes_x[0]),
                },
            ),
        )
    assert [o.result.provenance.backend for o in consult.opinions] == ["triton", "triton"]
    assert all(len(o.neighbours) == 5 for o in consult.opinions)
    valid(consult.bundle)
    assert {r.endpoint for r in audit.records} == {a.target}


async def test_routing_by_accelerator_and_load(
    live_mlservers, policy, audit, clinician_call, samples
):
    a, b = live_mlservers
    placements = {BREAST: [triton(a.target, "nvidia-h100"), triton(b.target, "amd-mi300x")]}
    features = [breast_features(row) for row in samples.breast_x[:40]]
    async with make_bridge(policy, audit, placements) as bridge:
        amd = await asyncio.gather(
            *(
                bridge.infer(
                    clinician_call,
                    InferenceRequest(
                        BREAST,
                        patient_id="p1",
                        features=f,
                        preferences=RoutingPreferences(accelerators=("amd",)),
                    ),
                )
                for f in features[:10]
            )
        )
        assert {r.provenance.endpoint for r in amd} == {b.target}
        spread = await asyncio.gather(
            *(
                bridge.infer(clinician_call, InferenceRequest(BREAST, patient_id="p1", features=f))
                for f in features
            )
        )
    counts = {t: sum(r.provenance.endpoint == t for r in spread) for t in (a.target, b.target)}
    # 40 concurrent calls: in-flight counts alternate the choice between equal placements.
    assert min(counts.values()) >= 15, counts
    async with make_bridge(
        policy, audit, placements, routing={"prefer_vendors": ["nvidia"]}
    ) as bridge:
        nvidia = await bridge.infer(
            clinician_call, InferenceRequest(BREAST, patient_id="p1", features=features[0])
        )
    assert nvidia.provenance.endpoint == a.target


async def test_failover_when_a_server_is_killed_mid_run(
    live_mlservers, policy, audit, clinician_call, samples
):
    a, b = live_mlservers
    # The slow copy keeps calls in flight on the server that gets killed.
    placements = {
        BREAST: [
            triton(a.target, "nvidia-h100", server_model_name=SLOW),
            triton(b.target, "amd-mi300x", server_model_name=SLOW),
        ]
    }
    rows = samples.breast_x[:16]
    expected = expected_predictions(BREAST, rows)
    async with make_bridge(policy, audit, placements, default_timeout_seconds=30) as bridge:
        calls = [
            asyncio.create_task(
                bridge.infer(
                    clinician_call,
                    InferenceRequest(BREAST, patient_id="p1", features=breast_features(row)),
                )
            )
            for row in rows
        ]
        await asyncio.sleep(1.0)
        await asyncio.to_thread(a.kill)
        results = await asyncio.gather(*calls)
    assert len(results) == len(rows)
    for result, want in zip(results, expected, strict=True):
        assert math.isclose(result.prediction, float(want), rel_tol=1e-5)
        assert result.provenance.endpoint in (a.target, b.target)
    failed_over = [r for r in results if r.provenance.failed_placements]
    assert failed_over, "no call was in flight on the killed server"
    assert all(r.provenance.endpoint == b.target for r in failed_over)
    assert all(r.provenance.attempts == 2 for r in failed_over)
    # One answer per call, one audit record per call, no duplicate result.
    ids = [r.results[0].id for r in results]
    assert len(set(ids)) == len(rows)
    assert len(audit.records) == len(rows)
    assert all(r.outcome is InferenceOutcome.SUCCESS for r in audit.records)


async def test_breaker_opens_on_a_dead_server_and_a_probe_closes_it(
    live_mlservers, policy, audit, clinician_call, samples
):
    a, _ = live_mlservers
    placements = {BREAST: [triton(a.target, "nvidia-h100"), TORCH]}
    settings = {
        "breaker": {"failure_threshold": 2, "open_seconds": 0.5},
        "routing": {"health_interval_seconds": 3600},
    }
    request = InferenceRequest(
        BREAST, patient_id="p1", features=breast_features(samples.breast_x[0])
    )
    async with make_bridge(policy, audit, placements, **settings) as bridge:
        assert (await bridge.infer(clinician_call, request)).provenance.backend == "triton"
        await asyncio.to_thread(a.kill)
        first = [await bridge.infer(clinician_call, request) for _ in range(2)]
        assert [r.provenance.attempts for r in first] == [2, 2]
        assert all(r.provenance.backend == "torch" for r in first)
        status = bridge.router.status(bridge.catalog.get(BREAST))
        assert status[0].breaker is BreakerState.OPEN
        third = await bridge.infer(clinician_call, request)
        assert (third.provenance.backend, third.provenance.attempts) == ("torch", 1)
        await asyncio.to_thread(a.start)
        deadline = time.monotonic() + 15
        while True:
            await asyncio.sleep(0.6)
            await bridge.router.refresh()
            status = bridge.router.status(bridge.catalog.get(BREAST))
            if status[0].breaker is BreakerState.CLOSED or time.monotonic() > deadline:
                break
        assert status[0].breaker is BreakerState.CLOSED and status[0].healthy
        back = await bridge.infer(clinician_call, request)
        assert back.provenance.backend == "triton"


async def test_deadline_is_end_to_end(live_mlservers, policy, audit, clinician_call, samples):
    a, _ = live_mlservers
    placements = {BREAST: [triton(a.target, "nvidia-h100", server_model_name=SLOW)]}
    async with make_bridge(policy, audit, placements) as bridge:
        started = time.monotonic()
        with pytest.raises(his_sdk.errors.DeadlineExceededError):
            await bridge.infer(
                clinician_call,
                InferenceRequest(
                    BREAST,
                    patient_id="p1",
                    features=breast_features(samples.breast_x[0]),
                    timeout=0.5,
                ),
            )
        elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 1.5
    (record,) = audit.records
    assert record.outcome is InferenceOutcome.FAILED
    assert isinstance(record.error, his_sdk.errors.DeadlineExceededError)


async def test_oversize_input_is_refused_before_sending(
    live_mlservers, policy, audit, clinician_call, samples
):
    a, _ = live_mlservers
    placements = {BREAST: [triton(a.target, "nvidia-h100", max_message_bytes=64)]}
    async with make_bridge(policy, audit, placements, triton={"envelope_bytes": 0}) as bridge:
        with pytest.raises(inference_bridge.InputTooLargeError) as caught:
            await bridge.infer(
                clinician_call,
                InferenceRequest(
                    BREAST, patient_id="p1", features=breast_features(samples.breast_x[0])
                ),
            )
    assert caught.value.grpc_status_code.name == "RESOURCE_EXHAUSTED"
    (record,) = audit.records
    assert record.outcome is InferenceOutcome.INVALID
    assert record.backend is None and record.attempts == 0


async def test_torch_fallback_when_the_server_is_down(policy, audit, clinician_call, samples):
    # A loopback port nobody listens on: the start-up probe marks it not ready.
    dead = triton("127.0.0.1:9", "nvidia-h100")
    async with make_bridge(policy, audit, {BREAST: [dead, TORCH]}) as bridge:
        status = bridge.router.status(bridge.catalog.get(BREAST))
        assert status[0].healthy is False
        result = await bridge.infer(
            clinician_call,
            InferenceRequest(
                BREAST, patient_id="p1", features=breast_features(samples.breast_x[0])
            ),
        )
    assert (result.provenance.backend, result.provenance.attempts) == ("torch", 1)


async def test_modelserver_typed_contents(modelserver, policy, audit, clinician_call, samples):
    rows = samples.breast_x[:3]
    # tritonclient's own decoder finds no data in typed contents (an empty array that
    # cannot take the output's shape).
    client = triton_aio.InferenceServerClient(modelserver.target)
    item = InferInput("features__0", [1, 30], "FP32")
    item.set_data_from_numpy(rows[:1].astype(np.float32))
    raw = await client.infer(BREAST, [item])
    with pytest.raises(ValueError, match="size 0"):
        raw.as_numpy("prediction__0")
    assert len(raw.get_response().outputs[0].contents.fp32_contents) == 1
    await client.close()
    placements = {
        BREAST: [triton(modelserver.target, "cpu", server_model_version="")],
        DIABETES: [triton(modelserver.target, "cpu", server_model_version="")],
    }
    expected = expected_predictions(BREAST, rows)
    async with make_bridge(policy, audit, placements) as bridge:
        for row, want in zip(rows, expected, strict=True):
            result = await bridge.infer(
                clinician_call,
                InferenceRequest(BREAST, patient_id="p1", features=breast_features(row)),
            )
            assert math.isclose(result.prediction, float(want), rel_tol=1e-5)
        consult = await bridge.consult(
            clinician_call,
            ConsultRequest(
                (DIABETES,), patient_id="p1", features=diabetes_features(samples.diabetes_x[0])
            ),
        )
    assert consult.opinions[0].result.provenance.endpoint == modelserver.target
    assert len(consult.opinions[0].neighbours) == 5
