"""The one place where protobuf messages and FHIR models are converted into each other."""

from __future__ import annotations

import json

from fhir.resources.R4B.resource import Resource

from his_sdk._fhir import parse_resource, resource_to_dict, shape
from his_sdk._fhir_json import dump_resource
from his_sdk._generated.his.v1 import fhir_pb2
from his_sdk.search import SummaryMode

__all__ = [
    "resource_from_proto",
    "resource_to_proto",
    "summary_from_proto",
    "summary_to_proto",
]

_SUMMARY_TO_PROTO: dict[SummaryMode | None, fhir_pb2.SummaryMode] = {
    None: fhir_pb2.SUMMARY_MODE_UNSPECIFIED,
    SummaryMode.FALSE: fhir_pb2.SUMMARY_MODE_UNSPECIFIED,
    SummaryMode.TRUE: fhir_pb2.SUMMARY_MODE_TRUE,
    SummaryMode.TEXT: fhir_pb2.SUMMARY_MODE_TEXT,
    SummaryMode.DATA: fhir_pb2.SUMMARY_MODE_DATA,
    SummaryMode.COUNT: fhir_pb2.SUMMARY_MODE_COUNT,
}
_SUMMARY_FROM_PROTO = {v: k for k, v in _SUMMARY_TO_PROTO.items() if k is not SummaryMode.FALSE}


def summary_to_proto(summary: SummaryMode | str | None) -> fhir_pb2.SummaryMode:
    """A ``_summary`` value as the proto enum."""
    return _SUMMARY_TO_PROTO[SummaryMode(summary) if summary is not None else None]


def summary_from_proto(value: fhir_pb2.SummaryMode) -> SummaryMode | None:
    """The proto enum as a ``_summary`` value (None for unspecified)."""
    return _SUMMARY_FROM_PROTO.get(value)


def resource_to_proto(
    resource: Resource,
    *,
    elements: tuple[str, ...] = (),
    summary: SummaryMode | None = None,
) -> fhir_pb2.Resource:
    """Serialise a model, applying ``_elements``/``_summary`` when asked."""
    if elements or summary not in (None, SummaryMode.FALSE):
        data = shape(resource_to_dict(resource), elements=elements, summary=summary)
        payload = json.dumps(data, separators=(",", ":")).encode()
    else:
        payload = dump_resource(resource)
    meta = resource.meta
    return fhir_pb2.Resource(
        resource_type=resource.get_resource_type(),
        id=resource.id or "",
        version_id=(meta.versionId or "") if meta is not None else "",
        json=payload,
    )


def resource_from_proto(message: fhir_pb2.Resource) -> Resource:
    """Validate a proto-carried resource into its R4B model."""
    return parse_resource(message.resource_type, message.json)
