"""The governed tool registry ("Medical MCP"): described, permissioned, audited tools.

A :class:`ToolDescriptor` documents each tool: schemas, provenance, validation evidence, risk
and the permission it needs. :class:`ToolRegistry` lists and invokes tools under the
gateway's policy and audit; high-risk tools become approval requests answered with a FHIR
Task. Tools come from the gateway's FHIR interactions, the shipped
:mod:`his_sdk.tools.calculators`, integrator functions declared in ``tools.registered``
(:class:`FunctionTool`) and, when the gateway has an inference bridge, its catalog's models
(through a :class:`ModelToolSource`). :class:`ToolRegistryServicer` serves the registry over
gRPC and :data:`mcp_command` (``his mcp``) over MCP.
"""

from his_sdk.tools._cli import mcp_command
from his_sdk.tools._converters import (
    descriptor_from_proto,
    descriptor_to_proto,
    risk_from_proto,
    risk_to_proto,
    validation_status_from_proto,
    validation_status_to_proto,
)
from his_sdk.tools._fhir_tools import fhir_tools, snake_case
from his_sdk.tools._model import (
    Provenance,
    RequiredPermission,
    RiskLevel,
    ToolAnnotations,
    ToolDescriptor,
    Validation,
    ValidationStatus,
)
from his_sdk.tools._registry import ToolRegistry
from his_sdk.tools._servicer import ToolRegistryServicer
from his_sdk.tools._tool import (
    FunctionTool,
    ModelToolSource,
    Tool,
    ToolCall,
    ToolFunction,
    ToolOutcome,
    load_function_tool,
)

__all__ = [
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
]
