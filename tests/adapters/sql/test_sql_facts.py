"""PatientFacts: care team from primary care and visit providers, consent opt-out."""

from __future__ import annotations

import his_sdk.adapter
from tests.adapters.sql.sql_helpers import Seeded, execute_sql, insert_row, update_rows


async def practitioner_ids(seeded: Seeded, npis: set[str]) -> set[str]:
    ids = set()
    for npi in npis:
        found = await seeded.search(
            "Practitioner", [("identifier", f"http://hl7.org/fhir/sid/us-npi|{npi}")]
        )
        assert len(found) == 1
        ids.add(f"Practitioner/{found[0].id}")
    return ids


async def test_care_team_from_encounter_providers(seeded: Seeded) -> None:
    assert isinstance(seeded.adapter, his_sdk.adapter.PatientFactsProvider)
    for mrn, pid in seeded.pid_by_mrn.items():
        facts = await seeded.adapter.patient_facts(pid)
        assert facts.exists and not facts.consent_opt_out
        assert facts.patient_id == pid
        expected = await practitioner_ids(seeded, seeded.truth.npis_by_mrn[mrn])
        assert expected and facts.care_team == expected


async def test_unknown_patient_does_not_exist(seeded: Seeded) -> None:
    for unknown in ("999999", "abc", "lab-1"):
        facts = await seeded.adapter.patient_facts(unknown)
        assert facts == his_sdk.adapter.PatientFacts(unknown, exists=False)


async def test_consent_primary_care_and_deletes(fresh: Seeded) -> None:
    pid = next(iter(fresh.pid_by_mrn.values()))
    before = await fresh.adapter.patient_facts(pid)
    assert before.care_team and not before.consent_opt_out
    execute_sql(fresh.url, "UPDATE patient_data SET allow_health_info_ex = 'NO'")
    assert (await fresh.adapter.patient_facts(pid)).consent_opt_out
    execute_sql(fresh.url, "UPDATE patient_data SET allow_health_info_ex = 'YES'")
    assert not (await fresh.adapter.patient_facts(pid)).consent_opt_out
    insert_row(
        fresh.url,
        "users",
        id=777,
        username="gp",
        fname="Greta",
        lname="Practice",
        npi="1234567890",
        active=1,
    )
    update_rows(fresh.url, "patient_data", {"providerID": 777})
    with_gp = await fresh.adapter.patient_facts(pid)
    assert with_gp.care_team == before.care_team | {"Practitioner/777"}
    patient = await fresh.adapter.read("Patient", pid)
    assert patient.generalPractitioner[0].reference == "Practitioner/777"
    update_rows(fresh.url, "patient_data", {"providerID": 0})
    assert (await fresh.adapter.patient_facts(pid)).care_team == before.care_team
    assert (await fresh.adapter.read("Patient", pid)).generalPractitioner is None
    execute_sql(fresh.url, "UPDATE form_encounter SET activity = 0")
    assert (await fresh.adapter.patient_facts(pid)).care_team == frozenset()
    execute_sql(fresh.url, "UPDATE patient_data SET activity = 0")
    assert not (await fresh.adapter.patient_facts(pid)).exists
