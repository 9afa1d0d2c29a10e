"""The Synthea seed loader on every backend: counts from the bundles, references, re-runs."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import adapters.sql
import his_sdk.search
from tests.adapters.sql.sql_helpers import (
    CORPUS,
    LOINC,
    SMALL_BUNDLE,
    VITAL_UNITS,
    insert_row,
    needs_corpus,
)

STORED = {"Patient", "Encounter", "Condition", "AllergyIntolerance", "MedicationRequest"}


def expected_counts(bundle: dict[str, Any]) -> dict[str, Any]:
    """Rows per table and skips per reason, read straight from one bundle."""
    resources = [e["resource"] for e in bundle["entry"]]
    kinds = Counter(r["resourceType"] for r in resources)
    labs, vitals_rows, survey, unmapped_vitals = 0, set(), Counter(), Counter()
    lab_orders = set()
    for r in resources:
        if r["resourceType"] != "Observation":
            continue
        category = r["category"][0]["coding"][0]["code"]
        code = next(c["code"] for c in r["code"]["coding"] if c["system"] == LOINC)
        encounter = r.get("encounter", {}).get("reference")
        if category == "laboratory":
            labs += 1
            lab_orders.add(encounter)
        elif category == "vital-signs":
            if code == "85354-9" or code in VITAL_UNITS:
                vitals_rows.add((encounter, r["effectiveDateTime"]))
            else:
                unmapped_vitals[code] += 1
        else:
            survey[category] += 1
    npis = set()
    for r in resources:
        refs = [p.get("individual", {}) for p in r.get("participant", [])] + [
            r.get("requester", {})
        ]
        for ref in refs:
            if "us-npi|" in ref.get("reference", ""):
                npis.add(ref["reference"].rsplit("|", 1)[1])
        if r["resourceType"] == "Practitioner":
            npis.update(i["value"] for i in r["identifier"] if i["system"].endswith("us-npi"))
    rows = {
        "patient_data": 1,
        "form_encounter": kinds["Encounter"],
        "lists": kinds["Condition"] + kinds["AllergyIntolerance"],
        "prescriptions": kinds["MedicationRequest"],
        "procedure_result": labs,
        "procedure_order": len(lab_orders),
        "form_vitals": len(vitals_rows),
        "users": len(npis),
    }
    skipped = {
        f"{kind}: resource type not stored": n
        for kind, n in kinds.items()
        if kind not in STORED | {"Observation", "Practitioner", "Organization"}
    }
    skipped |= {f"Observation: category {c} not stored": n for c, n in survey.items()}
    skipped |= {
        f"Observation: vital sign LOINC {c} has no form_vitals column": n
        for c, n in unmapped_vitals.items()
    }
    return {"rows": {k: v for k, v in rows.items() if v}, "skipped": skipped}


async def test_seed_counts_match_bundle(empty_url: str) -> None:
    bundle = json.loads(SMALL_BUNDLE.read_text())
    report = adapters.sql.seed_synthea(empty_url, [SMALL_BUNDLE])
    expected = expected_counts(bundle)
    assert report.files == 1
    inserted = {t: n for t, n in report.inserted.items() if t != "facility"}
    assert inserted == expected["rows"]
    assert dict(report.skipped) == expected["skipped"]
    assert report.inserted["facility"] >= 1
    text = str(report)
    assert "patient_data" in text and "Claim: resource type not stored" in text
    # Conditional references became users rows named from the reference display.
    adapter = adapters.sql.SqlAdapter(empty_url)
    try:
        definitions = adapter.capabilities().types["Practitioner"].search_params
        criteria = his_sdk.search.parse_criteria(
            "Practitioner",
            [("identifier", "http://hl7.org/fhir/sid/us-npi|9999999949")],
            definitions,
        )
        page = await adapter.search(his_sdk.search.SearchQuery("Practitioner", criteria))
        [doctor] = page.resources
        assert doctor.name[0].family == "Fadel536" and doctor.name[0].given == ["Terrell212"]
        encounters = await adapter.search(his_sdk.search.SearchQuery("Encounter", count=100))
        assert {e.serviceProvider.display for e in encounters.resources} >= {"CAPE COD HOSPITAL"}
    finally:
        await adapter.close()


def test_seed_rerun_skips_loaded_patient(sqlite_url: str) -> None:
    first = adapters.sql.seed_synthea(sqlite_url, [SMALL_BUNDLE])
    second = adapters.sql.seed_synthea(sqlite_url, [SMALL_BUNDLE], create_schema=False)
    assert sum(second.inserted.values()) == 0
    assert second.skipped["Patient: patient already loaded"] == 1
    bundle = json.loads(SMALL_BUNDLE.read_text())
    owned = Counter(
        e["resource"]["resourceType"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] in STORED - {"Patient"} | {"Observation"}
    )
    for kind, count in owned.items():
        already = second.skipped[f"{kind}: patient already loaded"]
        if kind == "Observation":
            assert already + second.skipped["Observation: category survey not stored"] == count
        else:
            assert already == count
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM patient_data")).scalar() == 1
        users = conn.execute(sa.text("SELECT COUNT(*) FROM users")).scalar()
    engine.dispose()
    assert users == first.inserted["users"]


def _rewrite_as_batch(bundle: dict[str, Any]) -> dict[str, Any]:
    """The same data as a batch bundle addressed by ``Type/id`` instead of urn:uuid fullUrls."""
    ids = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
    }
    text = json.dumps(
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"resource": e["resource"], "request": e.get("request")} for e in bundle["entry"]
            ],
        }
    )
    for full_url, ref in ids.items():
        text = text.replace(f'"{full_url}"', f'"{ref}"')
    return json.loads(text)


def test_seed_folder_batch_and_odd_files(sqlite_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "bundles"
    folder.mkdir()
    bundle = json.loads(SMALL_BUNDLE.read_text())
    (folder / "a_batch.json").write_text(json.dumps(_rewrite_as_batch(bundle)))
    (folder / "b_not_bundle.json").write_text(json.dumps({"resourceType": "Patient", "id": "x"}))
    (folder / "c_message.json").write_text(
        json.dumps({"resourceType": "Bundle", "type": "message"})
    )
    (folder / "ignored.txt").write_text("not json")
    report = adapters.sql.seed_synthea(sqlite_url, [folder])
    expected = expected_counts(bundle)
    assert report.files == 3
    assert {t: n for t, n in report.inserted.items() if t != "facility"} == expected["rows"]
    assert report.skipped["file: not a FHIR Bundle"] == 1
    assert report.skipped["file: Bundle type message not loaded"] == 1
    assert not report.partial, report.partial
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json"):
        adapters.sql.seed_synthea(sqlite_url, [tmp_path / "broken.json"])
    with pytest.raises(FileNotFoundError):
        adapters.sql.seed_synthea(sqlite_url, [tmp_path / "missing.json"])


@needs_corpus
async def test_seed_collection_bundle_with_embedded_practitioners(sqlite_url: str) -> None:
    assert CORPUS is not None
    path = CORPUS / "small" / "Alfonzo975_Hickle134_cd3d3588-94fc-b980-9e94-0390d989d921.json"
    bundle = json.loads(path.read_text())
    report = adapters.sql.seed_synthea(sqlite_url, [path])
    expected = expected_counts(bundle)
    assert {t: n for t, n in report.inserted.items() if t != "facility"} == expected["rows"]
    embedded = {
        i["value"]: e["resource"]["name"][0]["family"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Practitioner"
        for i in e["resource"]["identifier"]
    }
    adapter = adapters.sql.SqlAdapter(sqlite_url)
    try:
        page = await adapter.search(his_sdk.search.SearchQuery("Practitioner", count=50))
        assert {p.identifier[0].value: p.name[0].family for p in page.resources} == embedded
        facts = await adapter.patient_facts("1")
        assert len(facts.care_team) == len(embedded)
    finally:
        await adapter.close()


@needs_corpus
def test_seed_large_bundle_quickly(sqlite_url: str) -> None:
    assert CORPUS is not None
    large = sorted((CORPUS / "large").glob("*.json"))
    started = time.perf_counter()
    report = adapters.sql.seed_synthea(sqlite_url, large)
    assert time.perf_counter() - started < 10
    assert report.inserted["form_encounter"] >= 50


@pytest.mark.postgres
def test_postgres_sequences_follow_seeded_ids(postgres_url: str) -> None:
    adapters.sql.seed_synthea(postgres_url, [SMALL_BUNDLE])
    insert_row(
        postgres_url, "lists", pid=1, type="medical_problem", title="added later", activity=1
    )
    insert_row(postgres_url, "users", username="later", active=1)


def test_create_and_drop_schema(sqlite_url: str) -> None:
    adapters.sql.create_schema(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        assert {
            "patient_data",
            "form_encounter",
            "lists",
            "prescriptions",
            "form_vitals",
            "procedure_order",
            "procedure_result",
            "users",
            "facility",
        } <= names
        adapters.sql.drop_schema(sqlite_url)
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
