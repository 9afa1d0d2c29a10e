"""Loading Synthea FHIR R4 bundles into the OpenEMR-like legacy schema (demo and test data).

Each bundle becomes rows of ``patient_data``, ``form_encounter``, ``lists``, ``prescriptions``,
``procedure_order``/``procedure_result`` (laboratory observations, one order per visit) and
``form_vitals`` (one row per visit and measurement time); ``_loader`` does the mapping. What the
schema cannot hold is counted in the :class:`SeedReport` by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ._bundle import BundleIndex, bundle_files, read_bundle
from ._loader import ID_COLUMNS, BundleLoader, Registry
from ._schema import METADATA, TABLE_ORDER

__all__ = ["SeedReport", "create_schema", "drop_schema", "seed_synthea"]

_BUNDLE_TYPES = frozenset({"transaction", "batch", "collection", "searchset"})


@dataclass
class SeedReport:
    """What a seed run loaded and what it left out.

    Attributes:
        files: Bundle files read.
        inserted: Rows inserted per table.
        skipped: Resources not loaded, per reason.
        partial: Resources loaded with something left out, per reason.
    """

    files: int = 0
    inserted: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    partial: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        lines = [f"seeded {self.files} file(s)", "rows inserted:"]
        lines += [f"  {t:<20} {self.inserted[t]:>7}" for t in TABLE_ORDER if self.inserted[t]]
        for title, counts in (("skipped resources:", self.skipped), ("partial:", self.partial)):
            if counts:
                lines.append(title)
                width = max(len(reason) for reason in counts)
                lines += [f"  {r:<{width}} {n:>7}" for r, n in sorted(counts.items())]
        return "\n".join(lines)


def create_schema(url: str) -> None:
    """Create the legacy tables that do not exist yet at ``url``."""
    engine = sa.create_engine(url)
    try:
        METADATA.create_all(engine)
    finally:
        engine.dispose()


def drop_schema(url: str) -> None:
    """Drop the legacy tables at ``url``."""
    engine = sa.create_engine(url)
    try:
        METADATA.drop_all(engine)
    finally:
        engine.dispose()


def seed_synthea(url: str, paths: Sequence[Path], *, create_schema: bool = True) -> SeedReport:
    """Load Synthea FHIR R4 bundles into the legacy schema at ``url``.

    Bundles of type transaction, batch, collection (and searchset) are read from the named
    files and from every ``*.json`` file in named folders. Patients already present (same MRN)
    are skipped with everything that belongs to them, so a re-run does not duplicate data.
    Each file is inserted in one transaction with bulk inserts.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///legacy.db``,
            ``mysql+pymysql://root@127.0.0.1:3306/db`` or
            ``postgresql+psycopg://postgres@127.0.0.1:5432/db``.
        paths: Bundle files and/or folders of them.
        create_schema: Create missing tables first.

    Returns:
        Rows inserted per table and the resources skipped or partly loaded, by reason.

    Raises:
        FileNotFoundError: A path does not exist.
        ValueError: A file is not valid JSON.
        sqlalchemy.exc.SQLAlchemyError: The database refused the data or cannot be reached.
    """
    files = bundle_files(paths)
    report = SeedReport()
    engine = sa.create_engine(url)
    try:
        if create_schema:
            METADATA.create_all(engine)
        with engine.connect() as conn:
            registry = Registry(conn)
        for path in files:
            bundle = read_bundle(path)
            report.files += 1
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                report.skipped["file: not a FHIR Bundle"] += 1
                continue
            if bundle.get("type") not in _BUNDLE_TYPES:
                report.skipped[f"file: Bundle type {bundle.get('type')} not loaded"] += 1
                continue
            loader = BundleLoader(BundleIndex.of(bundle), registry, report)
            loader.load()
            with engine.begin() as conn:
                for table in TABLE_ORDER:
                    rows = loader.rows[table]
                    if rows:
                        conn.execute(METADATA.tables[table].insert(), _uniform(rows))
                        report.inserted[table] += len(rows)
        if engine.dialect.name == "postgresql":
            _advance_sequences(engine)
    finally:
        engine.dispose()
    return report


def _uniform(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # One executemany needs the same keys in every row.
    keys = {key for row in rows for key in row}
    return [{key: row.get(key) for key in keys} for row in rows]


def _advance_sequences(engine: sa.Engine) -> None:
    # Explicit ids do not move PostgreSQL's serial sequences; later plain inserts would collide.
    with engine.begin() as conn:
        for table, column in ID_COLUMNS.items():
            if table == "patient_data":
                continue
            conn.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                    f"(SELECT MAX({column}) FROM {table}))"
                )
            )
