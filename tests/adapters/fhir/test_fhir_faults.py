"""Faults injected between gateway A and gateway B: slow, 503/429 with Retry-After, resets,
expired tokens, an upstream that stays down (circuit breaker)."""

from __future__ import annotations

import time

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

import his_sdk
import his_sdk.errors
from his_sdk.adapter import HealthState
from tests.adapters.fhir.fhir_helpers import PATIENT, Fault

SEARCH = {"patient": PATIENT, "category": "vital-signs"}


def connect(gateway, token):
    return his_sdk.HisClient.connect(f"127.0.0.1:{gateway.port}", token=token, timeout=20)


def adapter_of(gateway):
    ((_, adapter),) = gateway.router.adapters
    return adapter


def searches(proxy) -> int:
    return sum(r == "GET /Observation" for r in proxy.requests)


@pytest.fixture
def warm(gateway_a, agent_token, clean_proxy):
    """Gateway A with the patient's facts cached, so the next upstream call is the search."""

    def start(**fhir):
        gateway = gateway_a(**fhir)
        client = connect(gateway, agent_token())
        client.read(Patient, PATIENT)
        clean_proxy.requests.clear()
        return gateway, client

    return start


def test_a_slow_answer_times_out_and_the_retry_succeeds(warm, clean_proxy):
    _, client = warm(timeout_seconds=0.4)
    clean_proxy.inject(Fault("slow", path="/Observation", delay=1.0))
    with client:
        started = time.monotonic()
        page = client.search(Observation, SEARCH)
    assert page.resources and 0.4 <= time.monotonic() - started < 1.5
    assert searches(clean_proxy) == 2


def test_an_upstream_slower_than_every_try_is_deadline_exceeded(warm, clean_proxy):
    _, client = warm(timeout_seconds=0.3, retry={"attempts": 2, "backoff_seconds": 0.01})
    clean_proxy.inject(Fault("slow", path="/Observation", delay=0.8), times=2)
    with client, pytest.raises(his_sdk.errors.DeadlineExceededError, match="in time"):
        client.search(Observation, SEARCH)


def test_503_with_retry_after_is_waited_out(warm, clean_proxy):
    _, client = warm()
    clean_proxy.inject(Fault("status", path="/Observation", status=503, retry_after="1"))
    with client:
        started = time.monotonic()
        page = client.search(Observation, SEARCH)
    assert page.resources and time.monotonic() - started >= 0.95
    assert searches(clean_proxy) == 2


def test_429_and_502_are_retried(warm, clean_proxy):
    _, client = warm()
    clean_proxy.inject(Fault("status", path="/Observation", status=429, retry_after="0"))
    clean_proxy.inject(Fault("status", path="/Observation", status=502))
    with client:
        assert client.search(Observation, SEARCH).resources
    assert searches(clean_proxy) == 3


def test_retry_after_beyond_the_limit_fails_at_once(warm, clean_proxy):
    _, client = warm()
    clean_proxy.inject(Fault("status", path="/Observation", status=503, retry_after="120"))
    with client:
        started = time.monotonic()
        with pytest.raises(his_sdk.UpstreamUnavailableError) as info:
            client.search(Observation, SEARCH)
    assert time.monotonic() - started < 1
    assert "Retry-After 120s" in info.value.diagnostics


def test_throttling_that_outlasts_the_retries_is_resource_exhausted(warm, clean_proxy):
    _, client = warm()
    clean_proxy.inject(Fault("status", path="/Observation", status=429, retry_after="0"), times=3)
    with client, pytest.raises(his_sdk.errors.ResourceExhaustedError, match="throttling"):
        client.search(Observation, SEARCH)


def test_a_reset_connection_is_retried(warm, clean_proxy):
    _, client = warm()
    clean_proxy.inject(Fault("reset", path="/Observation"))
    with client:
        assert client.search(Observation, SEARCH).resources
    assert searches(clean_proxy) == 2


def test_an_expired_token_is_replaced_and_the_call_repeated(
    gateway_a, agent_token, token_server, clean_proxy
):
    # The authorization server hands out one token that is already expired.
    token_server.expired_to_issue = 1
    issued = token_server.issued
    gateway = gateway_a()
    auth = adapter_of(gateway).auth
    with connect(gateway, agent_token()) as client:
        assert client.read(Patient, PATIENT).id == PATIENT
    assert auth.fetches == 2 and token_server.issued == issued + 2
    assert token_server.expired_to_issue == 0


def test_tokens_are_cached_and_refreshed_before_they_expire(gateway_a, agent_token):
    # Tokens live 300 s; with a 299.5 s margin the cached one is stale after half a second.
    gateway = gateway_a(
        client_id="gateway-a-refresh", auth_overrides={"refresh_margin_seconds": 299.5}
    )
    auth = adapter_of(gateway).auth
    with connect(gateway, agent_token()) as client:
        for _ in range(3):
            client.read(Patient, PATIENT)
        assert auth.fetches == 1
        time.sleep(0.6)
        client.read(Patient, PATIENT)
    assert auth.fetches == 2


def test_the_breaker_opens_fails_fast_and_closes_after_a_probe(warm, clean_proxy, loop):
    gateway, client = warm(
        retry={"attempts": 1}, breaker={"failure_threshold": 3, "reset_seconds": 1}
    )
    adapter = adapter_of(gateway)
    clean_proxy.inject(Fault("status", path="/Observation", status=503), times=100)
    with client:
        for _ in range(3):
            with pytest.raises(his_sdk.UpstreamUnavailableError, match="HTTP 503"):
                client.search(Observation, SEARCH)
        assert searches(clean_proxy) == 3
        started = time.monotonic()
        with pytest.raises(his_sdk.UpstreamUnavailableError, match="refused for now"):
            client.search(Observation, SEARCH)
        assert time.monotonic() - started < 0.2 and searches(clean_proxy) == 3
        health = loop.run(adapter.health())
        assert health.state is HealthState.NOT_SERVING
        clean_proxy.faults.clear()
        time.sleep(1.05)
        assert client.search(Observation, SEARCH).resources
        assert adapter.upstream.breaker.state.value == "closed"
