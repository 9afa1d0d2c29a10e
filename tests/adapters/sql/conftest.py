"""Fixtures for the SQL adapter: real SQLite/PostgreSQL/MariaDB databases, seeded from Synthea."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import adapters.sql
import his_sdk.search
from tests.adapters.sql.sql_helpers import (
    BACKENDS,
    SEED_BUNDLES,
    SMALL_BUNDLE,
    Seeded,
    Truth,
    database,
)


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database on each backend."""
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    with database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with database("postgres", tmp_path) as url:
        yield url


@pytest.fixture
def mariadb_url(tmp_path: Path) -> Iterator[str]:
    with database("mariadb", tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def truth() -> Truth:
    return Truth.of(SEED_BUNDLES)


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=BACKENDS)
async def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, truth: Truth
) -> Any:
    """A database per backend seeded with SEED_BUNDLES, shared by read-only tests."""
    with database(request.param, tmp_path_factory.mktemp("seeded")) as url:
        report = adapters.sql.seed_synthea(url, SEED_BUNDLES)
        adapter = adapters.sql.SqlAdapter(url)
        await adapter.start()
        page = await adapter.search(his_sdk.search.SearchQuery("Patient", count=100))
        pid_by_mrn = {p.identifier[0].value: p.id for p in page.resources}
        try:
            yield Seeded(request.param, url, adapter, report, truth, pid_by_mrn)
        finally:
            await adapter.close()


@pytest_asyncio.fixture
async def fresh(empty_url: str) -> Any:
    """A database per backend with only the small bundle, for tests that change rows."""
    report = adapters.sql.seed_synthea(empty_url, [SMALL_BUNDLE])
    adapter = adapters.sql.SqlAdapter(empty_url)
    await adapter.start()
    page = await adapter.search(his_sdk.search.SearchQuery("Patient", count=10))
    pid_by_mrn = {p.identifier[0].value: p.id for p in page.resources}
    try:
        yield Seeded("fresh", empty_url, adapter, report, Truth.of([SMALL_BUNDLE]), pid_by_mrn)
    finally:
        await adapter.close()
