"""Approval queue under load: 20 reviewers deciding 1,000 pending writes over gRPC, PostgreSQL.

Usage: python bench/approval.py [--requests 1000] [--reviewers 20] [--replay-share 0.1]
                                [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Starts `his serve` in its own process with the approval queue on a fresh PostgreSQL database,
audit on (outbox in the queue's database, published to a local tansu broker) and a bench
adapter that records every execute call in a table of its own. An agent proposes the writes
(medium risk: one approval each); then the reviewers, each with their own token, list pending
requests and approve them concurrently, racing each other for the same requests and replaying
a share of their decisions. Prints decisions/s, decision-to-execution p50/p99 (from the
queue's own decided_at and executed_at) and the number of requests the adapter executed more
than once (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import his_sdk  # noqa: E402
import his_sdk.errors  # noqa: E402
from his_sdk.adapter import (  # noqa: E402
    AdapterCapabilities,
    ApprovedWrite,
    HealthState,
    HealthStatus,
    Interaction,
    PatientFacts,
    SearchPage,
    TypeCapability,
    WriteOutcome,
)
from his_sdk.auth import DevIssuer  # noqa: E402

ISSUER = "http://127.0.0.1/bench-issuer"
AUDIENCE = "his-bench"
PATIENTS = [f"p{i}" for i in range(50)]
DOCTOR = "Practitioner/dr-bench"


class BenchAdapter:
    """An EHR that accepts Observation creates and logs every execute call to PostgreSQL."""

    def __init__(self, url: str) -> None:
        self._engine = sa.create_engine(url, pool_size=20)
        self._log = sa.Table(
            "bench_executions",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("write_key", sa.String(64), nullable=False, index=True),
            sa.Column("at", sa.Float, nullable=False),
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> BenchAdapter:
        return cls(str(settings["url"]))

    def capabilities(self) -> AdapterCapabilities:
        read = frozenset({Interaction.READ, Interaction.SEARCH})
        return AdapterCapabilities(
            {
                "Patient": TypeCapability("Patient", read),
                "Observation": TypeCapability("Observation", read | {Interaction.CREATE}),
            }
        )

    async def start(self) -> None:
        await asyncio.to_thread(self._log.metadata.create_all, self._engine)

    async def close(self) -> None:
        await asyncio.to_thread(self._engine.dispose)

    async def read(self, resource_type: str, resource_id: str) -> Any:
        raise his_sdk.errors.NotFoundError(f"{resource_type}/{resource_id} not found")

    async def search(self, query: Any) -> SearchPage:
        return SearchPage([])

    async def execute(self, write: ApprovedWrite) -> WriteOutcome:
        await asyncio.to_thread(self._record, write.key)
        return WriteOutcome("Observation", f"obs-{write.key[:8]}", "1", "written")

    def _record(self, key: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(self._log.insert().values(write_key=key, at=time.time()))

    async def health(self) -> HealthStatus:
        return HealthStatus(HealthState.SERVING)

    async def patient_facts(self, patient_id: str) -> PatientFacts:
        return PatientFacts(patient_id, exists=True, care_team=frozenset({DOCTOR}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the gateway exited during start")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def observation(patient: str, value: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": value, "unit": "/min"},
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def propose_all(target: str, token: str, count: int) -> list[str]:
    from fhir.resources.R4B.observation import Observation

    ids: list[str] = []
    work = list(range(count))

    async def worker(client: his_sdk.AsyncHisClient) -> None:
        while work:
            i = work.pop()
            task = await client.propose_create(
                Observation.model_validate(observation(PATIENTS[i % len(PATIENTS)], 40 + i)),
                justification=f"bench reading {i}",
            )
            ids.append(str(task.id))

    async with his_sdk.AsyncHisClient.connect(target, token=token, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(20)))
    return ids


class Desk:
    """Hands out pending requests like a console's queue view; some go to two reviewers."""

    def __init__(self, ids: list[str], race_share: float, seed: int) -> None:
        self._ids = list(ids)
        self._rng = random.Random(seed)
        self._race_share = race_share
        self._contested: list[str] = []

    def next(self) -> str | None:
        if self._contested:
            return self._contested.pop()
        if not self._ids:
            return None
        request_id = self._ids.pop()
        if self._rng.random() < self._race_share:
            self._contested.append(request_id)  # another reviewer opens the same card now
        return request_id


async def review(
    target: str,
    token: str,
    desk: Desk,
    args: argparse.Namespace,
    stats: dict[str, Any],
    seed: int,
) -> None:
    from approval_service import AsyncApprovalClient, RequestQuery, RequestStatus

    rng = random.Random(seed)
    query = RequestQuery(statuses=(RequestStatus.PENDING,), page_size=50)
    async with AsyncApprovalClient.connect(target, token=token, timeout=60) as client:
        done = 0
        while (request_id := desk.next()) is not None:
            if done % args.list_every == 0:
                started = time.perf_counter()
                await client.list(query)
                stats["list_ms"].append((time.perf_counter() - started) * 1000)
            done += 1
            started = time.perf_counter()
            try:
                await client.decide(request_id, "approve")
            except his_sdk.errors.PreconditionFailedError:
                stats["lost_races"] += 1
                continue
            stats["decide_ms"].append((time.perf_counter() - started) * 1000)
            stats["decided_at"][request_id] = time.time()
            stats["decisions"] += 1
            if rng.random() < args.replay_share:
                await client.decide(request_id, "approve")
                stats["replays"] += 1


async def run(args: argparse.Namespace, workdir: Path) -> None:
    from his_sdk.testing import TansuBroker

    name = f"his_bench_approval_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    broker = TansuBroker.start()
    gateway: subprocess.Popen[bytes] | None = None
    try:
        issuer = DevIssuer.init(workdir / "issuer", issuer=ISSUER)
        port = free_port()
        config = workdir / "gateway.yaml"
        config.write_text(
            json.dumps(
                {
                    "server": {"port": port},
                    "auth": {
                        "issuer": ISSUER,
                        "audience": AUDIENCE,
                        "jwks_file": str(workdir / "issuer" / "jwks.json"),
                    },
                    "adapters": [
                        {
                            "name": "bench",
                            "implementation": "bench.approval:BenchAdapter",
                            "settings": {"url": url},
                        }
                    ],
                    "state": {"url": url},
                    "approvals": {"sweep_interval_seconds": 1.0},
                    "audit": {
                        "outbox_url": url,
                        "instance_id": "bench",
                        "kafka": {
                            "bootstrap_servers": [broker.bootstrap_servers],
                            "topic": "bench.approvals",
                        },
                    },
                    "log_level": "WARNING",
                }
            )
        )
        log = (workdir / "gateway.log").open("wb")
        gateway = subprocess.Popen(
            [sys.executable, "-m", "his_sdk.cli", "serve", "--config", str(config)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        wait_port(port, gateway)
        target = f"127.0.0.1:{port}"
        agent = issuer.mint(
            client_id="bench-agent",
            audience=AUDIENCE,
            scopes="user/Observation.crs user/Patient.rs",
            roles=["clinician"],
            act_subject="dr.bench",
            act_fhir_user=DOCTOR,
            ttl_seconds=3600,
        )
        started = time.perf_counter()
        ids = await propose_all(target, agent, args.requests)
        proposing = time.perf_counter() - started
        tokens = [
            issuer.mint(
                client_id="bench-console",
                audience=AUDIENCE,
                scopes="openid",
                roles=["clinician"],
                fhir_user=f"Practitioner/reviewer-{i}",
                extra_claims={"sub": f"reviewer-{i}"},
            )
            for i in range(args.reviewers)
        ]
        stats: dict[str, Any] = {
            "decisions": 0,
            "lost_races": 0,
            "replays": 0,
            "decide_ms": [],
            "list_ms": [],
            "decided_at": {},
        }
        desk = Desk(ids, args.race_share, seed=7)
        started = time.perf_counter()
        await asyncio.gather(
            *(review(target, t, desk, args, stats, i) for i, t in enumerate(tokens))
        )
        deciding = time.perf_counter() - started
        engine = sa.create_engine(url)
        deadline = time.monotonic() + 120
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                waiting = conn.execute(
                    sa.text("SELECT COUNT(*) FROM his_approval_requests WHERE status = 'approved'")
                ).scalar()
                if not waiting:
                    break
                conn.commit()
                await asyncio.sleep(0.2)
            rows = conn.execute(
                sa.text(
                    "SELECT r.id, r.status, EXTRACT(EPOCH FROM r.executed_at) AS executed, "
                    "EXTRACT(EPOCH FROM MIN(e.at)) AS claimed "
                    "FROM his_approval_requests r LEFT JOIN his_approval_events e "
                    "ON e.request_id = r.id AND e.kind = 'execution-started' "
                    "GROUP BY r.id, r.status, r.executed_at"
                )
            ).all()
            doubles = conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM (SELECT write_key FROM bench_executions "
                    "GROUP BY write_key HAVING COUNT(*) > 1) d"
                )
            ).scalar()
            calls = conn.execute(sa.text("SELECT COUNT(*) FROM bench_executions")).scalar()
            audit_rows = conn.execute(sa.text("SELECT COUNT(*) FROM his_audit_outbox")).scalar()
        engine.dispose()
        executed = [r for r in rows if r.status == "executed"]
        # From the moment the deciding reviewer got the answer to the EHR write being recorded.
        decided = stats["decided_at"]
        lags = [(float(r.executed) - decided[r.id]) * 1000 for r in executed if r.id in decided]
        claims = [
            (float(r.claimed) - decided[r.id]) * 1000
            for r in executed
            if r.id in decided and r.claimed is not None
        ]
        table = [
            ("requests proposed", f"{len(ids)}"),
            ("proposals/s (20 concurrent, one agent)", f"{len(ids) / proposing:.0f}"),
            ("reviewers", f"{args.reviewers}"),
            ("decisions recorded", f"{stats['decisions']}"),
            ("decisions/s", f"{stats['decisions'] / deciding:.0f}"),
            (
                "Decide call p50 / p99 (ms)",
                f"{percentile(stats['decide_ms'], 0.5):.0f} / "
                f"{percentile(stats['decide_ms'], 0.99):.0f}",
            ),
            (
                "ListRequests (50) call p50 / p99 (ms)",
                f"{percentile(stats['list_ms'], 0.5):.0f} / "
                f"{percentile(stats['list_ms'], 0.99):.0f}",
            ),
            ("races lost to another reviewer (refused)", f"{stats['lost_races']}"),
            ("decisions replayed (same answer, no effect)", f"{stats['replays']}"),
            ("executed", f"{len(executed)}"),
            ("execute calls on the adapter", f"{calls}"),
            (
                "decision answered -> execution recorded p50 (ms)",
                f"{percentile(lags, 0.5):.1f}" if lags else "-",
            ),
            (
                "decision answered -> execution recorded p99 (ms)",
                f"{percentile(lags, 0.99):.1f}" if lags else "-",
            ),
            (
                "of which decision answered -> claimed p50 / p99 (ms)",
                f"{percentile(claims, 0.5):.1f} / {percentile(claims, 0.99):.1f}"
                if claims
                else "-",
            ),
            ("audit events in the outbox", f"{audit_rows}"),
            ("double executions", f"{doubles}"),
        ]
        width = max(len(k) for k, _ in table)
        print(f"\napproval queue on PostgreSQL, {args.reviewers} reviewers over gRPC\n")
        print(f"| {'measure':<{width}} | value |")
        print(f"|{'-' * (width + 2)}|-------|")
        for key, value in table:
            print(f"| {key:<{width}} | {value} |")
        if doubles or len(executed) != len(ids):
            print((workdir / "gateway.log").read_text()[-4000:], file=sys.stderr)
            raise SystemExit("FAILED: every request must execute exactly once")
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        broker.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--replay-share", type=float, default=0.1)
    parser.add_argument(
        "--race-share", type=float, default=0.1, help="requests opened by two reviewers at once"
    )
    parser.add_argument(
        "--list-every", type=int, default=10, help="decisions between queue refreshes"
    )
    parser.add_argument(
        "--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
