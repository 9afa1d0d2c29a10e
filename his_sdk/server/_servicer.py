"""The gRPC FhirService servicer: convert, call the service core, convert back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
from fhir.resources.R4B.task import Task

from his_sdk._converters import resource_to_proto, summary_from_proto
from his_sdk._generated.his.v1 import fhir_pb2, fhir_pb2_grpc
from his_sdk.server._context import current_call
from his_sdk.server._service import FhirService
from his_sdk.server._writes import ProposalResult

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

    async def Create(
        self, request: fhir_pb2.CreateRequest, context: grpc.aio.ServicerContext
    ) -> fhir_pb2.WriteResponse:
        """Propose a create."""
        result = await self._service.create(
            current_call.get(),
            request.resource_type,
            request.json,
            justification=request.justification,
            idempotency_key=request.idempotency_key or None,
        )
        return _write_response(result)

    async def Update(
        self, request: fhir_pb2.UpdateRequest, context: grpc.aio.ServicerContext
    ) -> fhir_pb2.WriteResponse:
        """Propose an update."""
        result = await self._service.update(
            current_call.get(),
            request.resource_type,
            request.id,
            request.json,
            justification=request.justification,
            idempotency_key=request.idempotency_key or None,
        )
        return _write_response(result)

    async def Delete(
        self, request: fhir_pb2.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> fhir_pb2.WriteResponse:
        """Propose a delete."""
        result = await self._service.delete(
            current_call.get(),
            request.resource_type,
            request.id,
            justification=request.justification,
            idempotency_key=request.idempotency_key or None,
        )
        return _write_response(result)

    async def GetTask(
        self, request: fhir_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> fhir_pb2.TaskResponse:
        """The Task of an approval request."""
        return _task_response(await self._service.get_task(current_call.get(), request.id))

    async def WatchTask(
        self, request: fhir_pb2.WatchTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[fhir_pb2.TaskResponse]:
        """Stream the Task at each status change until it is terminal."""
        async for task in self._service.watch_task(current_call.get(), request.id):
            yield _task_response(task)


_TERMINAL = frozenset({"rejected", "cancelled", "completed", "failed"})


def _write_response(result: ProposalResult) -> fhir_pb2.WriteResponse:
    return fhir_pb2.WriteResponse(task=resource_to_proto(result.task), replayed=result.replayed)


def _task_response(task: Task) -> fhir_pb2.TaskResponse:
    return fhir_pb2.TaskResponse(task=resource_to_proto(task), terminal=task.status in _TERMINAL)
