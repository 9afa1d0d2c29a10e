"""The gRPC ToolRegistry servicer: convert, call the registry core, convert back."""

from __future__ import annotations

import json

import grpc

from his_sdk._converters import resource_to_proto
from his_sdk._generated.his.v1 import tools_pb2, tools_pb2_grpc
from his_sdk.server._context import current_call
from his_sdk.tools._converters import (
    descriptor_to_proto,
    risk_from_proto,
    validation_status_from_proto,
)
from his_sdk.tools._registry import ToolRegistry

__all__ = ["ToolRegistryServicer"]


class ToolRegistryServicer(tools_pb2_grpc.ToolRegistryServicer):  # type: ignore[misc]
    """Thin gRPC adapter over :class:`ToolRegistry`."""

    def __init__(self, registry: ToolRegistry) -> None:
        self._registry = registry

    async def ListTools(
        self, request: tools_pb2.ListToolsRequest, context: grpc.aio.ServicerContext
    ) -> tools_pb2.ListToolsResponse:
        """Tools matching the request's filters."""
        tools = self._registry.list_tools(
            current_call.get(),
            max_risk=risk_from_proto(request.max_risk),
            category=request.category or None,
            validation_status=validation_status_from_proto(request.validation_status),
            invocable_only=request.invocable_only,
        )
        return tools_pb2.ListToolsResponse(tools=[descriptor_to_proto(t) for t in tools])

    async def GetTool(
        self, request: tools_pb2.GetToolRequest, context: grpc.aio.ServicerContext
    ) -> tools_pb2.ToolDescriptor:
        """One tool's descriptor."""
        return descriptor_to_proto(self._registry.get_tool(current_call.get(), request.name))

    async def InvokeTool(
        self, request: tools_pb2.InvokeToolRequest, context: grpc.aio.ServicerContext
    ) -> tools_pb2.InvokeToolResponse:
        """Run a tool, or queue a high-risk one and answer with its approval Task."""
        outcome = await self._registry.invoke(
            current_call.get(),
            request.name,
            request.arguments_json,
            justification=request.justification or None,
            idempotency_key=request.idempotency_key or None,
        )
        if outcome.task is not None:
            return tools_pb2.InvokeToolResponse(task_json=resource_to_proto(outcome.task).json)
        return tools_pb2.InvokeToolResponse(
            result_json=json.dumps(outcome.result, separators=(",", ":"))
        )
