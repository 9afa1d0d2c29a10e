"""Reads: every type, soft deletes, unknown ids and rows that cannot become valid FHIR."""

from __future__ import annotations

from datetime import datetime

import pytest
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner

import his_sdk.errors
from tests.adapters.sql.sql_helpers import (
    Seeded,
    execute_sql,
    insert_row,
    model_utc,
    needs_corpus,
    observation_signature,
    truth_observation_signature,
    update_rows,
)


async def test_read_patient_matches_bundle(seeded: Seeded) -> None:
    for truth in seeded.truth.patients:
        patient = await seeded.adapter.read("Patient", seeded.pid_by_mrn[truth["mrn"]])
        assert isinstance(patient, Patient)
        assert patient.identifier[0].value == truth["mrn"]
        assert patient.identifier[0].system == "http://hospital.smarthealthit.org"
        assert patient.name[0].family == truth["family"]
        assert patient.name[0].given[0] == truth["given"][0]
        assert patient.birthDate == truth["birth"]
        assert patient.gender == truth["gender"]


async def test_read_each_type_equals_search_result(seeded: Seeded) -> None:
    models = {
        "Encounter": Encounter,
        "Condition": Condition,
        "MedicationRequest": MedicationRequest,
        "Observation": Observation,
        "Practitioner": Practitioner,
    }
    for resource_type, model in models.items():
        found = await seeded.search(resource_type, [], count=5000)
        assert found, resource_type
        for resource in (found[0], found[-1]):
            read = await seeded.adapter.read(resource_type, resource.id)
            assert isinstance(read, model)
            assert read.model_dump() == resource.model_dump()


async def test_read_vitals_and_labs(seeded: Seeded) -> None:
    observations = await seeded.search("Observation", [], count=5000)
    expected = {truth_observation_signature(o) for o in seeded.truth.observations}
    for observation in observations:
        read = await seeded.adapter.read("Observation", observation.id)
        assert observation_signature(read, seeded.mrn_of) in expected
    panels = [o for o in observations if o.code.coding[0].code == "85354-9"]
    assert panels and all(o.id.endswith("-bp") for o in panels)
    components = {c.code.coding[0].code for c in panels[0].component}
    assert components == {"8480-6", "8462-4"}
    assert all(c.valueQuantity.unit == "mm[Hg]" for c in panels[0].component)
    heart = next(o for o in observations if o.code.coding[0].code == "8867-4")
    assert heart.category[0].coding[0].code == "vital-signs"
    assert heart.valueQuantity.system == "http://unitsofmeasure.org"
    assert heart.encounter.reference.startswith("Encounter/")


@needs_corpus
async def test_read_lab_and_allergy(seeded: Seeded) -> None:
    labs = await seeded.search("Observation", [("category", "laboratory")], count=5000)
    assert labs and all(lab.id.startswith("lab-") for lab in labs)
    lab = await seeded.adapter.read("Observation", labs[0].id)
    assert lab.code.coding[0].system == "http://loinc.org"
    assert lab.valueQuantity is not None
    allergies = await seeded.search("AllergyIntolerance", [])
    allergy = await seeded.adapter.read("AllergyIntolerance", allergies[0].id)
    assert isinstance(allergy, AllergyIntolerance)
    assert allergy.clinicalStatus.coding[0].code == "active"
    # An allergy row is a lists row, but not a Condition.
    with pytest.raises(his_sdk.errors.NotFoundError) as caught:
        await seeded.adapter.read("Condition", allergy.id)
    assert not isinstance(caught.value, his_sdk.errors.GoneError)


async def test_read_unknown_ids(seeded: Seeded) -> None:
    unknown = [
        ("Patient", "999999"),
        ("Patient", "abc"),
        ("Patient", "1.5"),
        ("Encounter", "0"),
        ("Observation", "lab-999999"),
        ("Observation", "vs-999999-hr"),
        ("Observation", "vs-1-xx"),
        ("Observation", "1"),
        ("Condition", "-1"),
    ]
    for resource_type, resource_id in unknown:
        with pytest.raises(his_sdk.errors.NotFoundError) as caught:
            await seeded.adapter.read(resource_type, resource_id)
        assert not isinstance(caught.value, his_sdk.errors.GoneError)
        assert resource_id in caught.value.message
    with pytest.raises(his_sdk.errors.UnsupportedError):
        await seeded.adapter.read("Immunization", "1")


async def test_read_vital_without_that_measurement(seeded: Seeded) -> None:
    heart = await seeded.search("Observation", [("code", "8867-4")], count=5000)
    temperature_times = {
        (o["mrn"], o["effective"]) for o in seeded.truth.observations if o["code"] == "8310-5"
    }
    for observation in heart:
        key = (
            seeded.mrn_of[observation.subject.reference],
            model_utc(observation.effectiveDateTime),
        )
        if key not in temperature_times:
            row = observation.id.split("-")[1]
            with pytest.raises(his_sdk.errors.NotFoundError):
                await seeded.adapter.read("Observation", f"vs-{row}-temp")
            return
    pytest.fail("every vitals row has a temperature")


async def test_soft_deleted_rows_are_gone(fresh: Seeded) -> None:
    adapter = fresh.adapter
    encounters = await fresh.search("Encounter", [])
    conditions = await fresh.search("Condition", [])
    medications = await fresh.search("MedicationRequest", [])
    row = (await fresh.search("Observation", [("code", "8867-4")]))[0].id.split("-")[1]
    vitals = [v for v in await fresh.search("Observation", []) if v.id.startswith(f"vs-{row}-")]
    assert len(vitals) > 3
    execute_sql(
        fresh.url,
        "UPDATE form_encounter SET activity = 0 WHERE encounter = :e",
        e=int(encounters[0].id),
    )
    execute_sql(fresh.url, "UPDATE lists SET activity = 0 WHERE id = :i", i=int(conditions[0].id))
    execute_sql(
        fresh.url, "UPDATE prescriptions SET activity = 0 WHERE id = :i", i=int(medications[0].id)
    )
    execute_sql(fresh.url, "UPDATE form_vitals SET activity = 0 WHERE id = :i", i=int(row))
    gone = [
        ("Encounter", encounters[0].id),
        ("Condition", conditions[0].id),
        ("MedicationRequest", medications[0].id),
        *[("Observation", v.id) for v in vitals],
    ]
    for resource_type, resource_id in gone:
        with pytest.raises(his_sdk.errors.GoneError) as caught:
            await adapter.read(resource_type, resource_id)
        assert caught.value.issue_code == "deleted"
    assert {e.id for e in await fresh.search("Encounter", [])} == {e.id for e in encounters[1:]}
    assert await fresh.search("Condition", [("_id", conditions[0].id)]) == []
    remaining = {o.id for o in await fresh.search("Observation", [], count=1000)}
    assert not any(resource_id in remaining for _, resource_id in gone)
    pid = next(iter(fresh.pid_by_mrn.values()))
    execute_sql(fresh.url, "UPDATE patient_data SET activity = 0 WHERE pid = :p", p=int(pid))
    with pytest.raises(his_sdk.errors.GoneError):
        await adapter.read("Patient", pid)
    assert await fresh.search("Patient", []) == []


def _insert_lab(url: str, *, result: str, units: str | None) -> None:
    moment = datetime(2024, 1, 2, 8, 30)
    insert_row(
        url,
        "procedure_order",
        procedure_order_id=900,
        patient_id=1,
        encounter_id=None,
        date_ordered=moment,
        order_status="complete",
        activity=1,
    )
    insert_row(
        url,
        "procedure_result",
        procedure_result_id=901,
        procedure_order_id=900,
        result_code="LOINC:2345-7",
        result_text="Glucose",
        date=moment,
        result=result,
        units=units,
        range="70-99",
        abnormal="high",
        result_status="final",
        activity=1,
    )


async def test_lab_text_value_and_deleted_order(fresh: Seeded) -> None:
    _insert_lab(fresh.url, result="positive", units=None)
    lab = await fresh.adapter.read("Observation", "lab-901")
    assert lab.valueString == "positive"
    assert lab.valueQuantity is None
    assert lab.interpretation[0].coding[0].code == "H"
    assert lab.referenceRange[0].text == "70-99"
    assert lab.encounter is None
    found = await fresh.search("Observation", [("code", "http://loinc.org|2345-7")])
    assert [o.id for o in found] == ["lab-901"]
    update_rows(fresh.url, "procedure_order", {"activity": 0})
    with pytest.raises(his_sdk.errors.GoneError):
        await fresh.adapter.read("Observation", "lab-901")
    assert await fresh.search("Observation", [("code", "2345-7")]) == []


async def test_unmappable_rows_raise_upstream_data_error(fresh: Seeded) -> None:
    _insert_lab(fresh.url, result="GLUC-SECRET-123", units="mg/dL")
    with pytest.raises(his_sdk.errors.UpstreamDataError) as caught:
        await fresh.adapter.read("Observation", "lab-901")
    text = f"{caught.value.message} {caught.value.diagnostics}"
    assert "Observation/lab-901" in text and "result" in text
    assert "GLUC-SECRET-123" not in text
    with pytest.raises(his_sdk.errors.UpstreamDataError):
        await fresh.search("Observation", [("code", "2345-7")])
    pid = next(iter(fresh.pid_by_mrn.values()))
    execute_sql(
        fresh.url, "UPDATE patient_data SET sex = 'Secret-Sex-Value' WHERE pid = :p", p=int(pid)
    )
    with pytest.raises(his_sdk.errors.UpstreamDataError) as caught:
        await fresh.adapter.read("Patient", pid)
    assert "Secret-Sex-Value" not in f"{caught.value.message} {caught.value.diagnostics}"
    assert "gender" in (caught.value.diagnostics or "")
    # A value that renders but breaks FHIR validation (Encounter.class needs a code).
    update_rows(fresh.url, "patient_data", {"sex": "Male"})
    update_rows(fresh.url, "form_encounter", {"class_code": None})
    heart = await fresh.search("Observation", [("code", "8867-4")])
    encounter = heart[0].encounter.reference.split("/")[1]
    with pytest.raises(his_sdk.errors.UpstreamDataError) as caught:
        await fresh.adapter.read("Encounter", encounter)
    assert caught.value.diagnostics and "class" in caught.value.diagnostics
