"""Tool descriptors and outcomes to and from their ``his.v1`` protobuf messages."""

from __future__ import annotations

import json
from typing import Any

from his_sdk._generated.his.v1 import tools_pb2
from his_sdk.tools._model import (
    Provenance,
    RequiredPermission,
    RiskLevel,
    ToolAnnotations,
    ToolDescriptor,
    Validation,
    ValidationStatus,
)

__all__ = [
    "descriptor_from_proto",
    "descriptor_to_proto",
    "risk_from_proto",
    "risk_to_proto",
    "validation_status_from_proto",
    "validation_status_to_proto",
]

_RISK_TO_PROTO = {
    RiskLevel.LOW: tools_pb2.RISK_LEVEL_LOW,
    RiskLevel.MEDIUM: tools_pb2.RISK_LEVEL_MEDIUM,
    RiskLevel.HIGH: tools_pb2.RISK_LEVEL_HIGH,
}
_RISK_FROM_PROTO = {v: k for k, v in _RISK_TO_PROTO.items()}
_STATUS_TO_PROTO = {
    ValidationStatus.VALIDATED: tools_pb2.VALIDATION_STATUS_VALIDATED,
    ValidationStatus.EXPERIMENTAL: tools_pb2.VALIDATION_STATUS_EXPERIMENTAL,
    ValidationStatus.DEPRECATED: tools_pb2.VALIDATION_STATUS_DEPRECATED,
}
_STATUS_FROM_PROTO = {v: k for k, v in _STATUS_TO_PROTO.items()}


def risk_to_proto(risk: RiskLevel | str | None) -> tools_pb2.RiskLevel:
    """A risk level as the proto enum (unspecified for None)."""
    return _RISK_TO_PROTO[RiskLevel(risk)] if risk else tools_pb2.RISK_LEVEL_UNSPECIFIED


def risk_from_proto(value: tools_pb2.RiskLevel) -> RiskLevel | None:
    """The proto enum as a risk level (None for unspecified)."""
    return _RISK_FROM_PROTO.get(value)


def validation_status_to_proto(
    status: ValidationStatus | str | None,
) -> tools_pb2.ValidationStatus:
    """A validation status as the proto enum (unspecified for None)."""
    if not status:
        return tools_pb2.VALIDATION_STATUS_UNSPECIFIED
    return _STATUS_TO_PROTO[ValidationStatus(status)]


def validation_status_from_proto(
    value: tools_pb2.ValidationStatus,
) -> ValidationStatus | None:
    """The proto enum as a validation status (None for unspecified)."""
    return _STATUS_FROM_PROTO.get(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def descriptor_to_proto(descriptor: ToolDescriptor) -> tools_pb2.ToolDescriptor:
    """A descriptor as its proto message (schemas as JSON text)."""
    return tools_pb2.ToolDescriptor(
        name=descriptor.name,
        title=descriptor.title,
        description=descriptor.description,
        category=descriptor.category,
        input_schema_json=_dumps(descriptor.input_schema),
        output_schema_json=_dumps(descriptor.output_schema),
        provenance=tools_pb2.Provenance(**descriptor.provenance.model_dump()),
        validation=tools_pb2.Validation(
            status=_STATUS_TO_PROTO[descriptor.validation.status],
            evidence=descriptor.validation.evidence,
        ),
        risk=_RISK_TO_PROTO[descriptor.risk],
        permission=tools_pb2.RequiredPermission(
            smart_scope=descriptor.permission.smart_scope,
            oso_permission=descriptor.permission.oso_permission,
        ),
        annotations=tools_pb2.ToolAnnotations(**descriptor.annotations.model_dump()),
    )


def descriptor_from_proto(message: tools_pb2.ToolDescriptor) -> ToolDescriptor:
    """A descriptor from its proto message.

    Raises:
        ValueError: The message carries an unspecified risk or validation status, or
            schemas that are not JSON objects.
    """
    risk = risk_from_proto(message.risk)
    status = validation_status_from_proto(message.validation.status)
    if risk is None or status is None:
        raise ValueError(f"tool {message.name!r} has no risk level or validation status")
    annotations = message.annotations
    return ToolDescriptor(
        name=message.name,
        title=message.title,
        description=message.description,
        category=message.category,
        input_schema=json.loads(message.input_schema_json or "{}"),
        output_schema=json.loads(message.output_schema_json or "{}"),
        provenance=Provenance(
            owner=message.provenance.owner,
            version=message.provenance.version,
            source=message.provenance.source,
            licence=message.provenance.licence,
        ),
        validation=Validation(status=status, evidence=message.validation.evidence),
        risk=risk,
        permission=RequiredPermission(
            smart_scope=message.permission.smart_scope,
            oso_permission=message.permission.oso_permission,
        ),
        annotations=ToolAnnotations(
            read_only_hint=annotations.read_only_hint,
            destructive_hint=annotations.destructive_hint,
            idempotent_hint=annotations.idempotent_hint,
            open_world_hint=annotations.open_world_hint,
        ),
    )
