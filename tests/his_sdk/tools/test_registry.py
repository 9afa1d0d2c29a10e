"""ToolRegistry over gRPC through both SDK clients: listing, authorization, risk and approval."""

from __future__ import annotations

import grpc
import pytest
from fhir.resources.R4B.task import Task

import his_sdk
import his_sdk.errors
from his_sdk.server import Gateway
from his_sdk.tools import RiskLevel, ToolDescriptor, ValidationStatus
from tests.conftest import AUDIENCE, GatewayThread
from tests.fixtures import MemoryAdapter
from tests.his_sdk.server.conftest import CARE_TEAMS, RESOURCES
from tests.his_sdk.tools.conftest import CLINICIAN, tool_settings

OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 72, "unit": "/min"},
}


def test_list_is_filtered_by_what_the_principal_may_invoke(target, clinician_token, readonly_token):
    with his_sdk.HisClient.connect(target, token=clinician_token) as client:
        everything = {t.name for t in client.list_tools()}
        clinician = {t.name for t in client.list_tools(invocable_only=True)}
    with his_sdk.HisClient.connect(target, token=readonly_token) as client:
        readonly = {t.name for t in client.list_tools(invocable_only=True)}
    assert {"read_patient", "search_observation", "propose_create_observation", "bmi"} <= everything
    assert "propose_create_observation" in clinician and "cha2ds2_vasc" in clinician
    # agent-readonly may read and search Patient and Observation, and run the calculators
    # that need Observation.r; no writes, nothing needing Condition.
    assert "propose_create_observation" not in readonly
    assert "cha2ds2_vasc" not in readonly
    assert {"read_patient", "search_observation", "bmi", "qtc_bazett"} <= readonly


def test_list_filters_by_risk_category_and_validation(target, clinician_token):
    with his_sdk.HisClient.connect(target, token=clinician_token) as client:
        low = client.list_tools(max_risk=RiskLevel.LOW)
        calculators = client.list_tools(category="calculator")
        validated = client.list_tools(validation_status="validated")
        experimental = client.list_tools(validation_status=ValidationStatus.EXPERIMENTAL)
    assert low and all(t.risk is RiskLevel.LOW for t in low)
    assert "propose_create_observation" not in {t.name for t in low}
    assert len(calculators) == 6 and all(t.category == "calculator" for t in calculators)
    assert validated and experimental == []


def test_get_tool_round_trips_the_descriptor(target, clinician_token, gateway):
    with his_sdk.HisClient.connect(target, token=clinician_token) as client:
        descriptor = client.get_tool("ckd_epi_2021")
        with pytest.raises(his_sdk.NotFoundError):
            client.get_tool("no_such_tool")
    assert isinstance(descriptor, ToolDescriptor)
    assert descriptor.provenance.source.startswith("Inker LA")
    assert descriptor.permission.smart_scope == "patient/Observation.r"
    assert descriptor.annotations.read_only_hint
    assert descriptor.input_schema["required"] == ["creatinine", "age", "sex"]


def test_low_risk_calculator_runs_at_once(target, readonly_token):
    with his_sdk.HisClient.connect(target, token=readonly_token) as client:
        result = client.invoke_tool("bmi", {"weight": 70, "height": 175})
    assert result == {"value": 22.9, "unit": "kg/m2", "category": "normal weight"}


def test_invalid_arguments_are_invalid_argument_with_the_outcome_text(target, readonly_token):
    with his_sdk.HisClient.connect(target, token=readonly_token) as client:
        with pytest.raises(his_sdk.InvalidRequestError) as schema:
            client.invoke_tool("bmi", {"weight": "heavy", "height": 175})
        with pytest.raises(his_sdk.InvalidRequestError) as unit:
            client.invoke_tool("bmi", {"weight": 70, "height": 1.75})
    assert "invalid arguments for bmi" in schema.value.message
    assert schema.value.expression == ["weight"]
    assert "outside the plausible range" in unit.value.message


def test_denied_call(target, readonly_token):
    with his_sdk.HisClient.connect(target, token=readonly_token) as client:
        with pytest.raises(his_sdk.PermissionDeniedError) as raised:
            client.invoke_tool("cha2ds2_vasc", {"age": 70, "sex": "female"})
    assert "token lacks a scope granting r on Condition" in raised.value.message


def test_search_tool_pages_with_a_cursor_and_summaries(target, clinician_token):
    with his_sdk.HisClient.connect(target, token=clinician_token) as client:
        first = client.invoke_tool(
            "search_observation", {"params": {"patient": "p1"}, "count": 3, "total": True}
        )
        assert isinstance(first, dict)
        second = client.invoke_tool(
            "search_observation",
            {
                "params": {"patient": "p1"},
                "count": 3,
                "total": True,
                "cursor": first["next_cursor"],
            },
        )
    assert first["total"] == 8 and first["count"] == 3 and first["next_cursor"]
    assert isinstance(second, dict) and second["count"] == 3
    ids = [r["id"] for r in first["resources"]] + [r["id"] for r in second["resources"]]
    assert len(set(ids)) == 6
    # Summaries by default (FHIR _summary=true), tagged SUBSETTED.
    assert all(r["meta"]["tag"][-1]["code"] == "SUBSETTED" for r in first["resources"])


async def test_high_risk_call_returns_the_approval_task(target, clinician_token, queue):
    async with his_sdk.AsyncHisClient.connect(target, token=clinician_token) as client:
        with pytest.raises(his_sdk.InvalidRequestError, match="justification"):
            await client.invoke_tool("propose_create_observation", {"resource": OBSERVATION})
        task = await client.invoke_tool(
            "propose_create_observation",
            {"resource": OBSERVATION},
            justification="heart rate measured at the bedside",
            idempotency_key="hr-1",
        )
        again = await client.invoke_tool(
            "propose_create_observation",
            {"resource": OBSERVATION},
            justification="heart rate measured at the bedside",
            idempotency_key="hr-1",
        )
        tools = await client.list_tools(category="fhir.write")
    assert isinstance(task, Task) and task.status == "requested"
    assert isinstance(again, Task) and again.id == task.id
    assert queue.proposals[-1].patient_id == "p1"
    assert [t.risk for t in tools] == [RiskLevel.HIGH]


def test_high_risk_without_approvals_is_failed_precondition(issuer, tmp_path):
    settings = tool_settings(issuer, tmp_path)
    settings = settings.model_copy(
        update={"approvals": settings.approvals.model_copy(update={"enabled": False})}
    )
    adapter = _writable(RESOURCES)
    token = issuer.mint(
        audience=AUDIENCE, scopes="user/Observation.cruds", client_id="agent-1", **CLINICIAN
    )
    with GatewayThread(Gateway(settings, adapters=[("memory", adapter)])) as gw:
        channel = grpc.insecure_channel(f"127.0.0.1:{gw.port}")
        with his_sdk.HisClient(channel, token=token) as client:
            with pytest.raises(his_sdk.errors.PreconditionFailedError) as raised:
                client.invoke_tool(
                    "propose_create_observation",
                    {"resource": OBSERVATION},
                    justification="heart rate measured at the bedside",
                )
    assert "approvals are not configured" in raised.value.message


def _writable(resources) -> MemoryAdapter:
    from tests.his_sdk.rest.rest_helpers import WritableMemoryAdapter

    return WritableMemoryAdapter(resources, care_teams=CARE_TEAMS)
