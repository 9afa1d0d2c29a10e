"""dump_resource and resource_dict against fhir_core's model_dump_json(exclude_none=True)."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.element import Element
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.quantity import Quantity
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from his_sdk import _fhir_json
from his_sdk._fhir_json import dump_resource, resource_dict

ROOT = Path(__file__).resolve().parents[2]
REPO_SYNTHEA = ROOT / "tests" / "data" / "synthea"
CORPORA = ROOT.parent / "shared" / "corpora"


def canonical(value: Any) -> Any:
    """A form that compares types, float signs and key order, which == on JSON data does not."""
    if isinstance(value, dict):
        return ["dict", [(key, canonical(item)) for key, item in value.items()]]
    if isinstance(value, list):
        return ["list", [canonical(item) for item in value]]
    if isinstance(value, float):
        return ["float", value.hex()]
    return [type(value).__name__, value]


def dumps(model: FHIRAbstractModel) -> list[bytes]:
    """dump_resource's output with each JSON encoder this environment has."""
    out = [dump_resource(model)]
    if _fhir_json._ORJSON_DUMPS is not None:
        saved, _fhir_json._ORJSON_DUMPS = _fhir_json._ORJSON_DUMPS, None
        try:
            out.append(dump_resource(model))
        finally:
            _fhir_json._ORJSON_DUMPS = saved
    return out


def assert_same(model: FHIRAbstractModel) -> None:
    expected = canonical(json.loads(model.model_dump_json(exclude_none=True)))
    for payload in dumps(model):
        assert canonical(json.loads(payload)) == expected
    assert canonical(resource_dict(model)) == expected


def assert_falls_back(model: FHIRAbstractModel) -> None:
    try:
        expected = model.model_dump_json(exclude_none=True).encode()
    except Exception as exc:
        with pytest.raises(type(exc)):
            dumps(model)
    else:
        results = dumps(model)
        assert results == [expected] * len(results)


def corpus(pattern: str) -> list[Any]:
    if not CORPORA.is_dir():
        reason = f"{CORPORA} is absent: the shared corpora are not checked out beside the repo"
        return [pytest.param(None, id="shared-corpora", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(path, id=path.name) for path in sorted(CORPORA.glob(pattern))]


def assert_bundle_file(path: Path) -> None:
    bundle = Bundle.model_validate_json(path.read_bytes())
    assert_same(bundle)
    for entry in bundle.entry or ():
        if entry.resource is not None:
            assert_same(entry.resource)


@pytest.mark.parametrize("path", sorted(REPO_SYNTHEA.glob("*.json")), ids=lambda p: p.name)
def test_repo_synthea_bundles(path):
    assert_bundle_file(path)


@pytest.mark.parametrize("path", corpus("synthea/small/*.json") + corpus("synthea/large/*.json"))
def test_synthea_bundles(path):
    assert_bundle_file(path)


@pytest.mark.parametrize("path", corpus("synthea/ndjson/*.ndjson"))
def test_synthea_ndjson(path):
    for line in path.read_text().splitlines():
        if line.strip():
            data = json.loads(line)
            assert_same(get_fhir_model_class(data["resourceType"]).model_validate(data))


@pytest.mark.parametrize(
    "path", corpus("fhir-examples/**/*.json") + corpus("hl7v2-expected-fhir/**/*.json")
)
def test_fhir_examples(path):
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict) or "resourceType" not in data:
        pytest.skip("not a FHIR resource")
    try:
        model = get_fhir_model_class(data["resourceType"]).model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        pytest.skip(f"does not validate as R4B: {where}: {first['msg']!r}")
    assert_same(model)
    if isinstance(model, Bundle):
        for entry in model.entry or ():
            if entry.resource is not None:
                assert_same(entry.resource)


def observation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, **elements}


NST = datetime.timezone(-datetime.timedelta(hours=3, minutes=30))
EXT = {"extension": [{"url": "http://example.org/why", "valueString": "asked"}]}

EDGE_CASES = {
    "extension on a scalar primitive": {
        "resourceType": "Patient",
        "birthDate": "1970-01-01",
        "_birthDate": EXT,
    },
    "extension without a value": {"resourceType": "Patient", "_gender": {"id": "g"}},
    "primitive list with holes": {
        "resourceType": "Patient",
        "name": [
            {"given": ["A", None, "C"], "_given": [None, EXT, None]},
            {"given": [None, "B"], "_given": [{"id": "first"}, None]},
        ],
    },
    "extension list of nulls": {
        "resourceType": "Patient",
        "name": [{"given": ["A"], "_given": [None]}],
    },
    "empty lists": {"resourceType": "Patient", "name": [], "telecom": [], "identifier": []},
    "empty element": {"resourceType": "Patient", "name": [{}]},
    "falsy primitives": {
        "resourceType": "Patient",
        "active": False,
        "multipleBirthInteger": 0,
    },
    "comments": {
        "resourceType": "Patient",
        "fhir_comments": "top",
        "name": [{"fhir_comments": ["a", "b"], "family": "X"}],
        "contact": [{"fhir_comments": []}],
    },
    "unicode": {"resourceType": "Patient", "name": [{"family": 'Müller "née" 王 \u2028 \\'}]},
    "decimals": observation(
        component=[
            {"code": {"text": str(value)}, "valueQuantity": {"value": value}}
            for value in (
                "1.0",
                "1e-7",
                "1E-7",
                "100",
                "1E+2",
                "1e2",
                "-0.0",
                "-0",
                "0",
                "1.50",
                "1e400",
                "1e-400",
                "123456789012345678901234567890",
                "123456789012345678901234567890.5",
                "3.14159265358979323846264338327950288",
                1.25,
                7,
            )
        ]
    ),
    "decimal list": {
        "resourceType": "MolecularSequence",
        "coordinateSystem": 0,
        "quality": [{"type": "snp", "roc": {"score": [1, 2], "precision": ["0.1", "1e-3", None]}}],
    },
    "integers": {
        "resourceType": "MolecularSequence",
        "coordinateSystem": 1,
        "referenceSeq": {"windowStart": -2147483648, "windowEnd": 2147483647},
    },
    "partial dates": observation(
        effectiveDateTime="2020",
        component=[
            {"code": {"text": "m"}, "valueDateTime": "2020-05"},
            {"code": {"text": "d"}, "valueDateTime": "2020-05-01"},
            {"code": {"text": "leap"}, "valueDateTime": "2016-12-31T23:59:60Z"},
        ],
    ),
    "datetimes": observation(
        effectivePeriod={"start": "2020-05-01T10:00:00Z", "end": "2020-05-01T10:00:00.5-03:00"},
        issued="2020-05-01T10:00:00.123456+05:30",
        component=[
            {"code": {"text": "utc"}, "valueDateTime": "2020-05-01T10:00:00+00:00"},
            {"code": {"text": "micro"}, "valueDateTime": "2020-05-01T10:00:00.000001+14:00"},
            {"code": {"text": "milli"}, "valueDateTime": "2020-05-01T23:59:59.999Z"},
            {"code": {"text": "old"}, "valueDateTime": "0005-01-01T00:00:00-12:00"},
            {
                "code": {"text": "python"},
                "valueDateTime": datetime.datetime(2020, 5, 1, tzinfo=NST),
            },
        ],
    ),
    "instants": {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": "2015-02-07T13:28:17.239+02:00",
        "meta": {"lastUpdated": "2017-01-01T00:00:00Z"},
    },
    "timing event list": observation(
        effectiveTiming={
            "event": ["2020", None, "2020-05-01T10:00:00.5Z"],
            "_event": [None, EXT, None],
            "repeat": {"timeOfDay": ["10:20:30", "23:59:60", "00:00:00.123"]},
        }
    ),
    "times": observation(valueTime="10:20:30.123456"),
    "base64": {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"data": "aGVsbG8gd29ybGQ=", "hash": "AAECAwQ="}}],
    },
    "base64 binary": {"resourceType": "Binary", "contentType": "text/plain", "data": "AA=="},
    "uuid": {
        "resourceType": "Parameters",
        "parameter": [{"name": "u", "valueUuid": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"}],
    },
    "urls and canonicals": {
        "resourceType": "Patient",
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/Patient", None]},
        "telecom": [{"system": "url", "value": "https://example.org/a b"}],
        "extension": [{"url": "http://example.org/u", "valueUrl": "Patient/1"}],
    },
    "contained resources": {
        "resourceType": "Patient",
        "id": "p",
        "contained": [
            {"resourceType": "Organization", "id": "o", "name": "Org", "_name": EXT},
            {
                "resourceType": "Practitioner",
                "id": "d",
                "name": [{"family": "Doe"}],
                "birthDate": "1960",
            },
        ],
        "managingOrganization": {"reference": "#o"},
        "generalPractitioner": [{"reference": "#d"}],
    },
    "bundle of resources": {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 2,
        "link": [{"relation": "self", "url": "http://example.org/fhir/Observation?code=x"}],
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "1"}},
            {
                "resource": observation(id="2", valueQuantity={"value": "72.0"}),
                "search": {"mode": "match", "score": "1"},
            },
            {"request": {"method": "DELETE", "url": "Patient/3"}},
        ],
    },
    "nested bundle": {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Bundle", "type": "collection", "entry": []}}],
    },
}


@pytest.mark.parametrize("data", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_cases(data):
    assert_same(get_fhir_model_class(data["resourceType"]).model_validate(data))


def test_decimal_forms_and_signs():
    data = resource_dict(Quantity(value="1.0"))
    assert data == {"value": 1.0} and type(data["value"]) is float
    assert type(resource_dict(Quantity(value="1E+2"))["value"]) is int
    negative_zero = resource_dict(Quantity(value="-0.0"))["value"]
    assert negative_zero == 0 and math.copysign(1, negative_zero) == -1


def test_models_built_in_python_and_elements():
    patient = Patient(
        id="p",
        active=True,
        birthDate=datetime.date(2001, 2, 3),
        deceasedDateTime=datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
    )
    assert_same(patient)
    assert_same(Quantity(value=decimal.Decimal("2.50"), unit="mg"))
    assert resource_dict(patient)["deceasedDateTime"] == "2020-01-02T03:04:05.000006Z"


def test_result_is_fresh():
    patient = Patient.model_validate(EDGE_CASES["comments"])
    first = resource_dict(patient)
    first["name"][0]["fhir_comments"].append("changed")
    first["name"].clear()
    assert resource_dict(patient) == json.loads(patient.model_dump_json(exclude_none=True))


def test_plans_are_cached():
    resource_dict(Patient(id="a"))
    plan = _fhir_json._PLANS[Patient]
    resource_dict(Patient(id="b"))
    assert _fhir_json._PLANS[Patient] is plan


def test_empty_extension_object_is_dropped():
    patient = Patient(gender="male")
    patient.__dict__["gender__ext"] = Element.model_construct()
    assert "_gender" not in resource_dict(patient)
    assert_same(patient)


class Status(enum.StrEnum):
    FINAL = "final"


def _sub_minute_offset() -> Observation:
    tz = datetime.timezone(datetime.timedelta(hours=5, minutes=30, seconds=7))
    return Observation.model_validate(
        observation(effectiveDateTime=datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=tz))
    )


def _with(model: FHIRAbstractModel, **values: Any) -> FHIRAbstractModel:
    # Bypasses validation to plant values that only model_construct or a careless caller make.
    model.__dict__.update(values)
    return model


def _without(model: FHIRAbstractModel, name: str) -> FHIRAbstractModel:
    del model.__dict__[name]
    return model


def _lone_surrogate() -> Patient:
    patient = Patient.model_validate({"resourceType": "Patient", "name": [{"family": "x"}]})
    _with(patient.name[0], family="\ud800")
    return patient


UNSUPPORTED = {
    "sub-minute offset": _sub_minute_offset,
    "time with a zone": lambda: Observation.model_validate(
        observation(valueTime=datetime.time(1, 2, 3, tzinfo=datetime.UTC))
    ),
    "str enum": lambda: _with(Observation.model_validate(observation()), status=Status.FINAL),
    "non-finite decimal": lambda: _with(
        Observation.model_validate(observation()),
        valueQuantity=Quantity.model_construct(value=decimal.Decimal("NaN")),
    ),
    "integer over the str digit limit": lambda: Observation.model_validate(
        observation(valueQuantity={"value": "1e5000"})
    ),
    "lone surrogate": _lone_surrogate,
    "field missing from __dict__": lambda: _without(
        Observation.model_validate(observation(valueString="v")), "valueString"
    ),
    "complex element that is not a model": lambda: _with(
        Observation.model_validate(observation()), code={"text": "x"}
    ),
}


@pytest.mark.parametrize("build", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_values_it_cannot_render_go_to_model_dump_json(build):
    assert_falls_back(build())
