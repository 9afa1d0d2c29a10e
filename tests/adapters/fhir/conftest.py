"""Two gateways on loopback: agent -> gateway A (FhirAdapter) -> fault proxy -> gateway B
facade -> SQL legacy database, with a SMART Backend Services token server for A's client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from joserfc.jwk import ECKey, RSAKey

import adapters.sql
from adapters.fhir import FhirAdapter, FhirSettings
from his_sdk.auth import DevIssuer
from his_sdk.config import (
    AuthSettings,
    GatewaySettings,
    RestSettings,
    ServerSettings,
    StateSettings,
)
from tests.adapters.fhir.fhir_helpers import (
    A_AUDIENCE,
    A_ISSUER,
    AGENT_SCOPES,
    B_AUDIENCE,
    B_ISSUER,
    DOCTOR,
    SERVED,
    SMALL_BUNDLE,
    SYSTEM_SCOPES,
    Client,
    FaultProxy,
    TokenServer,
    public_jwks,
)
from tests.his_sdk.rest.rest_helpers import LoopThread, running_gateway


@pytest.fixture(scope="module")
def loop():
    with LoopThread() as thread:
        yield thread


@pytest.fixture(scope="module")
def issuers(tmp_path_factory) -> dict[str, DevIssuer]:
    return {
        "a": DevIssuer.init(tmp_path_factory.mktemp("issuer-a"), issuer=A_ISSUER),
        "b": DevIssuer.init(tmp_path_factory.mktemp("issuer-b"), issuer=B_ISSUER),
    }


@pytest.fixture(scope="module")
def legacy_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('legacy')}/legacy.db"
    adapters.sql.seed_synthea(url, [SMALL_BUNDLE])
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE patient_data SET providerID = 1 WHERE pid = 1"))
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def token_server(loop, issuers):
    server = TokenServer(issuers["b"], B_AUDIENCE)
    loop.run(server.start())
    yield server
    loop.run(server.stop())


@pytest.fixture(scope="module")
def gateway_b(loop, issuers, token_server, legacy_url, tmp_path_factory):
    settings = GatewaySettings(
        server=ServerSettings(port=0, grace_seconds=0),
        rest=RestSettings(enabled=True, port=0, token_endpoint=token_server.url),
        auth=AuthSettings(issuer=B_ISSUER, audience=B_AUDIENCE, jwks_file=issuers["b"].jwks_path),
        state=StateSettings(url=f"sqlite:///{tmp_path_factory.mktemp('state-b')}/state.db"),
    )
    with running_gateway(loop, settings, [("legacy", adapters.sql.SqlAdapter(legacy_url))]) as gw:
        yield gw


@pytest.fixture(scope="module")
def proxy(loop, gateway_b):
    server = FaultProxy(f"http://127.0.0.1:{gateway_b.rest_port}")
    loop.run(server.start())
    yield server
    loop.run(server.stop())


@pytest.fixture
def clean_proxy(proxy):
    proxy.faults.clear()
    proxy.requests.clear()
    yield proxy
    proxy.faults.clear()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    """Private JWK files of gateway A's client: one RSA (RS384), one EC P-384 (ES384)."""
    folder = tmp_path_factory.mktemp("client-keys")
    generated = {
        "RS384": RSAKey.generate_key(2048, {"alg": "RS384"}, private=True, auto_kid=True),
        "ES384": ECKey.generate_key("P-384", {"alg": "ES384"}, private=True, auto_kid=True),
    }
    paths = {}
    for alg, key in generated.items():
        path = folder / f"{alg}.jwk.json"
        path.write_text(json.dumps(key.as_dict(private=True)))
        paths[alg] = path
    return paths


@pytest.fixture
def gateway_a(loop, issuers, token_server, clean_proxy, keys, tmp_path):
    """Start gateway A over the proxy: ``gateway_a(client_id=..., allowed=..., **fhir)``."""
    started = []

    def start(
        client_id: str = "gateway-a",
        allowed: set[str] = SYSTEM_SCOPES,
        algorithm: str = "RS384",
        auth_overrides: dict[str, Any] | None = None,
        register: bool = True,
        **fhir: Any,
    ):
        if register:
            token_server.clients[client_id] = Client(public_jwks(keys[algorithm]), set(allowed))
        values: dict[str, Any] = {
            "base_url": clean_proxy.url,
            # The proxy forwards with gateway B's own Host, so B's links name B's address.
            "url_aliases": [clean_proxy.upstream],
            "types": SERVED,
            "timeout_seconds": 2,
            "retry": {"attempts": 3, "backoff_seconds": 0.05, "max_retry_after_seconds": 2},
            "breaker": {"failure_threshold": 3, "reset_seconds": 1},
            "auth": {
                "client_id": client_id,
                "private_key_file": str(keys[algorithm]),
                "algorithm": algorithm,
                **(auth_overrides or {}),
            },
        }
        values.update(fhir)
        adapter = FhirAdapter(FhirSettings.model_validate(values))
        settings = GatewaySettings(
            server=ServerSettings(port=0, grace_seconds=0),
            auth=AuthSettings(
                issuer=A_ISSUER, audience=A_AUDIENCE, jwks_file=issuers["a"].jwks_path
            ),
            state=StateSettings(url=f"sqlite:///{tmp_path}/state-a-{len(started)}.db"),
        )
        context = running_gateway(loop, settings, [("upstream", adapter)])
        gateway = context.__enter__()
        started.append(context)
        return gateway

    yield start
    for context in reversed(started):
        context.__exit__(None, None, None)


@pytest.fixture
def agent_token(issuers):
    def mint(scopes: str = AGENT_SCOPES, **claims: Any) -> str:
        for name, value in DOCTOR.items():
            claims.setdefault(name, value)
        return issuers["a"].mint(
            client_id="ward-agent", audience=A_AUDIENCE, scopes=scopes, **claims
        )

    return mint
