"""The public names of ``his_sdk.tools``, ``his_sdk.tools.calculators`` and ``his_sdk.mcp``."""

import his_sdk.mcp
import his_sdk.tools
import his_sdk.tools.calculators


def test_exports_are_pinned():
    assert set(his_sdk.tools.__all__) == {
        "FunctionTool",
        "ModelToolSource",
        "Provenance",
        "RequiredPermission",
        "RiskLevel",
        "Tool",
        "ToolAnnotations",
        "ToolCall",
        "ToolDescriptor",
        "ToolFunction",
        "ToolOutcome",
        "ToolRegistry",
        "ToolRegistryServicer",
        "Validation",
        "ValidationStatus",
        "descriptor_from_proto",
        "descriptor_to_proto",
        "fhir_tools",
        "load_function_tool",
        "mcp_command",
        "risk_from_proto",
        "risk_to_proto",
        "snake_case",
        "validation_status_from_proto",
        "validation_status_to_proto",
    }
    assert set(his_sdk.mcp.__all__) == {
        "DEFAULT_MAX_RESULT_BYTES",
        "HisMcpServer",
        "McpHttpApp",
        "budget_result",
        "serve_http",
        "serve_stdio",
    }
    for module in (his_sdk.tools, his_sdk.tools.calculators, his_sdk.mcp):
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_integrator_tool_declared_in_config_is_served(tmp_path, issuer):
    import his_sdk
    from his_sdk.config import RegisteredToolSettings, ToolSettings
    from his_sdk.server import Gateway
    from tests.conftest import AUDIENCE, GatewayThread
    from tests.fixtures import MemoryAdapter
    from tests.his_sdk.tools.conftest import READONLY, READONLY_SCOPES, tool_settings

    descriptor = tmp_path / "mean_arterial_pressure.yaml"
    descriptor.write_text(
        """
name: mean_arterial_pressure
title: Mean arterial pressure
description: MAP = diastolic + (systolic - diastolic) / 3, in mmHg.
category: calculator
input_schema:
  type: object
  properties: {systolic: {type: number}, diastolic: {type: number}}
  required: [systolic, diastolic]
provenance: {owner: ward 7, version: "0.1"}
validation: {status: experimental}
risk: low
permission: {smart_scope: user/Observation.r, oso_permission: "read:Observation"}
"""
    )
    tools = ToolSettings(
        fhir=False,
        calculators=False,
        registered=[
            RegisteredToolSettings(
                implementation="tests.his_sdk.tools.tool_helpers:mean_arterial_pressure",
                descriptor=descriptor,
            )
        ],
    )
    settings = tool_settings(issuer, tmp_path, tools=tools)
    token = issuer.mint(audience=AUDIENCE, scopes=READONLY_SCOPES, client_id="a", **READONLY)
    adapter = MemoryAdapter([{"resourceType": "Patient", "id": "p1"}])
    with GatewayThread(Gateway(settings, adapters=[("memory", adapter)])) as gw:
        with his_sdk.HisClient.connect(f"127.0.0.1:{gw.port}", token=token) as client:
            (listed,) = client.list_tools()
            result = client.invoke_tool(
                "mean_arterial_pressure", {"systolic": 120, "diastolic": 90}
            )
    assert listed.validation.status is his_sdk.tools.ValidationStatus.EXPERIMENTAL
    assert result == {"value": 100, "unit": "mm[Hg]"}
    assert his_sdk.tools.snake_case("MedicationRequest") == "medication_request"
