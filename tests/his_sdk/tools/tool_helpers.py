"""An integrator tool for the registry tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def mean_arterial_pressure(args: Mapping[str, Any]) -> dict[str, Any]:
    systolic, diastolic = float(args["systolic"]), float(args["diastolic"])
    return {"value": round(diastolic + (systolic - diastolic) / 3), "unit": "mm[Hg]"}
