"""A gateway on 127.0.0.1:0 over the in-memory adapter, with the dev issuer's tokens."""

from __future__ import annotations

import pytest

from his_sdk.server import Gateway
from tests.conftest import GatewayThread
from tests.fixtures import MemoryAdapter


def _obs(oid: str, patient: str, category: str, code: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
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
        "gender": "female",
        "birthDate": "1970-01-01",
        "name": [{"family": "One", "given": ["Pat"]}],
    },
    {
        "resourceType": "Patient",
        "id": "p2",
        "gender": "male",
        "name": [{"family": "Two", "given": ["Pat"]}],
    },
    {"resourceType": "Patient", "id": "p3", "gender": "other"},
    *[_obs(f"lab{i}", "p1", "laboratory", "2345-7") for i in range(5)],
    *[_obs(f"vs{i}", "p1", "vital-signs", "8867-4") for i in range(3)],
    _obs("lab-p2", "p2", "laboratory", "2345-7"),
    _obs("lab-p3", "p3", "laboratory", "2345-7"),
]
CARE_TEAMS = {
    "p1": frozenset({"Practitioner/dr1"}),
    "p2": frozenset({"Practitioner/dr2"}),
    "p3": frozenset({"Practitioner/dr1"}),
}


@pytest.fixture
def adapter() -> MemoryAdapter:
    return MemoryAdapter(RESOURCES, care_teams=CARE_TEAMS, opted_out={"p3"})


@pytest.fixture
def gateway(settings, adapter):
    with GatewayThread(Gateway(settings, adapters=[("memory", adapter)])) as gw:
        yield gw


@pytest.fixture
def target(gateway) -> str:
    return f"127.0.0.1:{gateway.port}"
