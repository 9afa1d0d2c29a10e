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
from tests.his_sdk.rest.rest_helpers import (
    AUDIENCE,
    CARE_TEAMS,
    CLINICIAN,
    ISSUER,
    RESOURCES,
    TOKEN_ENDPOINT,
    USER_SCOPES,
    FaultyMemoryAdapter,
    LoopThread,
    running_gateway,
)


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
