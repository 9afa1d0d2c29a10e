"""Fixtures every test area shares: dev issuer, tokens, gateway settings and runner, broker.

Set ``HIS_TEST_KAFKA_BOOTSTRAP=host:port`` to run against an existing Kafka-protocol broker
instead of starting tansu (tests that kill the broker always start their own).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest

from his_sdk.audit import AuditSettings
from his_sdk.auth import DevIssuer
from his_sdk.config import AuthSettings, GatewaySettings, ServerSettings, StateSettings
from his_sdk.server import Gateway
from his_sdk.testing import TansuBroker, TansuUnavailableError

ISSUER = "http://127.0.0.1/test-issuer"
AUDIENCE = "his-gateway-test"


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
        audit=AuditSettings(enabled=False),
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    existing = os.environ.get("HIS_TEST_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    try:
        broker = TansuBroker.start()
    except TansuUnavailableError as exc:
        pytest.skip(f"no Kafka-protocol broker: {exc}")
    with broker:
        yield broker.bootstrap_servers
