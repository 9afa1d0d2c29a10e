"""The validated-resource cache is exact: unchanged rows reuse, changed rows re-render."""

from __future__ import annotations

import sqlalchemy as sa

import adapters.sql
from tests.adapters.sql.sql_helpers import SMALL_BUNDLE


async def test_cache_reuses_unchanged_rows_and_never_serves_stale_data(sqlite_url):
    adapters.sql.seed_synthea(sqlite_url, [SMALL_BUNDLE])
    adapter = adapters.sql.SqlAdapter(sqlite_url)
    await adapter.start()
    try:
        first = await adapter.read("Patient", "1")
        second = await adapter.read("Patient", "1")
        assert second is first and adapter.cache.hits == 1
        engine = sa.create_engine(sqlite_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE patient_data SET lname = 'Renamed' WHERE pid = 1"))
        engine.dispose()
        changed = await adapter.read("Patient", "1")
        assert changed is not first and changed.name[0].family == "Renamed"
    finally:
        await adapter.close()


async def test_cache_can_be_disabled(sqlite_url):
    adapters.sql.seed_synthea(sqlite_url, [SMALL_BUNDLE])
    adapter = adapters.sql.SqlAdapter.from_settings({"url": sqlite_url, "resource_cache_size": 0})
    await adapter.start()
    try:
        first = await adapter.read("Patient", "1")
        assert await adapter.read("Patient", "1") is not first
        assert adapter.cache.hits == 0
    finally:
        await adapter.close()
