"""Approval queue fixtures: a writable in-memory EHR, queue databases and a gateway over both."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

import his_sdk
import his_sdk.errors
from approval_service import ApprovalClient
from his_sdk.adapter import (
    AdapterCapabilities,
    ApprovedWrite,
    Interaction,
    TypeCapability,
    WriteOutcome,
)
from his_sdk.config import ApprovalSettings
from his_sdk.server import Gateway
from tests.conftest import GatewayThread
from tests.fixtures import MemoryAdapter

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

AGENT_SCOPES = (
    "user/Patient.rs user/Observation.cruds user/MedicationRequest.cruds user/Condition.cruds "
    "user/Task.rs"
)
# The agent works for dr.one (Practitioner/dr1), who treats p1.
AGENT = dict(
    client_id="agent-1",
    roles=("clinician",),
    act_subject="dr.one",
    act_fhir_user="Practitioner/dr1",
)

RESOURCES = [
    {"resourceType": "Patient", "id": "p1", "gender": "female"},
    {"resourceType": "Patient", "id": "p2", "gender": "male"},
    {
        "resourceType": "Observation",
        "id": "obs1",
        "status": "preliminary",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "meta": {"versionId": "3"},
        "valueQuantity": {"value": 72, "unit": "/min"},
    },
]
CARE_TEAMS = {"p1": frozenset({"Practitioner/dr1"}), "p2": frozenset({"Practitioner/dr9"})}


def medication_request(patient: str = "p1", drug: str = "Amlodipine 5 MG Oral Tablet") -> dict:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient}"},
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "197361",
                    "display": drug,
                }
            ],
            "text": drug,
        },
        "dosageInstruction": [{"text": "1 tablet daily"}],
    }


def observation(value: float = 72, patient: str = "p1") -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": value, "unit": "/min"},
    }


class WritableMemoryAdapter(MemoryAdapter):
    """The in-memory EHR, executing approved writes idempotently by key.

    ``executions`` counts execute calls, ``writes`` the writes that changed data; ``fail``
    makes the next executions raise, ``hold`` makes them wait (a slow or hung EHR).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.executions = 0
        self.writes: list[ApprovedWrite] = []
        self.outcomes: dict[str, WriteOutcome] = {}
        self.fail: list[Exception] = []
        self.hold: asyncio.Event | None = None
        self.after_write_hold: asyncio.Event | None = None
        self._next = 100

    def capabilities(self) -> AdapterCapabilities:
        base = super().capabilities()
        writes = frozenset({Interaction.CREATE, Interaction.UPDATE, Interaction.DELETE})
        types = dict(base.types)
        for name in ("MedicationRequest", "Condition", "Task"):
            types[name] = TypeCapability(name, frozenset({Interaction.READ, Interaction.SEARCH}))
        return AdapterCapabilities(
            {
                name: TypeCapability(
                    name, cap.interactions | writes, cap.search_params, cap.documentation
                )
                for name, cap in types.items()
            }
        )

    async def execute(self, write: ApprovedWrite) -> WriteOutcome:
        self.executions += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise self.fail.pop(0)
        if write.key in self.outcomes:
            return self.outcomes[write.key]
        self.writes.append(write)
        if write.interaction is Interaction.DELETE:
            self.resources.pop((write.resource_type, write.resource_id), None)
            outcome = WriteOutcome(write.resource_type, write.resource_id or "", None, "deleted")
        else:
            assert write.resource is not None
            data = write.resource.model_dump(mode="json", by_alias=True, exclude_none=True)
            if write.interaction is Interaction.CREATE:
                self._next += 1
                data["id"] = f"w{self._next}"
            data["meta"] = {"versionId": "1"}
            data["resourceType"] = write.resource_type
            self.resources[(write.resource_type, data["id"])] = data
            outcome = WriteOutcome(write.resource_type, data["id"], "1", "written")
        self.outcomes[write.key] = outcome
        if self.after_write_hold is not None:
            await self.after_write_hold.wait()
        return outcome


def postgres_reachable() -> str | None:
    engine = sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except sa.exc.OperationalError as exc:
        return f"PostgreSQL on 127.0.0.1:5432 is unreachable: {type(exc.orig).__name__}"
    finally:
        engine.dispose()


def make_database(kind: str, tmp_path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'approvals-{uuid.uuid4().hex[:8]}.db'}"
        return
    reason = postgres_reachable()
    if reason is not None:
        pytest.skip(reason)
    name = f"his_approval_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> Iterator[str]:
    yield from make_database(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path) -> Iterator[str]:
    yield from make_database("sqlite", tmp_path)


@pytest.fixture
def postgres_url(tmp_path) -> Iterator[str]:
    yield from make_database("postgres", tmp_path)


@pytest.fixture
def adapter() -> WritableMemoryAdapter:
    return WritableMemoryAdapter(RESOURCES, care_teams=CARE_TEAMS)


def approval_settings(url: str, **overrides: Any) -> ApprovalSettings:
    values: dict[str, Any] = dict(
        url=url,
        publish_audit=False,
        sweep_interval_seconds=0.2,
        watch_poll_seconds=0.2,
        retry_seconds=0.1,
        execution_lease_seconds=30,
        expiry=datetime.timedelta(hours=1),
    )
    values.update(overrides)
    return ApprovalSettings(**values)


@pytest.fixture
def approvals_overrides() -> dict[str, Any]:
    """Override in a test module to change the queue's settings."""
    return {}


@pytest.fixture
def queue_url(sqlite_url) -> str:
    """The queue database of the ``gateway`` fixture (SQLite unless a test asks otherwise)."""
    return sqlite_url


@pytest.fixture
def gateway_audit():
    """The gateway's audit settings; None keeps the test default (audit off)."""
    return None


@pytest.fixture
def gateway(settings, adapter, queue_url, approvals_overrides, gateway_audit):
    update: dict[str, Any] = {"approvals": approval_settings(queue_url, **approvals_overrides)}
    if gateway_audit is not None:
        update["audit"] = gateway_audit
    configured = settings.model_copy(update=update)
    with GatewayThread(Gateway(configured, adapters=[("memory", adapter)])) as gw:
        yield gw


@pytest.fixture
def target(gateway) -> str:
    return f"127.0.0.1:{gateway.port}"


@pytest.fixture
def agent_token(mint) -> str:
    return mint(AGENT_SCOPES, **AGENT)


@pytest.fixture
def agent(target, agent_token):
    with his_sdk.HisClient.connect(target, token=agent_token, timeout=20) as client:
        yield client


@pytest.fixture
def reviewer_token(mint):
    """A reviewer's own token: ``reviewer_token("dr.two", "clinician")``."""

    def _token(person: str, *roles: str, fhir_user: str | None = None, client: str = "console"):
        return mint(
            "openid",
            client_id=client,
            roles=roles or ("clinician",),
            fhir_user=fhir_user or f"Practitioner/{person}",
            extra_claims={"sub": person},
        )

    return _token


@pytest.fixture
def reviewer(target, reviewer_token):
    """``reviewer("dr.two", "clinician")`` is an ApprovalClient for that person."""
    clients: list[ApprovalClient] = []

    def _client(person: str, *roles: str, **kwargs: Any) -> ApprovalClient:
        client = ApprovalClient.connect(
            target, token=reviewer_token(person, *roles, **kwargs), timeout=20
        )
        clients.append(client)
        return client

    yield _client
    for client in clients:
        client.close()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll until ``predicate()`` is truthy; return its value."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


__all__ = [
    "AGENT",
    "AGENT_SCOPES",
    "WritableMemoryAdapter",
    "his_sdk",
    "medication_request",
    "observation",
    "wait_for",
]
