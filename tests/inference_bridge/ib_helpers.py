"""Helpers of the inference bridge tests: principals, samples, and a backend twin."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field

import grpc
import numpy as np

import inference_bridge
from his_sdk.adapter import PatientFacts
from his_sdk.auth import Actor, Principal, parse_scopes
from his_sdk.server import CallContext

WDBC = "https://his-sdk.dev/fhir/CodeSystem/wdbc-fna-feature"
BREAST = "breast-fna-malignancy"
DIABETES = "diabetes-progression"
GENERALIST = "breast-fna-generalist"
SLOW = "breast-fna-slow"
SLOW_SECONDS = 3.0


def make_principal(
    scopes: str,
    *,
    roles=("clinician",),
    patient: str | None = None,
    acting: str | None = "Practitioner/dr-1",
    client_id: str = "test-agent",
) -> Principal:
    resource_scopes, other = parse_scopes(scopes)
    return Principal(
        client_id=client_id,
        subject=client_id,
        on_behalf_of=Actor("dr-1", acting) if acting else None,
        fhir_user=None,
        scopes=resource_scopes,
        other_scopes=other,
        roles=frozenset(roles),
        patient=patient,
        token_id="jti-1",
        issuer="http://127.0.0.1/test-issuer",
        expires_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
    )


def make_call(principal: Principal | None, request_id: str = "req-1") -> CallContext:
    return CallContext(principal=principal, request_id=request_id)


CLINICIAN_SCOPES = "user/RiskAssessment.c user/Observation.c user/DiagnosticReport.c"


class Facts:
    """In-memory care teams and consent."""

    def __init__(self) -> None:
        self.patients: dict[str, PatientFacts] = {
            "p1": PatientFacts("p1", care_team=frozenset({"Practitioner/dr-1"})),
            "p2": PatientFacts("p2", care_team=frozenset({"Practitioner/dr-2"})),
            "p3": PatientFacts(
                "p3", care_team=frozenset({"Practitioner/dr-1"}), consent_opt_out=True
            ),
        }

    async def patient_facts(self, patient_id: str) -> PatientFacts:
        return self.patients.get(patient_id, PatientFacts(patient_id, exists=False))


class AuditLog:
    """Collects audit records."""

    def __init__(self) -> None:
        self.records: list[inference_bridge.InferenceAuditRecord] = []

    async def __call__(self, record: inference_bridge.InferenceAuditRecord) -> None:
        self.records.append(record)


@dataclass(frozen=True)
class Samples:
    breast_x: np.ndarray
    breast_y: np.ndarray
    diabetes_x: np.ndarray


def breast_features(row: np.ndarray) -> dict[str, float]:
    catalog = inference_bridge.Catalog.load()
    specs = catalog.get(BREAST).fhir.features
    return {spec.key: float(v) for spec, v in zip(specs, row, strict=True)}


def breast_observations(row: np.ndarray, patient: str | None = "p1") -> list[dict]:
    catalog = inference_bridge.Catalog.load()
    observations = []
    for i, (spec, value) in enumerate(zip(catalog.get(BREAST).fhir.features, row, strict=True)):
        observation = {
            "resourceType": "Observation",
            "id": f"fna-{i}",
            "status": "final",
            "code": {"coding": [{"system": spec.system, "code": spec.code}]},
            "valueQuantity": {"value": float(value)},
        }
        if patient:
            observation["subject"] = {"reference": f"Patient/{patient}"}
        observations.append(observation)
    return observations


def diabetes_features(row: np.ndarray) -> dict[str, float]:
    catalog = inference_bridge.Catalog.load()
    specs = catalog.get(DIABETES).fhir.features
    return {spec.key: float(v) for spec, v in zip(specs, row, strict=True)}


@dataclass
class TwinBehaviour:
    """What the twin does at one placement."""

    fail: grpc.StatusCode | None = None
    delay: float = 0.0
    ready: bool = True


@dataclass
class BackendTwin:
    """An in-memory KServe v2 stand-in: answers a fixed prediction, records every call."""

    behaviours: dict[str, TwinBehaviour] = field(default_factory=dict)
    calls: list[inference_bridge.BackendCall] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)

    def at(self, endpoint: str) -> TwinBehaviour:
        return self.behaviours.setdefault(endpoint, TwinBehaviour())

    async def infer(self, call: inference_bridge.BackendCall) -> dict[str, np.ndarray]:
        self.calls.append(call)
        behaviour = self.at(call.placement.endpoint or "torch")
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.fail is not None:
            raise inference_bridge.BackendCallError(behaviour.fail, "twin says no")
        batch = call.inputs.tensors[0].shape[0]
        return {
            o.name: np.full([batch if d == -1 else d for d in o.shape], 0.75, dtype=np.float32)
            for o in call.entry.outputs
        }

    async def probe(self, entry, placement, limit):
        self.probes.append(placement.endpoint)
        return inference_bridge.PlacementHealth(self.at(placement.endpoint or "torch").ready)

    async def close(self) -> None:
        return None
