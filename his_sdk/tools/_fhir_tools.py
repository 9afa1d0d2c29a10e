"""Tools generated from the gateway's FHIR interactions: read, search and propose-create."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import his_sdk
from his_sdk._fhir import patient_of, resource_to_dict, shape
from his_sdk.adapter import Interaction, TypeCapability
from his_sdk.search import SummaryMode
from his_sdk.tools._model import (
    Provenance,
    RequiredPermission,
    RiskLevel,
    ToolAnnotations,
    ToolDescriptor,
    Validation,
    ValidationStatus,
)
from his_sdk.tools._tool import Tool, ToolCall, ToolOutcome

if TYPE_CHECKING:
    from his_sdk.server._service import FhirService

__all__ = ["fhir_tools", "snake_case"]

_EVIDENCE = (
    "HL7 FHIR R4 RESTful API (https://hl7.org/fhir/R4/http.html); the gateway's conformance "
    "tests (tests/his_sdk/server, tests/his_sdk/rest)"
)
_SUMMARIES = ["true", "false", "text", "data"]
_RESOURCE = {"type": "object", "description": "A FHIR R4 resource as JSON"}


def snake_case(resource_type: str) -> str:
    """``MedicationRequest`` -> ``medication_request``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", resource_type).lower()


def _provenance() -> Provenance:
    return Provenance(
        owner="his-sdk gateway",
        version=his_sdk.__version__,
        source="FHIR interactions of the configured adapters",
        licence="Apache-2.0",
    )


def _shaped(resource: Any, elements: Sequence[str], summary: str | None) -> dict[str, Any]:
    return shape(resource_to_dict(resource), elements=elements, summary=summary)


def _elements(arguments: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(e) for e in arguments.get("elements", ()))


class FhirReadTool:
    """``read_<type>``: one resource by id."""

    def __init__(self, service: FhirService, capability: TypeCapability) -> None:
        self._service = service
        self._type = capability.resource_type
        self._descriptor = ToolDescriptor(
            name=f"read_{snake_case(self._type)}",
            title=f"Read {self._type}",
            description=(
                f"Read one FHIR R4 {self._type} by its logical id. Use 'summary': 'true' or "
                "'elements' to get only what you need."
            ),
            category="fhir.read",
            input_schema={
                "type": "object",
                "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"},
                    "elements": {"type": "array", "items": {"type": "string"}},
                    "summary": {"type": "string", "enum": _SUMMARIES, "default": "false"},
                },
                "required": ["id"],
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {"resource": _RESOURCE},
                "required": ["resource"],
            },
            provenance=_provenance(),
            validation=Validation(status=ValidationStatus.VALIDATED, evidence=_EVIDENCE),
            risk=RiskLevel.LOW,
            permission=RequiredPermission(
                smart_scope=f"patient/{self._type}.r", oso_permission=f"read:{self._type}"
            ),
            annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True),
        )

    @property
    def descriptor(self) -> ToolDescriptor:
        """The tool's descriptor."""
        return self._descriptor

    @property
    def proposes(self) -> bool:
        """False: reads act at once."""
        return False

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Read through the FHIR service (policy, audit, adapter)."""
        args = call.arguments
        resource = await self._service.read(call.call, self._type, str(args["id"]))
        summary = str(args.get("summary", "false"))
        data = _shaped(resource, _elements(args), summary)
        patient = patient_of(resource)
        return ToolOutcome(result={"resource": data}, patients=(patient,) if patient else ())


class FhirSearchTool:
    """``search_<type>``: one page of matches, summarised by default, with a paging cursor."""

    def __init__(self, service: FhirService, capability: TypeCapability, max_count: int) -> None:
        self._service = service
        self._type = capability.resource_type
        params = {
            name: {
                "description": f"{definition.type.value}: {definition.description}".rstrip(": "),
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            }
            for name, definition in sorted(capability.search_params.items())
        }
        listed = ", ".join(sorted(capability.search_params)) or "none"
        self._descriptor = ToolDescriptor(
            name=f"search_{snake_case(self._type)}",
            title=f"Search {self._type}",
            description=(
                f"Search FHIR R4 {self._type} resources; one page per call. Parameters: "
                f"{listed} (FHIR search syntax, e.g. 'Patient/1' for references, "
                "'system|code' for tokens). Results are summaries unless 'summary' is "
                "'false'; pass 'next_cursor' back as 'cursor' with the same parameters for "
                "the next page."
            ),
            category="fhir.search",
            input_schema={
                "type": "object",
                "properties": {
                    "params": {
                        "type": "object",
                        "properties": params,
                        "additionalProperties": False,
                    },
                    "count": {"type": "integer", "minimum": 1, "maximum": max_count},
                    "cursor": {"type": "string"},
                    "elements": {"type": "array", "items": {"type": "string"}},
                    "summary": {"type": "string", "enum": _SUMMARIES, "default": "true"},
                    "total": {"type": "boolean", "default": False},
                },
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {
                    "resource_type": {"type": "string"},
                    "count": {"type": "integer"},
                    "total": {"type": ["integer", "null"]},
                    "next_cursor": {"type": ["string", "null"]},
                    "resources": {"type": "array", "items": _RESOURCE},
                },
                "required": ["resource_type", "count", "resources", "next_cursor"],
            },
            provenance=_provenance(),
            validation=Validation(status=ValidationStatus.VALIDATED, evidence=_EVIDENCE),
            risk=RiskLevel.LOW,
            permission=RequiredPermission(
                smart_scope=f"patient/{self._type}.s", oso_permission=f"search:{self._type}"
            ),
            annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True),
        )

    @property
    def descriptor(self) -> ToolDescriptor:
        """The tool's descriptor."""
        return self._descriptor

    @property
    def proposes(self) -> bool:
        """False: searches act at once."""
        return False

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Search one page through the FHIR service (policy, audit, adapter)."""
        args = call.arguments
        pairs: list[tuple[str, str]] = []
        for name, value in dict(args.get("params") or {}).items():
            values = [value] if isinstance(value, str) else list(value)
            pairs.extend((name, str(v)) for v in values)
        elements = _elements(args)
        summary = None if elements else SummaryMode(str(args.get("summary", "true")))
        result = await self._service.search(
            call.call,
            self._type,
            pairs,
            count=args.get("count"),
            cursor=args.get("cursor"),
            elements=elements,
            summary=summary,
            include_total=bool(args.get("total", False)),
        )
        shaping = result.shaping
        mode = shaping.summary.value if shaping.summary else None
        resources = [_shaped(r, shaping.elements, mode) for r in result.resources]
        patients = tuple(sorted({p for r in result.resources if (p := patient_of(r))}))
        return ToolOutcome(
            result={
                "resource_type": self._type,
                "count": len(resources),
                "total": result.total,
                "next_cursor": result.next_cursor,
                "resources": resources,
            },
            patients=patients,
        )


class FhirCreateTool:
    """``propose_create_<type>``: a proposed create, queued for human approval (high risk)."""

    def __init__(self, service: FhirService, capability: TypeCapability) -> None:
        self._service = service
        self._type = capability.resource_type
        self._descriptor = ToolDescriptor(
            name=f"propose_create_{snake_case(self._type)}",
            title=f"Propose creating a {self._type}",
            description=(
                f"Propose recording a new FHIR R4 {self._type} in the EHR. Nothing is written "
                "until a human reviewer approves; the answer is the FHIR Task tracking the "
                "approval. Give a justification the reviewer can judge."
            ),
            category="fhir.write",
            input_schema={
                "type": "object",
                "properties": {
                    "resource": {
                        "type": "object",
                        "description": f"The {self._type} to create (resourceType "
                        f"'{self._type}'; any id is ignored)",
                    }
                },
                "required": ["resource"],
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {"task": _RESOURCE},
                "required": ["task"],
            },
            provenance=_provenance(),
            validation=Validation(status=ValidationStatus.VALIDATED, evidence=_EVIDENCE),
            risk=RiskLevel.HIGH,
            permission=RequiredPermission(
                smart_scope=f"patient/{self._type}.c", oso_permission=f"create:{self._type}"
            ),
            annotations=ToolAnnotations(
                read_only_hint=False,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=False,
            ),
        )

    @property
    def descriptor(self) -> ToolDescriptor:
        """The tool's descriptor."""
        return self._descriptor

    @property
    def proposes(self) -> bool:
        """True: the create waits in the approval queue."""
        return True

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Propose the create through the FHIR service; answer with the approval Task."""
        proposal = await self._service.create(
            call.call,
            self._type,
            dict(call.arguments["resource"]),
            justification=call.justification or "",
            idempotency_key=call.idempotency_key,
        )
        return ToolOutcome(task=proposal.task, replayed=proposal.replayed)


def fhir_tools(
    service: FhirService, types: Mapping[str, TypeCapability], *, max_count: int
) -> list[Tool]:
    """The read, search and propose-create tools of every served type, by type name."""
    tools: list[Tool] = []
    for name in sorted(types):
        capability = types[name]
        if Interaction.READ in capability.interactions:
            tools.append(FhirReadTool(service, capability))
        if Interaction.SEARCH in capability.interactions:
            tools.append(FhirSearchTool(service, capability, max_count))
        if Interaction.CREATE in capability.interactions:
            tools.append(FhirCreateTool(service, capability))
    return tools
