from fhir.resources.R4B.observation import Observation

from his_sdk._fhir import mandatory_elements, patient_compartment, shape

OBS = {
    "resourceType": "Observation",
    "id": "o1",
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'},
    "status": "final",
    "category": [{"coding": [{"code": "vital-signs"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2020-01-01T10:00:00Z",
    "valueQuantity": {"value": 72, "unit": "/min"},
    "note": [{"text": "free text"}],
}


def test_elements_keep_choice_types_and_mandatory_elements_and_mark_subsetted():
    shaped = shape(OBS, elements=["value"])
    assert set(shaped) == {"resourceType", "id", "status", "code", "valueQuantity", "meta"}
    assert shaped["meta"]["tag"][0]["code"] == "SUBSETTED"
    Observation.model_validate(shaped)


def test_summary_modes():
    assert "note" not in shape(OBS, summary="true") and "subject" in shape(OBS, summary="true")
    assert set(shape(OBS, summary="text")) == {
        "resourceType",
        "id",
        "text",
        "status",
        "code",
        "meta",
    }
    assert "text" not in shape(OBS, summary="data") and "note" in shape(OBS, summary="data")
    assert shape(OBS) is OBS


def test_mandatory_elements_and_compartments():
    assert mandatory_elements("Observation") == {"status", "code"}
    assert patient_compartment(OBS) == "p1"
    assert patient_compartment({"resourceType": "Patient", "id": "p9"}) == "p9"
