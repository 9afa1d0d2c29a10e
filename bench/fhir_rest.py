"""FHIR REST facade versus gRPC, and the cost of one upstream hop through the FHIR adapter.

Usage: python bench/fhir_rest.py [--seconds 5] [--count 10] [--bundles PATH ...]

Starts two gateways as separate processes: B serves a seeded SQLite legacy database (SQL
adapter) over gRPC and the REST facade; A serves B's facade through the FHIR adapter (fhirpy,
pooled HTTP/1.1, a static system token for B). Then drives, from this process, a Patient read
and an Observation search at 1 and 16 concurrent callers through B's gRPC, B's REST facade
(httpx, keep-alive) and A's gRPC, and prints p50/p99 latency and throughput per path, with
what the hop A -> B adds to B's gRPC p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from his_sdk._generated.his.v1 import fhir_pb2, fhir_pb2_grpc  # noqa: E402
from his_sdk.auth import DevIssuer  # noqa: E402

ISSUER = "http://127.0.0.1/bench-issuer"
AUDIENCE = "his-bench"
CONCURRENCY = (1, 16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited with {process.returncode} before port {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


async def drive(
    call: Callable[[], Awaitable[object]], concurrency: int, seconds: float
) -> tuple[float, float, float]:
    latencies: list[float] = []
    for _ in range(20):  # warm-up: connections, token and facts caches
        await call()
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return p50, p99, len(latencies) / elapsed


def gateway_config(path: Path, workdir: Path, name: str, port: int, extra: str) -> None:
    path.write_text(
        f"server: {{port: {port}}}\n"
        f"auth: {{issuer: '{ISSUER}', audience: {AUDIENCE}, "
        f"jwks_file: '{workdir / 'issuer' / 'jwks.json'}'}}\n"
        f"state: {{url: 'sqlite:///{workdir / f'state-{name}.db'}'}}\n"
        f"log_level: WARNING\n{extra}"
    )


def spawn(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "his_sdk.cli", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
    )


async def run(args: argparse.Namespace, workdir: Path) -> None:
    from adapters.sql import seed_synthea

    db = workdir / "legacy.db"
    seed_synthea(f"sqlite:///{db}", args.bundles)
    issuer = DevIssuer.init(workdir / "issuer", issuer=ISSUER)
    system_token = issuer.mint(
        client_id="bench-gateway-a",
        audience=AUDIENCE,
        scopes="system/Patient.rs system/Observation.rs",
        roles=("system",),
        ttl_seconds=6 * 3600,
    )
    b_grpc, b_rest, a_grpc = free_port(), free_port(), free_port()
    b_config, a_config = workdir / "b.yaml", workdir / "a.yaml"
    gateway_config(
        b_config,
        workdir,
        "b",
        b_grpc,
        f"rest: {{enabled: true, port: {b_rest}}}\n"
        "adapters:\n  - name: legacy\n    implementation: adapters.sql:SqlAdapter\n"
        f"    settings: {{url: 'sqlite:///{db}', mapping: openemr}}\n",
    )
    gateway_config(
        a_config,
        workdir,
        "a",
        a_grpc,
        "adapters:\n  - name: upstream\n    implementation: adapters.fhir:FhirAdapter\n"
        f"    settings: {{base_url: 'http://127.0.0.1:{b_rest}', "
        "types: [Patient, Observation], "
        f"headers: {{Authorization: 'Bearer {system_token}'}}}}\n",
    )
    processes = [spawn(b_config)]
    try:
        wait_port(b_grpc, processes[0])
        wait_port(b_rest, processes[0])
        processes.append(spawn(a_config))
        wait_port(a_grpc, processes[1])
        token = issuer.mint(
            client_id="bench-agent",
            audience=AUDIENCE,
            scopes="system/Patient.rs system/Observation.rs",
            roles=("system",),
        )
        rows = await measure(args, token, b_grpc, b_rest, a_grpc)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
    print_table(rows)


async def measure(
    args: argparse.Namespace, token: str, b_grpc: int, b_rest: int, a_grpc: int
) -> list[tuple[str, str, int, tuple[float, float, float]]]:
    metadata = (("authorization", f"Bearer {token}"),)
    channels = {
        "B gRPC": grpc.aio.insecure_channel(f"127.0.0.1:{b_grpc}"),
        "A gRPC -> B REST": grpc.aio.insecure_channel(f"127.0.0.1:{a_grpc}"),
    }
    stubs = {name: fhir_pb2_grpc.FhirServiceStub(channel) for name, channel in channels.items()}
    http = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{b_rest}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
        limits=httpx.Limits(max_connections=max(CONCURRENCY)),
    )
    # A patient with laboratory results, so the search returns a full page.
    first = await stub_search(stubs["B gRPC"], metadata, [("category", "laboratory")], 1)
    patient = json.loads(first.resources[0].json)["subject"]["reference"].split("/")[1]
    criteria = [("patient", patient), ("category", "laboratory")]
    rest_query = httpx.QueryParams([*criteria, ("_count", str(args.count))])

    def grpc_calls(
        stub: fhir_pb2_grpc.FhirServiceStub,
    ) -> dict[str, Callable[[], Awaitable[object]]]:
        read = fhir_pb2.ReadRequest(resource_type="Patient", id=patient)
        search = fhir_pb2.SearchRequest(
            resource_type="Observation",
            count=args.count,
            parameters=[fhir_pb2.SearchParameter(name=n, value=v) for n, v in criteria],
        )
        return {
            "Patient read": lambda: stub.Read(read, metadata=metadata),
            "Observation search": lambda: stub.Search(search, metadata=metadata),
        }

    async def rest_get(path: str, params: httpx.QueryParams | None = None) -> None:
        response = await http.get(path, params=params)
        response.raise_for_status()

    paths: dict[str, dict[str, Callable[[], Awaitable[object]]]] = {
        "B gRPC": grpc_calls(stubs["B gRPC"]),
        "B REST": {
            "Patient read": lambda: rest_get(f"/Patient/{patient}"),
            "Observation search": lambda: rest_get("/Observation", rest_query),
        },
        "A gRPC -> B REST": grpc_calls(stubs["A gRPC -> B REST"]),
    }
    rows = []
    for scenario in ("Patient read", "Observation search"):
        for concurrency in CONCURRENCY:
            for path, calls in paths.items():
                result = await drive(calls[scenario], concurrency, args.seconds)
                rows.append((scenario, path, concurrency, result))
    await http.aclose()
    for channel in channels.values():
        await channel.close()
    return rows


async def stub_search(
    stub: fhir_pb2_grpc.FhirServiceStub,
    metadata: tuple[tuple[str, str], ...],
    params: list[tuple[str, str]],
    count: int,
) -> fhir_pb2.SearchResponse:
    request = fhir_pb2.SearchRequest(
        resource_type="Observation",
        count=count,
        parameters=[fhir_pb2.SearchParameter(name=n, value=v) for n, v in params],
    )
    response: fhir_pb2.SearchResponse = await stub.Search(request, metadata=metadata)
    return response


def print_table(rows: list[tuple[str, str, int, tuple[float, float, float]]]) -> None:
    header = (
        f"{'scenario':<20}{'path':<18}{'conc':>5}{'p50 ms':>9}{'p99 ms':>9}{'rps':>8}"
        f"{'hop +p50':>10}"
    )
    print(header)
    print("-" * len(header))
    direct = {(s, c): r[0] for s, p, c, r in rows if p == "B gRPC"}
    for scenario, path, concurrency, (p50, p99, rps) in rows:
        hop = (
            f"{p50 - direct[(scenario, concurrency)]:>+9.2f}m"
            if path.startswith("A ")
            else f"{'':>10}"
        )
        print(f"{scenario:<20}{path:<18}{concurrency:>5}{p50:>9.2f}{p99:>9.2f}{rps:>8.0f}{hop}")
    print(
        "\nB: gateway over the SQL legacy database; A: gateway whose FHIR adapter calls B's REST"
        " facade.\nhop +p50 = A's p50 minus B's gRPC p50 at the same concurrency (one upstream"
        " hop)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=10, help="_count of the search")
    parser.add_argument("--bundles", type=Path, nargs="*", default=None)
    args = parser.parse_args()
    if not args.bundles:
        shared = ROOT.parent / "shared" / "corpora" / "synthea" / "small"
        args.bundles = [shared if shared.is_dir() else ROOT / "tests" / "data" / "synthea"]
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
