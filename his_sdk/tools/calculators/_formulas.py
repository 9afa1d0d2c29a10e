"""Clinical calculators: pure functions of validated arguments, checked for units and ranges."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import his_sdk.errors

__all__ = [
    "bmi",
    "cha2ds2_vasc",
    "ckd_epi_2021",
    "corrected_calcium",
    "qtc_bazett",
    "qtc_fridericia",
]

_WEIGHT_TO_KG = {"kg": 1.0, "g": 0.001, "lb": 0.45359237}
_HEIGHT_TO_M = {"m": 1.0, "cm": 0.01, "in": 0.0254}
_CREATININE_TO_MG_DL = {"mg/dL": 1.0, "umol/L": 1 / 88.42}


def _number(args: Mapping[str, Any], name: str) -> float:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise his_sdk.errors.InvalidRequestError(f"{name} must be a number", expression=[name])
    return float(value)


def _unit(args: Mapping[str, Any], name: str, table: Mapping[str, float], default: str) -> float:
    unit = args.get(name, default)
    if unit not in table:
        raise his_sdk.errors.InvalidRequestError(
            f"{name} must be one of {', '.join(table)}, got {unit!r}", expression=[name]
        )
    return table[unit]


def _in_range(name: str, value: float, low: float, high: float, unit: str) -> float:
    if not low <= value <= high:
        raise his_sdk.errors.InvalidRequestError(
            f"{name} {value:g} {unit} is outside the plausible range {low:g}-{high:g} {unit}",
            expression=[name],
        )
    return value


def _flag(args: Mapping[str, Any], name: str) -> bool:
    value = args.get(name, False)
    if not isinstance(value, bool):
        raise his_sdk.errors.InvalidRequestError(f"{name} must be true or false", expression=[name])
    return value


def bmi(args: Mapping[str, Any]) -> dict[str, Any]:
    """Body mass index: weight (kg) / height (m) squared, with the WHO adult category.

    Raises:
        his_sdk.errors.InvalidRequestError: Unknown unit, or a weight or height outside
            human range.
    """
    weight = _number(args, "weight") * _unit(args, "weight_unit", _WEIGHT_TO_KG, "kg")
    height = _number(args, "height") * _unit(args, "height_unit", _HEIGHT_TO_M, "cm")
    _in_range("weight", weight, 0.5, 650, "kg")
    _in_range("height", height * 100, 30, 275, "cm")
    value = weight / (height * height)
    if value < 18.5:
        category = "underweight"
    elif value < 25:
        category = "normal weight"
    elif value < 30:
        category = "pre-obesity"
    else:
        category = "obesity"
    return {"value": round(value, 1), "unit": "kg/m2", "category": category}


def ckd_epi_2021(args: Mapping[str, Any]) -> dict[str, Any]:
    """Estimated GFR by the race-free CKD-EPI 2021 creatinine equation (Inker et al. 2021).

    eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age (x 1.012 if female),
    with k 0.7 (female) or 0.9 (male) and a -0.241 (female) or -0.302 (male).

    Raises:
        his_sdk.errors.InvalidRequestError: Unknown unit or sex, an age under 18 or a
            creatinine outside the plausible range.
    """
    creatinine = _number(args, "creatinine") * _unit(
        args, "creatinine_unit", _CREATININE_TO_MG_DL, "mg/dL"
    )
    _in_range("creatinine", creatinine, 0.1, 25, "mg/dL")
    age = _in_range("age", _number(args, "age"), 18, 120, "years")
    sex = args.get("sex")
    if sex not in ("female", "male"):
        raise his_sdk.errors.InvalidRequestError(
            "sex must be 'female' or 'male' (the equation's coefficients differ)",
            expression=["sex"],
        )
    female = sex == "female"
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine / kappa
    value = 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.2 * 0.9938**age
    if female:
        value *= 1.012
    return {
        "value": round(value),
        "unit": "mL/min/1.73m2",
        "stage": _gfr_category(value),
    }


def _gfr_category(value: float) -> str:
    for limit, category in ((90, "G1"), (60, "G2"), (45, "G3a"), (30, "G3b"), (15, "G4")):
        if value >= limit:
            return category
    return "G5"


def cha2ds2_vasc(args: Mapping[str, Any]) -> dict[str, Any]:
    """CHA2DS2-VASc stroke risk score in atrial fibrillation (Lip et al. 2010).

    Congestive heart failure 1, Hypertension 1, Age >= 75 2, Diabetes 1, prior Stroke/TIA/
    thromboembolism 2, Vascular disease 1, Age 65-74 1, Sex category female 1 (0-9).

    Raises:
        his_sdk.errors.InvalidRequestError: Age outside 18-120, sex not female or male, or a
            flag that is not a boolean.
    """
    age = _in_range("age", _number(args, "age"), 18, 120, "years")
    sex = args.get("sex")
    if sex not in ("female", "male"):
        raise his_sdk.errors.InvalidRequestError(
            "sex must be 'female' or 'male'", expression=["sex"]
        )
    components = {
        "congestive_heart_failure": 1 if _flag(args, "congestive_heart_failure") else 0,
        "hypertension": 1 if _flag(args, "hypertension") else 0,
        "age": 2 if age >= 75 else 1 if age >= 65 else 0,
        "diabetes": 1 if _flag(args, "diabetes") else 0,
        "stroke_tia_thromboembolism": 2 if _flag(args, "stroke_tia_thromboembolism") else 0,
        "vascular_disease": 1 if _flag(args, "vascular_disease") else 0,
        "sex_female": 1 if sex == "female" else 0,
    }
    return {"score": sum(components.values()), "components": components}


def _rr_seconds(args: Mapping[str, Any]) -> float:
    has_rate, has_rr = "heart_rate" in args, "rr_interval" in args
    if has_rate == has_rr:
        raise his_sdk.errors.InvalidRequestError(
            "give exactly one of heart_rate (beats/min) and rr_interval (ms)",
            expression=["heart_rate", "rr_interval"],
        )
    if has_rate:
        rate = _in_range("heart_rate", _number(args, "heart_rate"), 20, 300, "/min")
        return 60.0 / rate
    return _in_range("rr_interval", _number(args, "rr_interval"), 200, 3000, "ms") / 1000


def _qt(args: Mapping[str, Any]) -> float:
    return _in_range("qt_interval", _number(args, "qt_interval"), 150, 800, "ms")


def qtc_bazett(args: Mapping[str, Any]) -> dict[str, Any]:
    """QT corrected for heart rate by Bazett (1920): QTc = QT / sqrt(RR in seconds).

    Raises:
        his_sdk.errors.InvalidRequestError: QT, heart rate or RR outside the plausible range,
            or both or neither of heart rate and RR given.
    """
    qtc = _qt(args) / math.sqrt(_rr_seconds(args))
    return {"value": round(qtc), "unit": "ms"}


def qtc_fridericia(args: Mapping[str, Any]) -> dict[str, Any]:
    """QT corrected for heart rate by Fridericia (1920): QTc = QT / cube root(RR in seconds).

    Raises:
        his_sdk.errors.InvalidRequestError: As :func:`qtc_bazett`.
    """
    qtc = _qt(args) / _rr_seconds(args) ** (1 / 3)
    return {"value": round(qtc), "unit": "ms"}


def corrected_calcium(args: Mapping[str, Any]) -> dict[str, Any]:
    """Albumin-adjusted calcium (Payne et al. 1973): Ca + 0.02 x (40 - albumin g/L) mmol/L.

    In conventional units the same line is Ca + 0.8 x (4.0 - albumin g/dL) mg/dL; ``unit``
    picks the system, and both the calcium and the albumin are read in it.

    Raises:
        his_sdk.errors.InvalidRequestError: Unknown unit system, or a calcium or albumin
            outside the plausible range.
    """
    system = args.get("unit", "mmol/L")
    calcium = _number(args, "calcium")
    albumin = _number(args, "albumin")
    if system == "mmol/L":
        _in_range("calcium", calcium, 0.5, 5.0, "mmol/L")
        _in_range("albumin", albumin, 5, 70, "g/L")
        return {"value": round(calcium + 0.02 * (40 - albumin), 2), "unit": "mmol/L"}
    if system == "mg/dL":
        _in_range("calcium", calcium, 2, 20, "mg/dL")
        _in_range("albumin", albumin, 0.5, 7.0, "g/dL")
        return {"value": round(calcium + 0.8 * (4.0 - albumin), 1), "unit": "mg/dL"}
    raise his_sdk.errors.InvalidRequestError(
        f"unit must be 'mmol/L' (albumin in g/L) or 'mg/dL' (albumin in g/dL), got {system!r}",
        expression=["unit"],
    )
