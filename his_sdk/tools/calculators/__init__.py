"""Low-risk clinical calculators, each with a descriptor naming its published reference.

Each calculator takes the arguments object its descriptor's input schema describes and
returns the result object of its output schema; :data:`SHIPPED_CALCULATORS` pairs each
implementation's import string with its descriptor file, as ``tools.registered`` does.
"""

from pathlib import Path

from his_sdk.tools.calculators._formulas import (
    bmi,
    cha2ds2_vasc,
    ckd_epi_2021,
    corrected_calcium,
    qtc_bazett,
    qtc_fridericia,
)

__all__ = [
    "SHIPPED_CALCULATORS",
    "bmi",
    "cha2ds2_vasc",
    "ckd_epi_2021",
    "corrected_calcium",
    "qtc_bazett",
    "qtc_fridericia",
]

_HERE = Path(__file__).parent

SHIPPED_CALCULATORS: tuple[tuple[str, Path], ...] = tuple(
    (f"his_sdk.tools.calculators:{name}", _HERE / f"{name}.yaml")
    for name in (
        "bmi",
        "ckd_epi_2021",
        "cha2ds2_vasc",
        "qtc_bazett",
        "qtc_fridericia",
        "corrected_calcium",
    )
)
"""``(implementation, descriptor)`` of every shipped calculator."""
