"""Helpers for the SQL adapter tests: databases, seed data and ground truth from the bundles.

Expected results are computed from the bundles themselves (``Truth``), never from the database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import adapters.sql
import his_sdk.search

REPO = Path(__file__).resolve().parents[3]
SMALL_BUNDLE = (
    REPO
    / "tests"
    / "data"
    / "synthea"
    / "Aaron697_Abernathy524_55eca691-c7bf-6db3-4608-d7830237ecbb.json"
)


def _corpus() -> Path | None:
    for base in (REPO / "shared" / "corpora", REPO.parent / "shared" / "corpora"):
        if (base / "synthea" / "small").is_dir():
            return base / "synthea"
    return None


CORPUS = _corpus()
CORPUS_BUNDLES = (
    [
        CORPUS / "small" / "Dino214_Parisian75_40d82b80-b682-cd8b-da6d-396809878641.json",
        CORPUS / "small" / "Carolee951_Sanford861_d88f994a-5efa-421d-9c40-5f116d2114a6.json",
        CORPUS / "small" / "Alfonzo975_Hickle134_cd3d3588-94fc-b980-9e94-0390d989d921.json",
    ]
    if CORPUS is not None
    else []
)
SEED_BUNDLES = [SMALL_BUNDLE, *CORPUS_BUNDLES]
needs_corpus = pytest.mark.skipif(
    CORPUS is None, reason="shared Synthea corpus (../shared/corpora/synthea) is not present"
)

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"
BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]

_reachable: dict[str, str | None] = {}


def _unreachable_reason(kind: str) -> str | None:
    """None when the server answers, else why not (cached per session)."""
    if kind not in _reachable:
        url = PG_ADMIN if kind == "postgres" else MARIADB_ADMIN
        args = {"connect_timeout": 3}
        engine = sa.create_engine(url, connect_args=args)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            _reachable[kind] = None
        except sa.exc.OperationalError as exc:
            _reachable[kind] = (
                f"{kind} server on 127.0.0.1 is unreachable: {type(exc.orig).__name__}"
            )
        finally:
            engine.dispose()
    return _reachable[kind]


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    """A new, empty, uniquely named database of ``kind``; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / f'legacy-{uuid.uuid4().hex[:8]}.db'}"
        return
    reason = _unreachable_reason(kind)
    if reason is not None:
        pytest.skip(reason)
    name = f"his_sql_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        PG_ADMIN if kind == "postgres" else MARIADB_ADMIN, isolation_level="AUTOCOMMIT"
    )
    create = f"CREATE DATABASE {name}"
    if kind == "mariadb":
        create += " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    with admin.connect() as conn:
        conn.execute(sa.text(create))
    try:
        if kind == "postgres":
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        else:
            yield f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    finally:
        drop = f"DROP DATABASE IF EXISTS {name}"
        if kind == "postgres":
            drop += " WITH (FORCE)"
        with admin.connect() as conn:
            conn.execute(sa.text(drop))
        admin.dispose()


def execute_sql(url: str, statement: str, **params: Any) -> None:
    """Run one statement against a legacy database (tests change rows behind the adapter)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def _table(engine: sa.Engine, name: str) -> sa.Table:
    return sa.Table(name, sa.MetaData(), autoload_with=engine)


def insert_row(url: str, table: str, **values: Any) -> None:
    """Insert one row (reflected table, so quoting works on every backend)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(_table(engine, table).insert().values(**values))
    finally:
        engine.dispose()


def update_rows(url: str, table: str, values: dict[str, Any], **where: Any) -> None:
    """``UPDATE table SET values WHERE column = value AND ...``."""
    engine = sa.create_engine(url)
    try:
        t = _table(engine, table)
        with engine.begin() as conn:
            conn.execute(
                t.update().where(*(t.c[k] == v for k, v in where.items())).values(**values)
            )
    finally:
        engine.dispose()


# Ground truth from the bundles ---------------------------------------------------------------

LOINC = "http://loinc.org"
VITAL_UNITS = {
    "8302-2": "cm",
    "29463-7": "kg",
    "8310-5": "Cel",
    "8867-4": "/min",
    "9279-1": "/min",
    "2708-6": "%",
    "39156-5": "kg/m2",
}
KNOWN_SYSTEMS = {
    "http://snomed.info/sct",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://loinc.org",
}


def utc(text: str | None) -> datetime | None:
    """A bundle dateTime as naive UTC."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def model_utc(value: Any) -> datetime | None:
    """A datetime from a returned model as naive UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    return datetime(value.year, value.month, value.day)


def num(value: Any) -> float:
    return round(float(value), 6)


def codes_of(concept: dict[str, Any] | None) -> frozenset[str]:
    return frozenset(
        f"{c['system']}|{c['code']}"
        for c in (concept or {}).get("coding", [])
        if c.get("system") in KNOWN_SYSTEMS
    )


def matches_date(a: datetime, b: datetime, value: his_sdk.search.DateValue) -> bool:
    """FHIR's prefix rules for a stored range [a, b) against the search interval."""
    low, high = value.lower, value.upper
    inside = a >= low and b <= high
    return {
        "eq": inside,
        "ne": not inside,
        "gt": b > high,
        "lt": a < low,
        "ge": b > high or inside,
        "le": a < low or inside,
        "sa": a >= high,
        "eb": b <= low,
        "ap": a < high and b > low,
    }[value.prefix]


def point(moment: datetime) -> tuple[datetime, datetime]:
    return moment, moment + timedelta(microseconds=1)


def day(value: date) -> tuple[datetime, datetime]:
    start = datetime(value.year, value.month, value.day)
    return start, start + timedelta(days=1)


@dataclass
class Truth:
    """What the seeded bundles say, per resource type (records are plain dicts)."""

    patients: list[dict[str, Any]] = field(default_factory=list)
    encounters: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    allergies: list[dict[str, Any]] = field(default_factory=list)
    medications: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    npis_by_mrn: dict[str, set[str]] = field(default_factory=dict)
    resource_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, paths: list[Path]) -> Truth:
        truth = cls()
        for path in paths:
            truth._add(json.loads(path.read_text(encoding="utf-8")))
        return truth

    def _add(self, bundle: dict[str, Any]) -> None:
        resources = [e["resource"] for e in bundle["entry"]]
        by_ref = {}
        for entry in bundle["entry"]:
            r = entry["resource"]
            by_ref[entry.get("fullUrl")] = r
            by_ref[f"{r['resourceType']}/{r['id']}"] = r
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        mrn = next(
            i["value"]
            for i in patient["identifier"]
            if any(c.get("code") == "MR" for c in i.get("type", {}).get("coding", []))
        )
        for r in resources:
            self.resource_counts[r["resourceType"]] = (
                self.resource_counts.get(r["resourceType"], 0) + 1
            )
        name = next(n for n in patient["name"] if n.get("use") == "official")
        self.patients.append(
            {
                "mrn": mrn,
                "family": name["family"],
                "given": name["given"],
                "birth": date.fromisoformat(patient["birthDate"]),
                "gender": patient["gender"],
            }
        )
        encounter_start: dict[int, datetime | None] = {}
        npis: set[str] = set()
        for r in resources:
            if r["resourceType"] != "Encounter":
                continue
            start, end = utc(r["period"]["start"]), utc(r["period"].get("end"))
            encounter_start[id(r)] = start
            for p in r.get("participant", []):
                ref = p["individual"]["reference"]
                if "us-npi|" in ref:
                    npis.add(ref.rsplit("|", 1)[1])
                elif ref in by_ref:
                    for ident in by_ref[ref].get("identifier", []):
                        if ident["system"].endswith("us-npi"):
                            npis.add(ident["value"])
            self.encounters.append(
                {
                    "mrn": mrn,
                    "start": start,
                    "end": end,
                    "class": r["class"]["code"],
                    "types": codes_of(r["type"][0]),
                }
            )
        self.npis_by_mrn[mrn] = npis

        def enc_start(res: dict[str, Any]) -> datetime | None:
            ref = res.get("encounter", {}).get("reference")
            target = by_ref.get(ref)
            return encounter_start.get(id(target)) if target is not None else None

        for r in resources:
            kind = r["resourceType"]
            if kind == "Condition":
                self.conditions.append(
                    {
                        "mrn": mrn,
                        "codes": codes_of(r["code"]),
                        "onset": utc(r.get("onsetDateTime")),
                        "abatement": utc(r.get("abatementDateTime")),
                        "enc_start": enc_start(r),
                    }
                )
            elif kind == "AllergyIntolerance":
                self.allergies.append(
                    {
                        "mrn": mrn,
                        "codes": codes_of(r["code"]),
                        "category": r["category"][0],
                        "recorded": utc(r.get("recordedDate")),
                        "active": r["clinicalStatus"]["coding"][0]["code"] == "active",
                    }
                )
            elif kind == "MedicationRequest":
                concept = r["medicationCodeableConcept"]
                self.medications.append(
                    {
                        "mrn": mrn,
                        "code": next(
                            c["code"] for c in concept["coding"] if c["system"].endswith("rxnorm")
                        ),
                        "status": "active" if r["status"] == "active" else "stopped",
                        "intent": r["intent"],
                        "authored": utc(r["authoredOn"]),
                        "enc_start": enc_start(r),
                    }
                )
            elif kind == "Observation":
                self._observation(r, mrn, enc_start(r))

    def _observation(self, r: dict[str, Any], mrn: str, enc: datetime | None) -> None:
        category = r["category"][0]["coding"][0]["code"]
        loinc = next(c["code"] for c in r["code"]["coding"] if c["system"] == LOINC)
        base = {
            "mrn": mrn,
            "code": loinc,
            "effective": utc(r["effectiveDateTime"]),
            "enc_start": enc,
        }
        if category == "laboratory":
            if "valueQuantity" in r:
                value: Any = num(r["valueQuantity"]["value"])
            else:
                concept = r["valueCodeableConcept"]
                value = concept.get("text") or concept["coding"][0]["display"]
            self.observations.append({**base, "category": "laboratory", "value": value})
        elif category == "vital-signs":
            if loinc == "85354-9":
                parts = {
                    c["code"]["coding"][0]["code"]: num(c["valueQuantity"]["value"])
                    for c in r["component"]
                }
                value = (parts["8480-6"], parts["8462-4"])
            elif VITAL_UNITS.get(loinc) == r.get("valueQuantity", {}).get("code"):
                value = num(r["valueQuantity"]["value"])
            else:
                return
            self.observations.append({**base, "category": "vital-signs", "value": value})


def observation_signature(resource: Any, mrn_of: dict[str, str]) -> tuple[Any, ...]:
    if resource.component:
        parts = {c.code.coding[0].code: num(c.valueQuantity.value) for c in resource.component}
        value: Any = (parts["8480-6"], parts["8462-4"])
    elif resource.valueQuantity is not None:
        value = num(resource.valueQuantity.value)
    else:
        value = resource.valueString
    return (
        mrn_of[resource.subject.reference],
        resource.code.coding[0].code,
        model_utc(resource.effectiveDateTime),
        value,
    )


def truth_observation_signature(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["mrn"], record["code"], record["effective"], record["value"])


@dataclass
class Seeded:
    """A seeded database and an adapter started on it."""

    backend: str
    url: str
    adapter: adapters.sql.SqlAdapter
    report: adapters.sql.SeedReport
    truth: Truth
    pid_by_mrn: dict[str, str]

    @property
    def mrn_of(self) -> dict[str, str]:
        """``Patient/<id>`` -> MRN."""
        return {f"Patient/{pid}": mrn for mrn, pid in self.pid_by_mrn.items()}

    async def search(
        self, resource_type: str, params: list[tuple[str, str]], *, count: int = 500
    ) -> list[Any]:
        """Every match of a raw-parameter search (asserting a single page)."""
        definitions = self.adapter.capabilities().types[resource_type].search_params
        criteria = his_sdk.search.parse_criteria(resource_type, params, definitions)
        page = await self.adapter.search(
            his_sdk.search.SearchQuery(resource_type, criteria, count=count, include_total=True)
        )
        assert page.next_position is None
        assert page.total == len(page.resources)
        return page.resources
