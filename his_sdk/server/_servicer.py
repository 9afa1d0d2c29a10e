"""The gRPC FhirService servicer: convert, call the service core, convert back."""

from __future__ import annotations

import json

import grpc

from his_sdk._converters import resource_to_proto, summary_from_proto
from his_sdk._generated.his.v1 import fhir_pb2, fhir_pb2_grpc
from his_sdk.server._context import current_call
from his_sdk.server._service import FhirService

__all__ = ["FhirServicer"]


class FhirServicer(fhir_pb2_grpc.FhirServiceServicer):  # type: ignore[misc]
    """Thin gRPC adapter over :class:`FhirService`."""

    def __init__(self, service: FhirService) -> None:
        self._service = service

    async def Read(
        self, request: fhir_pb2.ReadRequest, context: grpc.aio.ServicerContext
    ) -> fhir_pb2.ReadResponse:
        """Read one resource."""
        resource = await self._service.read(current_call.get(), request.resource_type, request.id)
        return fhir_pb2.ReadResponse(
            resource=resource_to_proto(
                resource,
                elements=tuple(request.elements),
                summary=summary_from_proto(request.summary),
            )
        )

    async def Search(
        self, request: fhir_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> fhir_pb2.SearchResponse:
        """Search one page."""
        result = await self._service.search(
            current_call.get(),
            request.resource_type,
            [(p.name, p.value) for p in request.parameters],
            count=request.count or None,
            cursor=request.cursor or None,
            elements=tuple(request.elements),
            summary=summary_from_proto(request.summary),
            include_total=request.include_total,
        )
        shaping = result.shaping
        return fhir_pb2.SearchResponse(
            resources=[
                resource_to_proto(r, elements=shaping.elements, summary=shaping.summary)
                for r in result.resources
            ],
            next_cursor=result.next_cursor or "",
            total=result.total if result.total is not None else -1,
        )

    async def Capabilities(
        self, request: fhir_pb2.CapabilitiesRequest, context: grpc.aio.ServicerContext
    ) -> fhir_pb2.CapabilitiesResponse:
        """The CapabilityStatement."""
        statement = self._service.capabilities()
        return fhir_pb2.CapabilitiesResponse(
            capability_statement_json=json.dumps(statement, separators=(",", ":")).encode()
        )
