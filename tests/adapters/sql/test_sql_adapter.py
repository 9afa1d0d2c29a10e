"""The adapter's contract: capabilities, exports, writes refused, health, driver errors."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

import adapters.sql
import his_sdk.adapter
import his_sdk.errors
import his_sdk.search
from tests.adapters.sql.sql_helpers import SMALL_BUNDLE, Seeded


def test_exports() -> None:
    assert adapters.sql.__all__ == [
        "MappingError",
        "SeedReport",
        "SqlAdapter",
        "create_schema",
        "drop_schema",
        "seed_synthea",
    ]


def test_capabilities_are_reads_searches_and_mapped_creates() -> None:
    adapter = adapters.sql.SqlAdapter("sqlite://")
    assert isinstance(adapter, his_sdk.adapter.Adapter)
    assert isinstance(adapter, his_sdk.adapter.PatientFactsProvider)
    caps = adapter.capabilities()
    expected_params = {
        "Patient": {"_id", "identifier", "name", "family", "given", "birthdate", "gender"},
        "Encounter": {"_id", "patient", "date", "status", "class", "type"},
        "Condition": {
            "_id",
            "patient",
            "code",
            "category",
            "clinical-status",
            "onset-date",
            "encounter",
        },
        "AllergyIntolerance": {"_id", "patient", "code", "clinical-status", "category"},
        "MedicationRequest": {
            "_id",
            "patient",
            "code",
            "status",
            "intent",
            "authoredon",
            "encounter",
        },
        "Observation": {"_id", "patient", "code", "category", "date", "status", "encounter"},
        "Practitioner": {"_id", "identifier", "name", "family", "given"},
    }
    assert {t: set(c.search_params) for t, c in caps.types.items()} == expected_params
    read_search = {his_sdk.adapter.Interaction.READ, his_sdk.adapter.Interaction.SEARCH}
    writable = {"MedicationRequest", "Condition"}
    for name, capability in caps.types.items():
        create = {his_sdk.adapter.Interaction.CREATE} if name in writable else set()
        assert capability.interactions == read_search | create
        assert capability.documentation
        for definition in capability.search_params.values():
            assert definition.description
            if definition.type is his_sdk.search.ParamType.REFERENCE:
                assert definition.target in ("Patient", "Encounter")
    fragment = caps.statement_fragment()
    assert {entry["type"] for entry in fragment} == set(expected_params)
    codes = {i["code"] for entry in fragment for i in entry["interaction"]}
    assert codes == {"read", "search-type", "create"}


async def test_writes_of_unmapped_types_are_unsupported(sqlite_url: str) -> None:
    adapters.sql.create_schema(sqlite_url)
    adapter = adapters.sql.SqlAdapter(sqlite_url)
    write = his_sdk.adapter.ApprovedWrite(
        key="k1", interaction=his_sdk.adapter.Interaction.CREATE, resource_type="Encounter"
    )
    with pytest.raises(his_sdk.errors.UnsupportedError):
        await adapter.execute(write)
    await adapter.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://postgres:pw-secret@127.0.0.1:{closed_port()}/secretdb",
        f"mysql+pymysql://root:pw-secret@127.0.0.1:{closed_port()}/secretdb",
        "sqlite:////nonexistent-folder/for/sure/secretdb.db",
    ],
    ids=["postgres", "mariadb", "sqlite"],
)
async def test_unreachable_database_is_upstream_unavailable(url: str) -> None:
    adapter = adapters.sql.SqlAdapter(url)
    health = await adapter.health()
    assert health.state is his_sdk.adapter.HealthState.NOT_SERVING
    assert "unavailable" in health.detail and "secret" not in health.detail
    calls = [
        adapter.start(),
        adapter.read("Patient", "1"),
        adapter.search(his_sdk.search.SearchQuery("Patient")),
        adapter.patient_facts("1"),
    ]
    for call in calls:
        with pytest.raises(his_sdk.errors.UpstreamUnavailableError) as caught:
            await call
        assert caught.value.grpc_status_code.name == "UNAVAILABLE"
        text = f"{caught.value.message} {caught.value.diagnostics}"
        assert "secret" not in text
    await adapter.close()


async def test_database_without_the_mapped_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    adapter = adapters.sql.SqlAdapter(url)
    with pytest.raises(his_sdk.errors.UpstreamDataError) as caught:
        await adapter.start()
    assert "patient_data" in (caught.value.diagnostics or "")
    assert (await adapter.health()).state is his_sdk.adapter.HealthState.SERVING
    adapters.sql.create_schema(url)
    await adapter.start()  # a later start succeeds once the schema exists
    await adapter.close()


async def test_database_missing_a_mapped_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'thin.db'}"
    adapters.sql.create_schema(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE patient_data DROP COLUMN email"))
    engine.dispose()
    adapter = adapters.sql.SqlAdapter(url)
    with pytest.raises(his_sdk.errors.UpstreamDataError) as caught:
        await adapter.read("Patient", "1")
    assert "table 'patient_data' has no column 'email'" in (caught.value.diagnostics or "")
    await adapter.close()


async def test_health_serving_and_reconnect_after_close(fresh: Seeded) -> None:
    assert (await fresh.adapter.health()).state is his_sdk.adapter.HealthState.SERVING
    await fresh.adapter.close()
    patient = await fresh.adapter.read("Patient", next(iter(fresh.pid_by_mrn.values())))
    assert patient.id


async def test_calls_run_off_the_event_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    adapters.sql.seed_synthea(url, [SMALL_BUNDLE])
    adapter = adapters.sql.SqlAdapter(url)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        results = await asyncio.gather(
            *(
                adapter.search(his_sdk.search.SearchQuery("Observation", count=100))
                for _ in range(8)
            )
        )
    finally:
        task.cancel()
        await adapter.close()
    assert all(len(r.resources) == len(results[0].resources) for r in results)
    assert ticks > 8
