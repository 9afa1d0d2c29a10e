"""A gateway on 127.0.0.1:0 over the in-memory adapter, with the dev issuer's tokens."""

from __future__ import annotations

import asyncio
import threading

import pytest

from his_sdk.auth import DevIssuer
from his_sdk.config import AuthSettings, GatewaySettings, ServerSettings, StateSettings
from his_sdk.server import Gateway
from tests.fixtures import MemoryAdapter

ISSUER = "http://127.0.0.1/test-issuer"
AUDIENCE = "his-gateway-test"


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


@pytest.fixture(scope="session")
def issuer_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("issuer")


@pytest.fixture(scope="session")
def issuer(issuer_dir) -> DevIssuer:
    return DevIssuer.init(issuer_dir, issuer=ISSUER)


@pytest.fixture
def mint(issuer):
    def _mint(scopes: str, **kwargs) -> str:
        kwargs.setdefault("client_id", "test-agent")
        return issuer.mint(audience=AUDIENCE, scopes=scopes, **kwargs)

    return _mint


@pytest.fixture
def settings(issuer, issuer_dir, tmp_path) -> GatewaySettings:
    return GatewaySettings(
        server=ServerSettings(port=0, grace_seconds=0),
        auth=AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=issuer_dir / "jwks.json"),
        state=StateSettings(url=f"sqlite:///{tmp_path}/state.db"),
    )


@pytest.fixture
def adapter() -> MemoryAdapter:
    return MemoryAdapter(RESOURCES, care_teams=CARE_TEAMS, opted_out={"p3"})


class GatewayThread:
    """A gateway on its own event loop in a thread, so blocking clients can call it."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Gateway:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.gateway.start(), self.loop).result(30)
        return self.gateway

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.stop(grace=0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def gateway(settings, adapter):
    with GatewayThread(Gateway(settings, adapters=[("memory", adapter)])) as gw:
        yield gw


@pytest.fixture
def target(gateway) -> str:
    return f"127.0.0.1:{gateway.port}"
