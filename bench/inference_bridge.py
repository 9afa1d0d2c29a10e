"""Inference bridge overhead: raw tritonclient calls to MLServer versus the same via the bridge.

Usage: python bench/inference_bridge.py [--seconds 4] [--large-seconds 6]

Starts one MLServer (from the cached peer venv, built on first use) serving a parameter-free
"echo" network (mean and the first four values of its input), then, in one run and
interleaved, drives it with

* raw ``tritonclient.grpc.aio`` ``infer`` calls carrying one FP32 tensor, and
* ``InferenceBridge.infer`` calls producing the same tensor through a preprocessor: policy
  decision (Oso), routing, the same tritonclient call, output decoding, FHIR Observation,
  Device and Provenance, and one audit record to an in-memory sink,

at 1 and 32 concurrent callers with 1 KB, 64 KB and 4 MB inputs. It prints p50/p99 latency,
their differences, and the bridge's own time per call: its wall time minus the routed
tritonclient call inside it (the same call the raw column makes).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import inference_bridge
from his_sdk.auth import Principal, parse_scopes
from his_sdk.config import PolicySettings
from his_sdk.policy import PolicyEngine
from his_sdk.server import CallContext
from his_sdk.testing import (
    MLSERVER_REQUIREMENTS,
    TORCH_CPU_INDEX,
    TORCH_CPU_REQUIREMENT,
    MLServerPeer,
    peer_python,
)
from inference_bridge._peers import write_mlserver_repository

MODEL = "bench-echo"
SIZES = {"1 KB": 1024, "64 KB": 64 * 1024, "4 MB": 4 * 1024 * 1024}


class Echo(torch.nn.Module):
    """Mean of the input and its first four values: cheap at any size."""

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return features.mean(dim=1, keepdim=True), features[:, :4]


def make_tensor(size: int) -> np.ndarray:
    """The bench input of ``size`` bytes; the same values on every call."""
    return np.random.default_rng(size).random((1, size // 4), dtype=np.float32)


class SizedInput:
    """Bench preprocessor: the request's ``size`` feature picks the input tensor."""

    def __init__(self) -> None:
        self._tensors: dict[int, np.ndarray] = {}

    def __call__(self, entry, inputs):
        size = int(inputs.features["size"])
        if size not in self._tensors:
            self._tensors[size] = make_tensor(size)
        return {"features__0": self._tensors[size]}


def echo_entry(folder: Path, endpoint: str) -> inference_bridge.ModelEntry:
    weights = folder / "echo.pt"
    torch.save(Echo().state_dict(), weights)
    base = inference_bridge.Catalog.load().get("diabetes-progression")
    return inference_bridge.ModelEntry.model_validate(
        {
            **base.model_dump(),
            "name": MODEL,
            "inputs": [{"name": "features__0", "datatype": "FP32", "shape": [-1, -1]}],
            "outputs": [
                {"name": "prediction__0", "datatype": "FP32", "shape": [-1, 1]},
                {"name": "embedding__1", "datatype": "FP32", "shape": [-1, 4]},
            ],
            "case_library": None,
            "embedding_output": None,
            "torch": {"architecture": "bench.inference_bridge:Echo", "weights": weights},
            "fhir": {**base.fhir.model_dump(), "preprocessor": "bench.inference_bridge:SizedInput"},
            "placements": [{"backend": "triton", "endpoint": endpoint, "accelerator": "cpu"}],
        }
    )


def principal() -> Principal:
    scopes, other = parse_scopes("system/Observation.c")
    return Principal(
        client_id="bench-agent",
        subject="bench-agent",
        on_behalf_of=None,
        fhir_user=None,
        scopes=scopes,
        other_scopes=other,
        roles=frozenset({"system"}),
        patient=None,
        token_id="bench",
        issuer="http://127.0.0.1/bench",
        expires_at=datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC),
    )


async def drive(
    call: Callable[[], Awaitable[float | None]], callers: int, seconds: float
) -> tuple[list[float], list[float]]:
    """Latencies (ms) of calls made for ``seconds``, and each latency minus what it reported."""
    latencies: list[float] = []
    remainders: list[float] = []
    stop = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            inner = await call()
            elapsed = (time.perf_counter() - started) * 1000
            latencies.append(elapsed)
            if inner is not None:
                remainders.append(elapsed - inner)

    await asyncio.gather(*(worker() for _ in range(callers)))
    return latencies, remainders


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main(seconds: float, large_seconds: float) -> None:
    python = peer_python(
        MLSERVER_REQUIREMENTS, first=(TORCH_CPU_REQUIREMENT,), extra_index_urls=(TORCH_CPU_INDEX,)
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        entry = echo_entry(folder, "127.0.0.1:1")
        write_mlserver_repository(inference_bridge.Catalog([entry]), folder / "repo")
        with MLServerPeer(python, folder / "repo", models=[(MODEL, "1")]) as peer:
            entry = echo_entry(folder, peer.target)
            await run(entry, peer.target, seconds, large_seconds)


async def run(entry, target: str, seconds: float, large_seconds: float) -> None:
    records: list[Any] = []

    async def sink(record: Any) -> None:
        records.append(record)

    bridge = inference_bridge.InferenceBridge(
        # One probe at start: a probe timing out while 32 callers load the server would only
        # add log lines here (the router still uses a placement whose probe failed when it
        # is the only one).
        inference_bridge.InferenceSettings(routing={"health_interval_seconds": 3600}),
        policy=PolicyEngine.from_settings(PolicySettings()),
        catalog=inference_bridge.Catalog([entry]),
        audit=sink,
    )
    await bridge.start()
    call = CallContext(principal=principal(), request_id="bench")
    client = triton_aio.InferenceServerClient(
        target,
        channel_args=[
            ("grpc.max_send_message_length", 80 * 1024 * 1024),
            ("grpc.max_receive_message_length", 80 * 1024 * 1024),
        ],
    )
    outputs = [triton_grpc.InferRequestedOutput(o.name) for o in entry.outputs]
    print(
        "| input | callers | raw p50 / p99 (ms) | bridge p50 / p99 (ms) | added p50 / p99 (ms) "
        "| added p50 % | bridge's own time p50 / p99 (ms) | raw req/s | bridge req/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, size in SIZES.items():
        tensor = make_tensor(size)
        request = inference_bridge.InferenceRequest(MODEL, features={"size": float(size)})

        async def raw(tensor: np.ndarray = tensor) -> None:
            item = triton_grpc.InferInput("features__0", list(tensor.shape), "FP32")
            item.set_data_from_numpy(tensor)
            result = await client.infer(
                MODEL, [item], model_version="1", outputs=outputs, client_timeout=30
            )
            result.get_response()

        async def bridged(request: inference_bridge.InferenceRequest = request) -> float:
            result = await bridge.infer(call, request)
            # The routed tritonclient call's own time: the rest is what the bridge adds.
            return result.provenance.latency_ms

        span = large_seconds if size > 64 * 1024 else seconds
        for callers in (1, 32):
            await drive(raw, callers, 0.5)
            await drive(bridged, callers, 0.5)
            raw_lat: list[float] = []
            bridge_lat: list[float] = []
            own: list[float] = []
            # Interleave short rounds so drift on a shared machine hits both equally.
            rounds = 10
            for _ in range(rounds):
                raw_lat += (await drive(raw, callers, span / rounds))[0]
                total, remainder = await drive(bridged, callers, span / rounds)
                bridge_lat += total
                own += remainder
            r50, r99 = pct(raw_lat, 50), pct(raw_lat, 99)
            b50, b99 = pct(bridge_lat, 50), pct(bridge_lat, 99)
            print(
                f"| {label} | {callers} | {r50:.2f} / {r99:.2f} | {b50:.2f} / {b99:.2f} "
                f"| {b50 - r50:.2f} / {b99 - r99:.2f} | {100 * (b50 - r50) / r50:.1f}% "
                f"| {pct(own, 50):.2f} / {pct(own, 99):.2f} "
                f"| {len(raw_lat) / span:.0f} | {len(bridge_lat) / span:.0f} |",
                flush=True,
            )
    await client.close()
    await bridge.close()
    assert records and all(r.outcome.value == "success" for r in records)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--large-seconds", type=float, default=6.0)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.large_seconds))
