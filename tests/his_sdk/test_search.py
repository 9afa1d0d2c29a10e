from datetime import datetime

import pytest

import his_sdk.errors
from his_sdk.search import (
    DateValue,
    ParamType,
    ReferenceValue,
    SearchParamDef,
    StringValue,
    TokenValue,
    lift_result_parameters,
    parse_criteria,
    parse_date_value,
)

DEFS = {
    "code": SearchParamDef("code", ParamType.TOKEN),
    "name": SearchParamDef("name", ParamType.STRING),
    "date": SearchParamDef("date", ParamType.DATE),
    "patient": SearchParamDef("patient", ParamType.REFERENCE, target="Patient"),
}


@pytest.mark.parametrize(
    ("raw", "prefix", "lower", "upper"),
    [
        ("2020", "eq", datetime(2020, 1, 1), datetime(2021, 1, 1)),
        ("ge2020-02", "ge", datetime(2020, 2, 1), datetime(2020, 3, 1)),
        ("lt2020-12", "lt", datetime(2020, 12, 1), datetime(2021, 1, 1)),
        ("2020-02-29", "eq", datetime(2020, 2, 29), datetime(2020, 3, 1)),
        ("gt2020-03-01T10:00", "gt", datetime(2020, 3, 1, 10), datetime(2020, 3, 1, 10, 1)),
        (
            "2020-03-01T10:00:05Z",
            "eq",
            datetime(2020, 3, 1, 10, 0, 5),
            datetime(2020, 3, 1, 10, 0, 6),
        ),
        ("2020-03-01T10:00:00+02:00", "eq", datetime(2020, 3, 1, 8), datetime(2020, 3, 1, 8, 0, 1)),
    ],
)
def test_date_values_become_half_open_intervals(raw, prefix, lower, upper):
    assert parse_date_value(raw) == DateValue(prefix, lower, upper)


def test_approximate_dates_widen_by_a_tenth_of_the_distance_to_now():
    value = parse_date_value("ap2020-01-01", now=datetime(2030, 1, 1))
    assert value.lower < datetime(2019, 1, 1) and value.upper > datetime(2021, 1, 1)


@pytest.mark.parametrize("raw", ["2020-13", "2020-02-30", "20", "yesterday", "2020-1-1"])
def test_bad_dates_are_invalid_arguments(raw):
    with pytest.raises(his_sdk.errors.InvalidRequestError):
        parse_date_value(raw)


def test_tokens_strings_references_and_or_lists():
    criteria = parse_criteria(
        "Observation",
        [
            ("code", "http://loinc.org|8867-4,|local,http://loinc.org|"),
            ("name:exact", "Smith\\,Jr"),
            ("patient", "Patient/12"),
            ("patient", "13"),
        ],
        DEFS,
    )
    assert criteria[0].values == (
        TokenValue("http://loinc.org", "8867-4"),
        TokenValue("", "local"),
        TokenValue("http://loinc.org", None),
    )
    assert criteria[1].modifier == "exact"
    assert criteria[1].values == (StringValue("Smith,Jr"),)
    assert criteria[2].values == (ReferenceValue("Patient", "12"),)
    assert criteria[3].values == (ReferenceValue("Patient", "13"),)


def test_missing_modifier_carries_a_boolean():
    (criterion,) = parse_criteria("Observation", [("date:missing", "true")], DEFS)
    assert criterion.missing is True and criterion.values == ()


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ([("value-quantity", "gt5")], his_sdk.errors.UnsupportedParameterError),
        ([("_sort", "date")], his_sdk.errors.UnsupportedParameterError),
        ([("code:text", "x")], his_sdk.errors.UnsupportedParameterError),
        ([("patient", "Group/1")], his_sdk.errors.InvalidRequestError),
        ([("patient:Group", "1")], his_sdk.errors.InvalidRequestError),
        ([("code", "")], his_sdk.errors.InvalidRequestError),
        ([("date:missing", "maybe")], his_sdk.errors.InvalidRequestError),
    ],
)
def test_unsupported_or_malformed_parameters_are_refused(params, error):
    with pytest.raises(error) as info:
        parse_criteria("Observation", params, DEFS)
    assert info.value.operation_outcome()["issue"][0]["expression"]


def test_result_parameters_are_lifted_and_checked():
    lifted = lift_result_parameters(
        [
            ("_count", "5"),
            ("_elements", "id,code"),
            ("_summary", "true"),
            ("_total", "accurate"),
            ("code", "x"),
        ]
    )
    assert lifted.count == 5 and lifted.elements == ("id", "code")
    assert lifted.include_total and lifted.rest == (("code", "x"),)
    with pytest.raises(his_sdk.errors.InvalidRequestError):
        lift_result_parameters([("_count", "-1")])
    with pytest.raises(his_sdk.errors.InvalidRequestError):
        lift_result_parameters([("_summary", "everything")])
