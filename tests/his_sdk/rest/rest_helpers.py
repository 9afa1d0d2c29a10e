"""Helpers for the REST facade tests: gateways on their own event loop, toy adapters and an
in-memory approval queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

import his_sdk.errors
from his_sdk.adapter import Adapter, AdapterCapabilities, Interaction, TypeCapability
from his_sdk.config import GatewaySettings
from his_sdk.server import CallContext, Gateway
from his_sdk.server._writes import ProposalResult, ProposedWrite
from tests.fixtures import MemoryAdapter

T = TypeVar("T")

ISSUER = "http://127.0.0.1/rest-test-issuer"
AUDIENCE = "his-gateway-rest-test"
TOKEN_ENDPOINT = "http://127.0.0.1:9/token"
CLINICIAN = dict(roles=("clinician",), act_subject="dr.one", act_fhir_user="Practitioner/dr1")
USER_SCOPES = "user/Patient.rs user/Observation.rs"


def _obs(oid: str, patient: str, category: str, code: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": "3", "lastUpdated": "2024-05-01T10:00:00Z"},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": category,
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": 1.5, "unit": "mg"},
    }


RESOURCES = [
    {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "7", "lastUpdated": "2024-05-01T10:00:00Z"},
        "gender": "female",
        "birthDate": "1970-01-01",
        "name": [{"family": "One", "given": ["Pat"]}],
    },
    {"resourceType": "Patient", "id": "p2", "gender": "male", "name": [{"family": "Two"}]},
    *[_obs(f"lab{i}", "p1", "laboratory", "2345-7") for i in range(5)],
    *[_obs(f"vs{i}", "p1", "vital-signs", "8867-4") for i in range(3)],
    _obs("lab-p2", "p2", "laboratory", "2345-7"),
]
CARE_TEAMS = {"p1": frozenset({"Practitioner/dr1"}), "p2": frozenset({"Practitioner/dr2"})}


class LoopThread:
    """An event loop running in a daemon thread, so blocking clients can call its servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LoopThread:
        self.thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def running_gateway(
    loop: LoopThread, settings: GatewaySettings, adapters: list[tuple[str, Adapter]]
) -> Iterator[Gateway]:
    """A started gateway on ``loop``; stopped on exit."""
    gateway = Gateway(settings, adapters=adapters)
    loop.run(gateway.start())
    try:
        yield gateway
    finally:
        loop.run(gateway.stop(grace=0))


FAULTS: dict[str, type[Exception]] = {
    "gone": his_sdk.errors.GoneError,
    "busy": his_sdk.errors.ResourceExhaustedError,
    "down": his_sdk.errors.UpstreamUnavailableError,
    "bad-rule": his_sdk.errors.PreconditionFailedError,
    "boom": RuntimeError,
}


class FaultyMemoryAdapter(MemoryAdapter):
    """The in-memory adapter, failing reads of ``Observation/<fault>`` with that fault."""

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        fault = FAULTS.get(resource_id)
        if fault is not None:
            raise fault(f"injected {resource_id} fault")
        return await super().read(resource_type, resource_id)


class WritableMemoryAdapter(MemoryAdapter):
    """The in-memory adapter declaring create, update and delete on Observation."""

    def capabilities(self) -> AdapterCapabilities:
        types = dict(super().capabilities().types)
        observation = types["Observation"]
        writes = {Interaction.CREATE, Interaction.UPDATE, Interaction.DELETE}
        types["Observation"] = TypeCapability(
            "Observation", observation.interactions | writes, observation.search_params
        )
        return AdapterCapabilities(types)


class MemoryWriteQueue:
    """An in-memory approval queue: records proposals and answers with requested Tasks."""

    instances: ClassVar[list[MemoryWriteQueue]] = []

    def __init__(self) -> None:
        self.proposals: list[ProposedWrite] = []
        self.tasks: dict[str, Task] = {}
        self.by_key: dict[str, str] = {}
        MemoryWriteQueue.instances.append(self)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> MemoryWriteQueue:
        return cls()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def add_to_server(self, server: Any) -> Sequence[str]:
        return ()

    async def propose(self, write: ProposedWrite) -> ProposalResult:
        key = write.idempotency_key
        if key and key in self.by_key:
            return ProposalResult(self.tasks[self.by_key[key]], True)
        task_id = f"t{len(self.tasks) + 1}"
        target = f"{write.resource_type}/{write.resource_id}" if write.resource_id else None
        data: dict[str, Any] = {
            "resourceType": "Task",
            "id": task_id,
            "meta": {"versionId": "1"},
            "status": "requested",
            "intent": "proposal",
            "description": write.justification,
            "code": {"text": write.interaction.value},
        }
        if target:
            data["focus"] = {"reference": target}
        self.tasks[task_id] = Task.model_validate(data)
        self.proposals.append(write)
        if key:
            self.by_key[key] = task_id
        return ProposalResult(self.tasks[task_id], False)

    async def get_task(self, call: CallContext, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise his_sdk.errors.NotFoundError(f"Task/{task_id} not found")
        return task

    async def watch_task(self, call: CallContext, task_id: str) -> AsyncIterator[Task]:
        yield await self.get_task(call, task_id)
