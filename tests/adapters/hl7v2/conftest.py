"""Fixtures for the HL7 v2 adapter: adapters on loopback, MLLP clients, PostgreSQL databases."""

from __future__ import annotations

import contextlib
import pathlib
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from hl7v2_helpers import Client

from adapters.hl7v2 import Hl7v2Adapter


@pytest.fixture
async def make_adapter(tmp_path: pathlib.Path) -> AsyncIterator[Callable[..., object]]:
    created: list[Hl7v2Adapter] = []

    async def factory(**settings: object) -> Hl7v2Adapter:
        base: dict[str, object] = {
            "database_url": f"sqlite:///{tmp_path / uuid.uuid4().hex}.db",
            "listen": {"host": "127.0.0.1", "port": 0},
            "sqlite_synchronous": "NORMAL",
        }
        base.update(settings)
        adapter = Hl7v2Adapter.from_settings(base)
        await adapter.start()
        created.append(adapter)
        return adapter

    yield factory
    for adapter in created:
        await adapter.close()


@pytest.fixture
async def adapter(make_adapter: Callable[..., object]) -> AsyncIterator[Hl7v2Adapter]:
    yield await make_adapter()  # type: ignore[misc]


@pytest.fixture
async def client(adapter: Hl7v2Adapter) -> AsyncIterator[Client]:
    assert adapter.listener_port is not None
    c = Client(adapter.listener_port)
    yield c
    await c.close()


@pytest.fixture
def pg_url() -> object:
    psycopg = pytest.importorskip("psycopg")
    name = f"hl7v2_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
            autocommit=True,
            connect_timeout=3,
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with contextlib.closing(
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True)
    ) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
