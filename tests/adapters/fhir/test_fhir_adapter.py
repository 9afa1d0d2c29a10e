"""The FHIR adapter on its own: start-up checks, SMART options, writes with version checks."""

from __future__ import annotations

import pytest
import pytest_asyncio
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

import his_sdk
import his_sdk.errors
from adapters.fhir import WRITE_TAG_SYSTEM, FhirAdapter, FhirSettings, SettingsError
from his_sdk.adapter import ApprovedWrite, HealthState, Interaction
from his_sdk.config import RestSettings
from his_sdk.rest import RestServer
from his_sdk.search import SearchQuery, parse_criteria
from tests.adapters.fhir.fhir_helpers import (
    PATIENT,
    SYSTEM_SCOPES,
    Client,
    VersionedStore,
    public_jwks,
)


def test_es384_assertions_and_discovery_through_the_smart_configuration(
    gateway_a, agent_token, clean_proxy, token_server
):
    gateway = gateway_a(client_id="gateway-a-ec", algorithm="ES384")
    with his_sdk.HisClient.connect(
        f"127.0.0.1:{gateway.port}", token=agent_token(), timeout=20
    ) as client:
        assert client.read(Patient, PATIENT).id == PATIENT
    assert clean_proxy.requests[0] == "GET /.well-known/smart-configuration"
    ((_, adapter),) = gateway.router.adapters
    assert adapter.auth is not None and adapter.auth.fetches == 1


def test_start_fails_when_the_upstream_lacks_a_configured_type(gateway_a):
    with pytest.raises(his_sdk.errors.PreconditionFailedError) as info:
        gateway_a(types=["Patient", "Immunization"])
    assert "Immunization is not declared" in info.value.diagnostics


def test_start_fails_when_a_configured_parameter_is_not_declared(gateway_a):
    with pytest.raises(his_sdk.errors.PreconditionFailedError, match="value-quantity"):
        gateway_a(search_params={"Observation": ["patient", "value-quantity"]})


def test_configured_parameters_narrow_what_the_gateway_accepts(gateway_a):
    gateway = gateway_a(search_params={"Observation": ["patient", "code"]})
    capability = gateway.router.types()["Observation"]
    assert set(capability.search_params) == {"patient", "code"}


def test_start_fails_when_the_authorization_server_refuses_the_client(
    gateway_a, token_server, keys
):
    # Registered with the EC key, asserting with the RSA key.
    token_server.clients["gateway-a-wrong-key"] = Client(public_jwks(keys["ES384"]), SYSTEM_SCOPES)
    with pytest.raises(his_sdk.UpstreamUnavailableError, match="refused this gateway's token"):
        gateway_a(client_id="gateway-a-wrong-key", register=False)
    assert token_server.rejections[-1].startswith("bad signature")


def test_settings_are_validated_with_named_keys():
    with pytest.raises(SettingsError, match="base_url"):
        FhirAdapter.from_settings({"base_url": "ftp://x", "types": ["Patient"]})
    with pytest.raises(SettingsError, match="types"):
        FhirAdapter.from_settings({"base_url": "http://x", "types": []})
    with pytest.raises(SettingsError, match="retries"):
        FhirAdapter.from_settings({"base_url": "http://x", "types": ["Patient"], "retries": 3})


@pytest_asyncio.fixture
async def store():
    """A versioned FHIR server on loopback and a started adapter with writes on."""
    data = VersionedStore()
    data.put(
        {
            "resourceType": "Patient",
            "id": "p1",
            "gender": "female",
            "meta": {"lastUpdated": "2024-01-01T00:00:00Z"},
        }
    )
    server = RestServer(data.app(), RestSettings(port=0))
    port = await server.start()
    adapter = FhirAdapter(
        FhirSettings(
            base_url=f"http://127.0.0.1:{port}", types=["Patient", "Observation"], writes=True
        )
    )
    await adapter.start()
    try:
        yield data, adapter
    finally:
        await adapter.close()
        await server.stop(0)


def _observation() -> Observation:
    return Observation.model_validate(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"},
        }
    )


async def test_an_approved_create_runs_once_per_key(store):
    data, adapter = store
    write = ApprovedWrite("key-1", Interaction.CREATE, "Observation", resource=_observation())
    first = await adapter.execute(write)
    again = await adapter.execute(write)
    assert first.resource_id == again.resource_id and first.version_id == "1"
    assert first.message == "created" and again.message == "already created"
    assert data.creates == 1
    stored = data.resources[("Observation", first.resource_id)]
    assert {"system": WRITE_TAG_SYSTEM, "code": "key-1"} in stored["meta"]["tag"]


async def test_an_update_approved_on_an_old_version_cannot_overwrite_a_newer_one(store):
    data, adapter = store
    patient = await adapter.read("Patient", "p1")
    changed = patient.model_copy(update={"gender": "other"})
    done = await adapter.execute(
        ApprovedWrite("key-2", Interaction.UPDATE, "Patient", "p1", changed, expected_version="1")
    )
    assert done.version_id == "2" and data.resources[("Patient", "p1")]["gender"] == "other"
    # The same approval executed again is recognised by its tag, not applied twice.
    replay = await adapter.execute(
        ApprovedWrite("key-2", Interaction.UPDATE, "Patient", "p1", changed, expected_version="1")
    )
    assert replay.version_id == "2" and replay.message == "already applied"
    # Another approval made against version 1 is refused: the patient is at version 2.
    stale = patient.model_copy(update={"gender": "male"})
    with pytest.raises(his_sdk.errors.ConflictError) as info:
        await adapter.execute(
            ApprovedWrite("key-3", Interaction.UPDATE, "Patient", "p1", stale, expected_version="1")
        )
    assert "approved against version 1, upstream has version 2" in info.value.diagnostics
    assert data.resources[("Patient", "p1")]["gender"] == "other"


async def test_writes_need_the_setting_and_a_version(store):
    _, adapter = store
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="version"):
        await adapter.execute(
            ApprovedWrite("k", Interaction.UPDATE, "Patient", "p1", _observation())
        )
    with pytest.raises(his_sdk.errors.UnsupportedError):
        await adapter.execute(
            ApprovedWrite("k", Interaction.CREATE, "Task", resource=_observation())
        )
    with pytest.raises(his_sdk.errors.UnsupportedError, match="delete"):
        await adapter.execute(ApprovedWrite("k", Interaction.DELETE, "Patient", "p1"))


async def test_search_by_tag_and_health_against_a_plain_fhir_server(store):
    _, adapter = store
    await adapter.execute(
        ApprovedWrite("key-4", Interaction.CREATE, "Observation", resource=_observation())
    )
    params = adapter.capabilities().types["Observation"].search_params
    criteria = parse_criteria("Observation", [("_tag", f"{WRITE_TAG_SYSTEM}|key-4")], params)
    page = await adapter.search(SearchQuery("Observation", criteria, count=10, include_total=True))
    assert page.total == 1 and page.resources[0].subject.reference == "Patient/p1"
    assert (await adapter.health()).state is HealthState.SERVING
    facts = await adapter.patient_facts("p1")
    assert facts.exists and not facts.care_team
    assert not (await adapter.patient_facts("nobody")).exists


async def test_a_foreign_paging_link_is_refused(store):
    _, adapter = store
    query = SearchQuery("Observation", count=1, position="http://elsewhere.example/Observation?x=1")
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="not this upstream"):
        await adapter.search(query)


async def test_an_unreachable_upstream_is_unavailable_and_trips_the_breaker():
    adapter = FhirAdapter(
        FhirSettings(
            base_url="http://127.0.0.1:9",
            types=["Patient"],
            retry={"attempts": 2, "backoff_seconds": 0.01},
            breaker={"failure_threshold": 2, "reset_seconds": 60},
        )
    )
    with pytest.raises(his_sdk.UpstreamUnavailableError, match="cannot be reached"):
        await adapter.start()
    assert (await adapter.health()).state is HealthState.NOT_SERVING
