"""MCP over stdio: this project's ``his mcp`` versus a peer FHIR MCP server from PyPI.

Usage: python bench/mcp.py [--calls 200] [--bundles PATH ...]

Seeds a SQLite legacy database from Synthea bundles and starts one gateway (SQL adapter,
gRPC and the FHIR REST facade, audit off so neither path pays for it). Then asks the same
question, "patients whose family name starts with X" (``Patient?family=X``), through:

* ``his mcp`` over stdio (tool ``search_patient``; gRPC to the gateway, summaries by default);
* ``fhir-mcp-server`` (wso2, PyPI) over stdio, tool ``search``, pointed at the REST facade
  with the same token; installed in its own Python 3.12 venv under ``.his/mcp-peers``
  (``fhir-mcp-server`` with ``pydantic<2.12``) when a Python 3.12 is found.

``fhir-mcp`` (PyPI) is not driven: its FHIR backend sends no ``Authorization`` header, and
the facade requires a bearer token. Prints p50/p95 latency of a tool call (MCP client to
result, in this process) and the bytes of the result the agent receives.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# MCP SDK's package: put the repository root there instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.types import TextContent  # noqa: E402

from bench.fhir_rest import free_port, gateway_config, spawn, wait_port  # noqa: E402
from his_sdk.auth import DevIssuer  # noqa: E402

ISSUER = "http://127.0.0.1/bench-issuer"
AUDIENCE = "his-bench"
PEERS = ROOT / ".his" / "mcp-peers"
PEER_SPEC = ("fhir-mcp-server==0.10.0", "pydantic<2.12")


def python312() -> Path | None:
    """A Python 3.12 interpreter: on PATH, else under pyenv."""
    found = shutil.which("python3.12")
    if found:
        return Path(found)
    versions = sorted((Path.home() / ".pyenv" / "versions").glob("3.12*"))
    return versions[-1] / "bin" / "python" if versions else None


def peer_server() -> tuple[Path | None, str]:
    """The ``fhir-mcp-server`` executable in its own venv (installed on first use)."""
    venv = PEERS / "fhir-mcp-server"
    executable = venv / "bin" / "fhir-mcp-server"
    if executable.exists():
        return executable, "installed"
    interpreter = python312()
    if interpreter is None:
        return None, "no Python 3.12 found (fhir-mcp-server needs >= 3.12)"
    subprocess.run([str(interpreter), "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", *PEER_SPEC],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        return None, f"pip install failed: {install.stderr.strip().splitlines()[-1:]}"
    return executable, "installed now"


@asynccontextmanager
async def session(params: StdioServerParameters, errlog: Any) -> AsyncIterator[ClientSession]:
    async with (
        stdio_client(params, errlog=errlog) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


async def measure(
    client: ClientSession, tool: str, arguments: dict[str, Any], calls: int
) -> tuple[float, float, int, int]:
    """p50 and p95 in ms, median result bytes, resources in the first result."""
    latencies: list[float] = []
    sizes: list[int] = []
    for i in range(calls + 10):
        start = time.perf_counter()
        result = await client.call_tool(tool, arguments)
        elapsed = time.perf_counter() - start
        if result.isError:
            raise RuntimeError(f"{tool} failed: {result.content}")
        text = "".join(c.text for c in result.content if isinstance(c, TextContent))
        if i >= 10:  # the first calls warm connections and caches
            latencies.append(elapsed)
            sizes.append(len(text.encode()))
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))] * 1000
    return p50, p95, int(statistics.median(sizes)), len(latencies)


async def run(args: argparse.Namespace, workdir: Path) -> None:
    from adapters.sql import seed_synthea

    db = workdir / "legacy.db"
    seed_synthea(f"sqlite:///{db}", args.bundles)
    issuer = DevIssuer.init(workdir / "issuer", issuer=ISSUER)
    token = issuer.mint(
        client_id="bench-agent",
        audience=AUDIENCE,
        scopes="system/Patient.rs",
        roles=("system",),
        ttl_seconds=6 * 3600,
    )
    grpc_port, rest_port = free_port(), free_port()
    config = workdir / "gateway.yaml"
    gateway_config(
        config,
        workdir,
        "b",
        grpc_port,
        f"rest: {{enabled: true, port: {rest_port}}}\naudit: {{enabled: false}}\n"
        "adapters:\n  - name: legacy\n    implementation: adapters.sql:SqlAdapter\n"
        f"    settings: {{url: 'sqlite:///{db}', mapping: openemr}}\n",
    )
    gateway = spawn(config)
    rows: list[tuple[str, str, tuple[float, float, int, int]]] = []
    notes: list[str] = []
    try:
        wait_port(grpc_port, gateway)
        wait_port(rest_port, gateway)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        ours = StdioServerParameters(
            command=sys.executable,
            args=["-m", "his_sdk.cli", "mcp", "--target", f"127.0.0.1:{grpc_port}"],
            env={**env, "HIS_MCP_TOKEN": token},
        )
        with open(os.devnull, "w") as errlog:
            async with session(ours, errlog) as client:
                family = await pick_family(client)
                rows.append(
                    (
                        "his mcp (search_patient)",
                        "gRPC",
                        await measure(
                            client, "search_patient", {"params": {"family": family}}, args.calls
                        ),
                    )
                )
            rows.extend(await references(grpc_port, rest_port, token, family, args.calls))
            executable, how = peer_server()
            if executable is None:
                notes.append(f"fhir-mcp-server not measured: {how}")
            else:
                peer = StdioServerParameters(
                    command=str(executable),
                    args=["--transport", "stdio", "--log-level", "error"],
                    env={
                        "PATH": os.environ.get("PATH", ""),
                        "HOME": str(workdir),
                        "FHIR_SERVER_BASE_URL": f"http://127.0.0.1:{rest_port}",
                        "FHIR_SERVER_ACCESS_TOKEN": token,
                        "FHIR_SERVER_DISABLE_AUTHORIZATION": "true",
                    },
                    cwd=str(workdir),
                )
                async with session(peer, errlog) as client:
                    rows.append(
                        (
                            "fhir-mcp-server 0.10.0 (search)",
                            "REST facade",
                            await measure(
                                client,
                                "search",
                                {"type": "Patient", "searchParam": {"family": family}},
                                args.calls,
                            ),
                        )
                    )
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
    print_table(family, rows, notes)


async def references(
    grpc_port: int, rest_port: int, token: str, family: str, calls: int
) -> list[tuple[str, str, tuple[float, float, int, int]]]:
    """The layers below each MCP server, without MCP: the registry over gRPC, the facade."""
    import httpx

    from his_sdk.client import AsyncHisClient
    from his_sdk.mcp._budget import compact_json

    async def timed(call: Any) -> tuple[float, float, int, int]:
        latencies: list[float] = []
        size = 0
        for i in range(calls + 10):
            start = time.perf_counter()
            size = await call()
            if i >= 10:
                latencies.append(time.perf_counter() - start)
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
        return statistics.median(latencies) * 1000, p95 * 1000, size, len(latencies)

    async with AsyncHisClient.connect(f"127.0.0.1:{grpc_port}", token=token) as client:

        async def tool() -> int:
            result = await client.invoke_tool("search_patient", {"params": {"family": family}})
            return len(compact_json(result).encode())

        via_grpc = await timed(tool)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{rest_port}", headers={"Authorization": f"Bearer {token}"}
    ) as http:

        async def rest() -> int:
            response = await http.get("/Patient", params={"family": family})
            response.raise_for_status()
            return len(response.content)

        via_rest = await timed(rest)
    return [
        ("  no MCP: invoke_tool (SDK)", "gRPC", via_grpc),
        ("  no MCP: GET /Patient (httpx)", "REST facade", via_rest),
    ]


async def pick_family(client: ClientSession) -> str:
    """A family-name prefix matching a few patients, so both servers return the same page."""
    result = await client.call_tool(
        "search_patient", {"params": {}, "count": 1, "elements": ["name"]}
    )
    resources = (result.structuredContent or {}).get("resources") or []
    if result.isError or not resources:
        raise RuntimeError(f"no patients to search: {result.content}")
    return str(resources[0]["name"][0]["family"])[:3]


def print_table(
    family: str, rows: list[tuple[str, str, tuple[float, float, int, int]]], notes: list[str]
) -> None:
    print(f"question: Patient?family={family} over MCP stdio, one client, sequential calls\n")
    header = (
        f"{'server (tool)':<34}{'to gateway':<13}{'p50 ms':>8}{'p95 ms':>8}{'bytes':>8}{'n':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, path, (p50, p95, size, n) in rows:
        print(f"{name:<34}{path:<13}{p50:>8.2f}{p95:>8.2f}{size:>8}{n:>6}")
    measured = [r for r in rows if not r[0].startswith("  ")]
    if len(measured) == 2:
        (_, _, ours), (_, _, peer) = measured
        print(
            f"\np50 ratio ours/peer: {ours[0] / peer[0]:.2f}; "
            f"bytes ratio ours/peer: {ours[2] / peer[2]:.2f}"
        )
    for note in notes:
        print(note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--bundles", type=Path, nargs="*", default=None)
    args = parser.parse_args()
    if not args.bundles:
        shared = ROOT.parent / "shared" / "corpora" / "synthea" / "small"
        args.bundles = [shared if shared.is_dir() else ROOT / "tests" / "data" / "synthea"]
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
