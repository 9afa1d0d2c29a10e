"""The catalog's models as governed tools of the gateway's registry (``infer_<model>``).

Each tool runs its model in process through :meth:`InferenceBridge.infer` with the caller's
own call context, so the bridge authorizes (``create`` on the model's output type, roles)
and audits the run exactly as for ``InferenceService.Infer``; the registry adds its own
scope check and ``tool:infer_<model>`` audit record in front.
"""

from __future__ import annotations

import json
import re
from typing import Any

import his_sdk.errors
from his_sdk._fhir import resource_to_dict
from his_sdk.tools._model import (
    Provenance,
    RequiredPermission,
    RiskLevel,
    ToolAnnotations,
    ToolDescriptor,
    Validation,
    ValidationStatus,
)
from his_sdk.tools._tool import ToolCall, ToolOutcome

from ._bridge import InferenceBridge, InferenceRequest
from ._catalog import ModelEntry
from ._fhir import parse_input

__all__ = ["ModelTool", "ModelTools", "model_tool_descriptor", "model_tool_name"]

_VALIDATION = {
    "research": ValidationStatus.EXPERIMENTAL,
    "internally-validated": ValidationStatus.VALIDATED,
    "clinically-validated": ValidationStatus.VALIDATED,
}


def model_tool_name(model: str) -> str:
    """``infer_<model>`` in the registry's alphabet (``breast-fna`` -> ``infer_breast_fna``)."""
    return ("infer_" + re.sub(r"[^a-z0-9_]", "_", model.lower()))[:64]


def model_tool_descriptor(entry: ModelEntry) -> ToolDescriptor:
    """The descriptor of one model's tool, from its catalog entry and model card."""
    card = entry.card
    output_type = entry.fhir.output_type
    features = {
        spec.key: {
            "type": "number",
            "description": spec.display + (f" ({spec.unit})" if spec.unit else ""),
        }
        for spec in entry.fhir.features
    }
    input_schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "patient_id": {
                "type": "string",
                "minLength": 1,
                "description": "The patient the inputs are about; omit for de-identified "
                "population work.",
            },
            "resources": {
                "type": "array",
                "description": "FHIR input resources ("
                + (", ".join(entry.fhir.input_types) or "none")
                + "), e.g. Observations coded as the features below.",
                "items": {
                    "type": "object",
                    "required": ["resourceType"],
                    "properties": {"resourceType": {"enum": list(entry.fhir.input_types)}},
                },
            },
            "features": {
                "type": "object",
                "description": "Coded feature values by 'system|code' (or bare code).",
                "properties": features,
                "additionalProperties": {"type": "number"},
            },
        },
    }
    output_schema: dict[str, Any] = {
        "type": "object",
        "required": ["results", "prediction", "model", "version", "inference_id"],
        "properties": {
            "results": {
                "type": "array",
                "description": f"The FHIR {output_type} result(s) of the run.",
                "items": {
                    "type": "object",
                    "required": ["resourceType"],
                    "properties": {"resourceType": {"const": output_type}},
                },
            },
            "prediction": {"type": "number"},
            "model": {"type": "string"},
            "version": {"type": "string"},
            "inference_id": {"type": "string"},
            "device": {"type": "object"},
            "provenance": {"type": "object"},
        },
    }
    metrics = ", ".join(f"{k}={v}" for k, v in sorted(card.metrics.items()))
    evidence = f"model card: {card.validation_status}" + (f"; metrics {metrics}" if metrics else "")
    if card.metrics_file is not None:
        evidence += f"; {card.metrics_file.name}"
    return ToolDescriptor(
        name=model_tool_name(entry.name),
        title=f"{entry.name} {entry.version} ({entry.task})",
        description=(
            f"{card.description.strip()} Intended use: {card.intended_use.strip()} "
            f"Returns a FHIR {output_type}."
        ),
        category="inference",
        input_schema=input_schema,
        output_schema=output_schema,
        provenance=Provenance(
            owner=", ".join(card.authors) or "unknown",
            version=entry.version,
            source=f"inference catalog {entry.key}; training data: {card.training_data.strip()}",
            licence=card.license,
        ),
        validation=Validation(status=_VALIDATION[card.validation_status], evidence=evidence),
        risk=RiskLevel(entry.risk),
        permission=RequiredPermission(
            smart_scope=f"user/{output_type}.c", oso_permission=f"create:{output_type}"
        ),
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )


class ModelTool:
    """One catalog model as a registry tool; it runs the model through the bridge."""

    def __init__(self, bridge: InferenceBridge, entry: ModelEntry) -> None:
        self._bridge = bridge
        self._entry = entry
        self._descriptor = model_tool_descriptor(entry)

    @property
    def descriptor(self) -> ToolDescriptor:
        """The tool's descriptor."""
        return self._descriptor

    @property
    def proposes(self) -> bool:
        """False: a model run acts (and is audited by the bridge) when called."""
        return False

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Run the model for the caller; the bridge authorizes and audits the run."""
        arguments = call.arguments
        patient_id = arguments.get("patient_id") or None
        resources = []
        for item in arguments.get("resources", ()):
            resource_type = item.get("resourceType")
            if not isinstance(resource_type, str):
                raise his_sdk.errors.InvalidRequestError("each input resource needs a resourceType")
            resources.append(parse_input(resource_type, json.dumps(item).encode()))
        request = InferenceRequest(
            model=self._entry.name,
            version=self._entry.version,
            patient_id=patient_id,
            resources=tuple(resources),
            features=dict(arguments.get("features", {})),
        )
        result = await self._bridge.infer(call.call, request)
        return ToolOutcome(
            result={
                "results": [resource_to_dict(r) for r in result.results],
                "prediction": float(result.prediction),
                "model": result.provenance.model,
                "version": result.provenance.version,
                "inference_id": result.provenance.inference_id,
                "device": resource_to_dict(result.device),
                "provenance": resource_to_dict(result.provenance_resource),
            },
            patients=(patient_id,) if patient_id else (),
        )


class ModelTools:
    """The bridge's catalog as a ``his_sdk.tools.ModelToolSource``.

    One tool per model name (its highest version); generalist models, which answer consults
    rather than single runs, are not offered.
    """

    def __init__(self, bridge: InferenceBridge) -> None:
        self._bridge = bridge

    def tools(self) -> list[ModelTool]:
        """A tool per runnable catalog model."""
        catalog = self._bridge.catalog
        names = sorted({e.name for e in catalog.entries() if e.task != "generalist"})
        return [ModelTool(self._bridge, catalog.get(name)) for name in names]
