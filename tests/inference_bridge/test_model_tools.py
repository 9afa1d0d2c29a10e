"""The catalog's models as governed tools: listed by a real gateway, run through the bridge."""

from __future__ import annotations

import pytest

import his_sdk
import his_sdk.errors
from his_sdk.config import InferenceGatewaySettings
from his_sdk.server import Gateway
from his_sdk.tools import RiskLevel, ValidationStatus
from tests.conftest import GatewayThread
from tests.fixtures import MemoryAdapter
from tests.inference_bridge.ib_helpers import CLINICIAN_SCOPES, breast_observations

TOOL = "infer_breast_fna_malignancy"


@pytest.fixture
def gateway_with_bridge(settings):
    adapter = MemoryAdapter(
        [{"resourceType": "Patient", "id": "p1"}],
        care_teams={"p1": frozenset({"Practitioner/dr1"})},
    )
    configured = settings.model_copy(update={"inference": InferenceGatewaySettings(enabled=True)})
    with GatewayThread(Gateway(configured, adapters=[("memory", adapter)])) as gw:
        yield gw


def test_model_tools_are_listed_and_run_through_the_bridge(gateway_with_bridge, mint, samples):
    target = f"127.0.0.1:{gateway_with_bridge.port}"
    token = mint(
        CLINICIAN_SCOPES,
        roles=("clinician",),
        act_subject="dr.one",
        act_fhir_user="Practitioner/dr1",
    )
    arguments = {"patient_id": "p1", "resources": breast_observations(samples.breast_x[0])}
    with his_sdk.HisClient.connect(target, token=token) as client:
        tools = {t.name: t for t in client.list_tools(category="inference")}
        result = client.invoke_tool(TOOL, arguments)
    assert set(tools) == {TOOL, "infer_diabetes_progression"}
    descriptor = tools[TOOL]
    assert descriptor.risk is RiskLevel.MEDIUM
    assert descriptor.validation.status is ValidationStatus.EXPERIMENTAL
    assert descriptor.provenance.licence == "Apache-2.0"
    assert descriptor.provenance.version == "1"
    assert descriptor.permission.smart_scope == "user/RiskAssessment.c"
    assert descriptor.permission.oso_permission == "create:RiskAssessment"
    assert not descriptor.annotations.read_only_hint
    assert descriptor.annotations.idempotent_hint
    assert not descriptor.annotations.open_world_hint
    assert "Observation" in str(descriptor.input_schema)
    assert isinstance(result, dict)
    assert [r["resourceType"] for r in result["results"]] == ["RiskAssessment"]
    assert result["results"][0]["subject"]["reference"] == "Patient/p1"
    assert 0.0 <= result["prediction"] <= 1.0

    no_scope = mint(
        "user/Observation.rs",
        roles=("clinician",),
        act_subject="dr.one",
        act_fhir_user="Practitioner/dr1",
    )
    with his_sdk.HisClient.connect(target, token=no_scope) as client:
        with pytest.raises(his_sdk.errors.PermissionDeniedError):
            client.invoke_tool(TOOL, arguments)
        assert TOOL not in {t.name for t in client.list_tools(invocable_only=True)}

    # Outside the care team: the registry's scope check passes, the bridge's policy refuses.
    outsider = mint(
        CLINICIAN_SCOPES, roles=("clinician",), act_subject="dr.x", act_fhir_user="Practitioner/x"
    )
    with his_sdk.HisClient.connect(target, token=outsider) as client:
        with pytest.raises(his_sdk.errors.PermissionDeniedError):
            client.invoke_tool(TOOL, arguments)
