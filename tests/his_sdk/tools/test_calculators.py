"""The shipped calculators against published worked examples, and their input checks."""

from __future__ import annotations

import pytest

import his_sdk.errors
from his_sdk.tools import RiskLevel, ToolDescriptor, ValidationStatus
from his_sdk.tools.calculators import (
    SHIPPED_CALCULATORS,
    bmi,
    cha2ds2_vasc,
    ckd_epi_2021,
    corrected_calcium,
    qtc_bazett,
    qtc_fridericia,
)


def test_bmi_who_example():
    assert bmi({"weight": 70, "height": 175}) == {
        "value": 22.9,
        "unit": "kg/m2",
        "category": "normal weight",
    }
    # The same person in imperial units.
    assert bmi({"weight": 154.32, "weight_unit": "lb", "height": 68.9, "height_unit": "in"})[
        "value"
    ] == pytest.approx(22.9, abs=0.05)
    assert bmi({"weight": 95, "height": 1.70, "height_unit": "m"})["category"] == "obesity"


@pytest.mark.parametrize(
    ("args", "expected", "stage"),
    [
        # Worked by hand from the coefficients published by Inker et al. 2021.
        ({"creatinine": 1.0, "age": 50, "sex": "male"}, 92, "G1"),
        ({"creatinine": 1.0, "age": 50, "sex": "female"}, 69, "G2"),
        ({"creatinine": 0.6, "age": 30, "sex": "female"}, 124, "G1"),
        ({"creatinine": 2.5, "age": 70, "sex": "male"}, 27, "G4"),
        ({"creatinine": 88.42, "creatinine_unit": "umol/L", "age": 50, "sex": "male"}, 92, "G1"),
    ],
)
def test_ckd_epi_2021(args, expected, stage):
    result = ckd_epi_2021(args)
    assert result == {"value": expected, "unit": "mL/min/1.73m2", "stage": stage}


def test_cha2ds2_vasc_examples():
    # Lip et al. 2010: a 72-year-old woman with hypertension and diabetes scores 4.
    result = cha2ds2_vasc({"age": 72, "sex": "female", "hypertension": True, "diabetes": True})
    assert result["score"] == 4
    assert result["components"]["age"] == 1 and result["components"]["sex_female"] == 1
    assert cha2ds2_vasc({"age": 50, "sex": "male"})["score"] == 0
    everything = {
        "age": 80,
        "sex": "female",
        "congestive_heart_failure": True,
        "hypertension": True,
        "diabetes": True,
        "stroke_tia_thromboembolism": True,
        "vascular_disease": True,
    }
    assert cha2ds2_vasc(everything)["score"] == 9


def test_qtc_bazett_and_fridericia():
    # QT 400 ms at 75/min (RR 800 ms): Bazett 400/sqrt(0.8), Fridericia 400/cbrt(0.8).
    assert qtc_bazett({"qt_interval": 400, "heart_rate": 75}) == {"value": 447, "unit": "ms"}
    assert qtc_fridericia({"qt_interval": 400, "heart_rate": 75}) == {"value": 431, "unit": "ms"}
    assert qtc_bazett({"qt_interval": 400, "rr_interval": 800})["value"] == 447
    # At 60/min both corrections leave QT unchanged.
    assert qtc_bazett({"qt_interval": 420, "heart_rate": 60})["value"] == 420
    assert qtc_fridericia({"qt_interval": 420, "rr_interval": 1000})["value"] == 420


def test_corrected_calcium_payne():
    assert corrected_calcium({"calcium": 2.10, "albumin": 30}) == {"value": 2.30, "unit": "mmol/L"}
    assert corrected_calcium({"calcium": 8.0, "albumin": 2.0, "unit": "mg/dL"}) == {
        "value": 9.6,
        "unit": "mg/dL",
    }


@pytest.mark.parametrize(
    ("function", "args", "where"),
    [
        (bmi, {"weight": 70, "height": 175, "height_unit": "ft"}, "height_unit"),
        (bmi, {"weight": 70, "height": 1.75}, "height"),  # 1.75 cm: metres given as cm
        (ckd_epi_2021, {"creatinine": 1.0, "age": 12, "sex": "male"}, "age"),
        (ckd_epi_2021, {"creatinine": 90, "age": 50, "sex": "male"}, "creatinine"),
        (ckd_epi_2021, {"creatinine": 1.0, "age": 50, "sex": "unknown"}, "sex"),
        (cha2ds2_vasc, {"age": 70, "sex": "female", "diabetes": "yes"}, "diabetes"),
        (qtc_bazett, {"qt_interval": 400}, "heart_rate"),
        (qtc_bazett, {"qt_interval": 400, "heart_rate": 75, "rr_interval": 800}, "heart_rate"),
        (qtc_fridericia, {"qt_interval": 40, "heart_rate": 75}, "qt_interval"),
        (corrected_calcium, {"calcium": 9.0, "albumin": 3.0}, "calcium"),  # mg/dL as mmol/L
        (corrected_calcium, {"calcium": 2.1, "albumin": 30, "unit": "mEq/L"}, "unit"),
    ],
)
def test_invalid_inputs_name_the_argument(function, args, where):
    with pytest.raises(his_sdk.errors.InvalidRequestError) as raised:
        function(args)
    assert where in raised.value.expression
    assert raised.value.operation_outcome()["issue"][0]["code"] == "invalid"


def test_shipped_descriptors_are_low_risk_validated_and_cite_their_reference():
    names = set()
    for _, path in SHIPPED_CALCULATORS:
        descriptor = ToolDescriptor.from_yaml(path)
        names.add(descriptor.name)
        assert descriptor.risk is RiskLevel.LOW
        assert descriptor.validation.status is ValidationStatus.VALIDATED
        assert descriptor.provenance.source and descriptor.validation.evidence
        assert descriptor.annotations.read_only_hint and not descriptor.annotations.destructive_hint
    assert names == {
        "bmi",
        "ckd_epi_2021",
        "cha2ds2_vasc",
        "qtc_bazett",
        "qtc_fridericia",
        "corrected_calcium",
    }
