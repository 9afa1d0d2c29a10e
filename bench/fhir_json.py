"""FHIR JSON serialisation: fhir_core's model_dump_json versus his_sdk._fhir_json.

Usage: python bench/fhir_json.py [--bundle PATH] [--seconds 0.5]

Times one Patient, one Observation and the whole bundle (as a Bundle model), taken from the
large Synthea bundle in the shared corpora (or the repo's test bundle when that is absent),
and prints microseconds per call for each serialiser with the speed-up. ``dump_resource``
uses orjson when it is installed; the stdlib row forces the json module.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import timeit
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir.resources.R4B.bundle import Bundle  # noqa: E402

from his_sdk import _fhir_json  # noqa: E402

LARGE = ROOT.parent / "shared/corpora/synthea/large"
FALLBACK = ROOT / "tests/data/synthea"


def default_bundle() -> pathlib.Path:
    for folder in (LARGE, FALLBACK):
        found = sorted(folder.glob("*.json"))
        if found:
            return found[0]
    raise SystemExit("no Synthea bundle found; pass --bundle")


def per_call_us(fn: Callable[[], Any], seconds: float) -> float:
    timer = timeit.Timer(fn)
    number, elapsed = timer.autorange()
    number = max(1, int(number * seconds / max(elapsed, 1e-9)))
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def stdlib_dump(model: Any) -> bytes:
    saved, _fhir_json._ORJSON_DUMPS = _fhir_json._ORJSON_DUMPS, None
    try:
        return _fhir_json.dump_resource(model)
    finally:
        _fhir_json._ORJSON_DUMPS = saved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", type=pathlib.Path, default=None)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = parser.parse_args()
    path = args.bundle or default_bundle()
    bundle = Bundle.model_validate_json(path.read_bytes())
    resources = [entry.resource for entry in bundle.entry or () if entry.resource is not None]
    subjects = [
        ("Patient", next(r for r in resources if r.get_resource_type() == "Patient")),
        ("Observation", next(r for r in resources if r.get_resource_type() == "Observation")),
        (f"Bundle ({len(resources)} entries)", bundle),
    ]
    orjson = sys.modules.get("orjson")
    encoder = f"orjson {orjson.__version__}" if orjson is not None else "stdlib json"
    print(f"bundle: {path.name}; dump_resource encodes with {encoder}")
    header = (
        f"{'resource':<24}{'bytes':>9}{'model_dump_json':>17}{'dump_resource':>15}"
        f"{'speed-up':>10}{'stdlib json':>13}{'speed-up':>10}{'resource_dict':>15}"
    )
    print(header)
    print("-" * len(header))
    for name, model in subjects:
        size = len(_fhir_json.dump_resource(model))
        assert json.loads(_fhir_json.dump_resource(model)) == json.loads(
            model.model_dump_json(exclude_none=True)
        )
        reference = per_call_us(lambda m=model: m.model_dump_json(exclude_none=True), args.seconds)
        fast = per_call_us(lambda m=model: _fhir_json.dump_resource(m), args.seconds)
        stdlib = per_call_us(lambda m=model: stdlib_dump(m), args.seconds)
        as_dict = per_call_us(lambda m=model: _fhir_json.resource_dict(m), args.seconds)
        print(
            f"{name:<24}{size:>9}{reference:>14.1f} µs{fast:>12.1f} µs{reference / fast:>9.1f}x"
            f"{stdlib:>10.1f} µs{reference / stdlib:>9.1f}x{as_dict:>12.1f} µs"
        )


if __name__ == "__main__":
    main()
