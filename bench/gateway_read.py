"""Gateway read/search throughput and latency versus a bare grpc.aio echo of the same payload.

Usage: python bench/gateway_read.py [--seconds 5] [--bundles PATH ...]

Starts, as separate processes, the gateway (SQL adapter over a seeded SQLite legacy database,
dev-issuer JWT authentication, Oso policy) and a bare grpc.aio echo server answering with a
payload of the same size as the gateway's response. Then drives each at 1 and 32 concurrent
callers from this process and prints p50/p99 latency and throughput, with the gateway's share
of the echo's throughput and its p50 relative to the echo's.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
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
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from his_sdk._generated.his.v1 import fhir_pb2, fhir_pb2_grpc  # noqa: E402
from his_sdk.auth import DevIssuer  # noqa: E402

ISSUER = "http://127.0.0.1/bench-issuer"
AUDIENCE = "his-bench"
ECHO_METHOD = "/bench.Echo/Echo"

ECHO_SERVER = """
import asyncio, sys, grpc
size = int(sys.argv[2])
payload = b"x" * size
async def echo(request, context):
    return payload
async def main():
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:" + sys.argv[1])
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


async def drive(
    call: Callable[[], Awaitable[object]], concurrency: int, seconds: float
) -> tuple[float, float, float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    for _ in range(20):  # warm-up
        await call()
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return p50, p99, len(latencies) / elapsed


def start_gateway(workdir: Path, db: Path, name: str, bootstrap: str | None) -> tuple[Any, int]:
    """Start `his serve` in its own process; audit on when a broker address is given."""
    port = free_port()
    config = workdir / f"{name}.yaml"
    audit = (
        f"audit: {{outbox_url: 'sqlite:///{workdir / name}.db', "
        f"kafka: {{bootstrap_servers: ['{bootstrap}'], topic: bench.{name}}}}}\n"
        if bootstrap
        else "audit: {enabled: false}\n"
    )
    config.write_text(
        f"server: {{port: {port}}}\n"
        f"auth: {{issuer: '{ISSUER}', audience: {AUDIENCE}, "
        f"jwks_file: '{workdir / 'issuer' / 'jwks.json'}'}}\n"
        "adapters:\n  - name: openemr\n    implementation: adapters.sql:SqlAdapter\n"
        f"    settings: {{url: 'sqlite:///{db}', mapping: openemr}}\n"
        f"state: {{url: 'sqlite:///{workdir / name}.db'}}\nlog_level: WARNING\n" + audit
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "his_sdk.cli", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    wait_port(port)
    return process, port


async def run(args: argparse.Namespace, workdir: Path) -> None:
    from adapters.sql import seed_synthea
    from his_sdk.testing import TansuBroker

    db = workdir / "legacy.db"
    seed_synthea(f"sqlite:///{db}", args.bundles)
    issuer = DevIssuer.init(workdir / "issuer", issuer=ISSUER)
    broker = TansuBroker.start()
    gateway, port = start_gateway(workdir, db, "audited", broker.bootstrap_servers)
    quiet, quiet_port = start_gateway(workdir, db, "unaudited", None)
    processes = [gateway, quiet]
    audit_rows = []
    try:
        token = issuer.mint(
            client_id="bench-agent",
            audience=AUDIENCE,
            scopes="system/Patient.rs system/Observation.rs",
            roles=("system",),
        )
        metadata = (("authorization", f"Bearer {token}"),)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = fhir_pb2_grpc.FhirServiceStub(channel)
        # A patient with laboratory results, so the search returns a full page.
        first = await stub.Search(
            fhir_pb2.SearchRequest(
                resource_type="Observation",
                count=1,
                parameters=[fhir_pb2.SearchParameter(name="category", value="laboratory")],
            ),
            metadata=metadata,
        )
        patient_id = json.loads(first.resources[0].json)["subject"]["reference"].split("/")[1]
        read_request = fhir_pb2.ReadRequest(resource_type="Patient", id=patient_id)
        search_request = fhir_pb2.SearchRequest(
            resource_type="Observation",
            count=args.count,
            parameters=[
                fhir_pb2.SearchParameter(name="patient", value=patient_id),
                fhir_pb2.SearchParameter(name="category", value="laboratory"),
            ],
        )
        scenarios = {
            "Patient read": (stub.Read, read_request),
            f"Observation search (_count={args.count})": (stub.Search, search_request),
        }
        rows = []
        for name, (method, request) in scenarios.items():
            response = await method(request, metadata=metadata)
            size = response.ByteSize()
            echo_port = free_port()
            echo = subprocess.Popen(
                [sys.executable, "-c", ECHO_SERVER, str(echo_port), str(size)],
                stdout=subprocess.PIPE,
            )
            processes.append(echo)
            wait_port(echo_port)
            echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}")
            echo_call = echo_channel.unary_unary(ECHO_METHOD)
            body = request.SerializeToString()
            gateway_call = functools.partial(method, request, metadata=metadata)
            echo_once = functools.partial(echo_call, body)
            for concurrency in (1, 32):
                g = await drive(gateway_call, concurrency, args.seconds)
                e = await drive(echo_once, concurrency, args.seconds)
                rows.append((name, size, concurrency, g, e))
            await echo_channel.close()
            echo.terminate()
        quiet_channel = grpc.aio.insecure_channel(f"127.0.0.1:{quiet_port}")
        quiet_stub = fhir_pb2_grpc.FhirServiceStub(quiet_channel)
        for concurrency in (1, 32):
            off = await drive(
                functools.partial(quiet_stub.Read, read_request, metadata=metadata),
                concurrency,
                args.seconds,
            )
            on = await drive(
                functools.partial(stub.Read, read_request, metadata=metadata),
                concurrency,
                args.seconds,
            )
            audit_rows.append((concurrency, off, on))
        await quiet_channel.close()
        await channel.close()
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        broker.stop()

    header = (
        f"{'scenario':<34}{'bytes':>7}{'conc':>6}{'gw p50':>9}{'gw p99':>9}{'gw rps':>9}"
        f"{'echo p50':>10}{'echo p99':>10}{'echo rps':>10}{'rps %':>8}{'p50 x':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, size, conc, (gp50, gp99, grps), (ep50, ep99, erps) in rows:
        print(
            f"{name:<34}{size:>7}{conc:>6}{gp50:>8.2f}m{gp99:>8.2f}m{grps:>9.0f}"
            f"{ep50:>9.2f}m{ep99:>9.2f}m{erps:>10.0f}{100 * grps / erps:>7.0f}%"
            f"{gp50 / ep50:>7.2f}"
        )
    print("\nPatient read, audit off vs on (outbox in SQLite, published to a local broker)")
    print(f"{'conc':>6}{'off rps':>10}{'on rps':>10}{'off p50':>9}{'on p50':>9}{'cost':>8}")
    for conc, (op50, _, orps), (np50, _, nrps) in audit_rows:
        print(
            f"{conc:>6}{orps:>10.0f}{nrps:>10.0f}{op50:>8.2f}m{np50:>8.2f}m"
            f"{100 * (1 - nrps / orps):>7.0f}%"
        )
    print(
        "\nlatencies in ms; rps % = gateway throughput as a share of the echo's (target >= 60%);"
        " p50 x = gateway p50 / echo p50 (target <= 2)"
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
