"""Pure parts of the FHIR adapter: query writing, Retry-After, the breaker, /metadata parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import his_sdk.errors
from adapters.fhir import BreakerState, CircuitBreaker
from adapters.fhir._capabilities import UpstreamCapabilities
from adapters.fhir._params import query_parameters
from adapters.fhir._resilience import backoff_delay, parse_retry_after
from adapters.fhir._transport import error_for
from his_sdk.search import ParamType, SearchParamDef, parse_criteria

DEFS = {
    "code": SearchParamDef("code", ParamType.TOKEN),
    "date": SearchParamDef("date", ParamType.DATE),
    "patient": SearchParamDef("patient", ParamType.REFERENCE, target="Patient"),
    "name": SearchParamDef("name", ParamType.STRING),
    "value": SearchParamDef("value", ParamType.NUMBER),
}


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        (("code", "http://loinc.org|1234-5,abc"), ("code", "http://loinc.org|1234-5,abc")),
        (("code:not", "|x"), ("code:not", "|x")),
        (("date", "ge2020"), ("date", "ge2020")),
        (("date", "lt2020-02"), ("date", "lt2020-02")),
        (("date", "2020-02-03"), ("date", "eq2020-02-03")),
        (("date", "gt2020-02-03T10:15Z"), ("date", "gt2020-02-03T10:15Z")),
        (("date", "2020-02-03T10:15:01+02:00"), ("date", "eq2020-02-03T08:15:01Z")),
        (("patient", "13"), ("patient", "Patient/13")),
        (("name:exact", "O\\,Brien"), ("name:exact", "O\\,Brien")),
        (("value", "gt5.5"), ("value", "gt5.5")),
        (("date:missing", "true"), ("date:missing", "true")),
    ],
)
def test_criteria_are_written_back_as_equivalent_parameters(raw, written):
    criteria = parse_criteria("Observation", [raw], DEFS)
    assert query_parameters(criteria) == [written]
    assert parse_criteria("Observation", [written], DEFS) == criteria


def test_retry_after_takes_seconds_and_http_dates():
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 01 May 2024 10:00:07 GMT", now=now) == 7.0
    assert parse_retry_after("Wed, 01 May 2024 09:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_grows_and_is_capped():
    assert 0.05 <= backoff_delay(1, 0.1, 5) <= 0.1
    assert 0.4 <= backoff_delay(4, 0.1, 5) <= 0.8
    assert backoff_delay(20, 0.1, 2) <= 2


def test_breaker_opens_at_the_threshold_and_admits_one_probe():
    now = [0.0]
    breaker = CircuitBreaker(2, 10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(his_sdk.errors.UpstreamUnavailableError, match="refused for now"):
        with breaker.admit():
            pass
    now[0] = 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    with breaker.admit():
        # A second caller while the probe is out is refused.
        with pytest.raises(his_sdk.errors.UpstreamUnavailableError), breaker.admit():
            pass
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    now[0] = 20.0
    with breaker.admit():
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_upstream_statuses_map_to_gateway_errors_with_the_upstreams_reason():
    body = b'{"resourceType":"OperationOutcome","issue":[{"details":{"text":"no scope"}}]}'
    denied = error_for(403, body, "GET /fhir/Observation")
    assert isinstance(denied, his_sdk.errors.PermissionDeniedError)
    assert denied.diagnostics == "upstream: no scope"
    assert "GET /fhir/Observation" in denied.message
    assert isinstance(error_for(410, b"", "x"), his_sdk.errors.GoneError)
    assert isinstance(error_for(412, b"", "x"), his_sdk.errors.ConflictError)
    assert isinstance(error_for(500, b"<html>", "x"), his_sdk.errors.UpstreamUnavailableError)
    assert isinstance(error_for(418, b"", "x"), his_sdk.errors.InvalidRequestError)


def test_capabilities_keep_parseable_parameters_and_always_offer_id():
    statement = {
        "resourceType": "CapabilityStatement",
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Observation",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": "patient", "type": "reference"},
                            {"name": "code", "type": "token"},
                            {"name": "code-value-quantity", "type": "composite"},
                        ],
                    }
                ],
            }
        ],
    }
    upstream = UpstreamCapabilities(statement)
    params = upstream.search_params("Observation", None)
    assert set(params) == {"patient", "code", "_id"}
    assert params["patient"].target == "Patient"
    assert upstream.interactions("Observation") == {"read", "search-type"}
    with pytest.raises(his_sdk.errors.PreconditionFailedError, match="code-value-quantity"):
        upstream.search_params("Observation", ["code-value-quantity"])
    with pytest.raises(his_sdk.errors.UpstreamDataError):
        UpstreamCapabilities({"resourceType": "Bundle"})
