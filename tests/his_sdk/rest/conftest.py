"""A gateway with the REST facade on 127.0.0.1:0 over the in-memory adapter."""

from __future__ import annotations

import httpx
import pytest

from his_sdk.auth import DevIssuer
from his_sdk.config import (
    AuthSettings,
    GatewaySettings,
    RestSettings,
    ServerSettings,
    StateSettings,
)
from tests.his_sdk.rest.rest_helpers import FaultyMemoryAdapter, LoopThread, running_gateway

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


@pytest.fixture(scope="session")
def issuer(tmp_path_factory) -> DevIssuer:
    return DevIssuer.init(tmp_path_factory.mktemp("rest-issuer"), issuer=ISSUER)


@pytest.fixture(scope="session")
def mint(issuer):
    def _mint(scopes: str = USER_SCOPES, **kwargs) -> str:
        kwargs.setdefault("client_id", "rest-agent")
        for name, value in CLINICIAN.items():
            kwargs.setdefault(name, value)
        return issuer.mint(audience=AUDIENCE, scopes=scopes, **kwargs)

    return _mint


@pytest.fixture(scope="module")
def loop():
    with LoopThread() as thread:
        yield thread


@pytest.fixture(scope="module")
def gateway(loop, issuer, tmp_path_factory):
    settings = GatewaySettings(
        server=ServerSettings(port=0, grace_seconds=0),
        rest=RestSettings(enabled=True, port=0, token_endpoint=TOKEN_ENDPOINT),
        auth=AuthSettings(
            issuer=ISSUER, audience=AUDIENCE, jwks_file=issuer.directory / "jwks.json"
        ),
        state=StateSettings(url=f"sqlite:///{tmp_path_factory.mktemp('rest-state')}/state.db"),
    )
    adapter = FaultyMemoryAdapter(RESOURCES, care_teams=CARE_TEAMS)
    with running_gateway(loop, settings, [("memory", adapter)]) as gw:
        yield gw


@pytest.fixture(scope="module")
def base(gateway) -> str:
    return f"http://127.0.0.1:{gateway.rest_port}"


@pytest.fixture
def http(base):
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client


@pytest.fixture
def auth(mint) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint()}"}
