"""Agent -> gateway A (FhirAdapter) -> gateway B facade -> legacy SQL, each with its policy."""

from __future__ import annotations

import asyncio

import pytest
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

import adapters.sql
import his_sdk
import his_sdk.errors
import his_sdk.search
from tests.adapters.fhir.fhir_helpers import PATIENT, STRANGER


def connect(gateway, token):
    return his_sdk.HisClient.connect(f"127.0.0.1:{gateway.port}", token=token, timeout=20)


def legacy_observation_ids(legacy_url: str) -> list[str]:
    async def run() -> list[str]:
        adapter = adapters.sql.SqlAdapter(legacy_url)
        await adapter.start()
        try:
            page = await adapter.search(his_sdk.search.SearchQuery("Observation", count=500))
        finally:
            await adapter.close()
        return [o.id for o in page.resources]

    return asyncio.run(run())


def test_agent_reads_a_legacy_patient_through_both_gateways(gateway_a, agent_token, proxy):
    gateway = gateway_a()
    with connect(gateway, agent_token()) as client:
        patient = client.read(Patient, PATIENT)
    assert isinstance(patient, Patient) and patient.id == PATIENT
    assert patient.generalPractitioner[0].reference == "Practitioner/1"
    assert "GET /Patient/1" in proxy.requests


def test_agent_pages_observations_across_both_cursors(gateway_a, agent_token, legacy_url):
    gateway = gateway_a()
    with connect(gateway, agent_token()) as client:
        first = client.search(Observation, {"patient": PATIENT}, count=5, total=True)
        ids = [o.id for o in client.search_all(Observation, {"patient": PATIENT}, count=5)]
    expected = legacy_observation_ids(legacy_url)
    assert first.total == len(expected) == 18
    assert len(first) == 5 and first.next_cursor
    assert ids == expected


def test_search_parameters_are_the_upstreams_and_checked_before_calling_out(
    gateway_a, agent_token, proxy
):
    gateway = gateway_a()
    with connect(gateway, agent_token()) as client:
        statement = client.capabilities()
        params = {r.type: {p.name for p in r.searchParam or []} for r in statement.rest[0].resource}
        assert {"patient", "code", "category", "date", "status"} <= params["Observation"]
        before = len(proxy.requests)
        with pytest.raises(his_sdk.UnsupportedParameterError, match="value-quantity"):
            client.search(Observation, {"patient": PATIENT, "value-quantity": "gt5"})
        assert len(proxy.requests) == before
        vitals = client.search(
            Observation,
            {"patient": PATIENT, "category": "vital-signs", "date": "ge2000-01-01"},
            count=50,
        )
    assert vitals.resources and all(o.category[0].coding[0].code == "vital-signs" for o in vitals)


def test_gateway_a_enforces_its_policy_before_the_upstream(gateway_a, agent_token, proxy):
    gateway = gateway_a()
    with connect(gateway, agent_token("user/Patient.rs")) as client:
        with pytest.raises(his_sdk.PermissionDeniedError, match="Observation"):
            client.search(Observation, {"patient": PATIENT})
        # Only the patient's facts were asked for; the search itself never left gateway A.
        assert not any("Observation" in r for r in proxy.requests)
    with connect(gateway, agent_token(**STRANGER)) as client:
        with pytest.raises(his_sdk.PermissionDeniedError, match="care team"):
            client.read(Patient, PATIENT)


def test_gateway_b_enforces_its_policy_on_gateway_a(gateway_a, agent_token):
    # B's authorization server grants this client Patient only.
    gateway = gateway_a(client_id="gateway-a-narrow", allowed={"system/Patient.rs"})
    with connect(gateway, agent_token()) as client:
        assert client.read(Patient, PATIENT).id == PATIENT
        with pytest.raises(his_sdk.PermissionDeniedError) as info:
            client.search(Condition, {"patient": PATIENT})
    assert "upstream" in info.value.message
    assert "Condition" in (info.value.diagnostics or "")


def test_unknown_ids_are_not_found_through_both_gateways(gateway_a, agent_token):
    gateway = gateway_a()
    with connect(gateway, agent_token()) as client:
        with pytest.raises(his_sdk.NotFoundError, match="Observation/lab-999999"):
            client.read(Observation, "lab-999999")
