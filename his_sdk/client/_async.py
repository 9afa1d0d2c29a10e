"""The asyncio client (same API as :class:`his_sdk.HisClient`, awaitable)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

import grpc
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

from his_sdk._generated.his.v1 import fhir_pb2, fhir_pb2_grpc, tools_pb2, tools_pb2_grpc
from his_sdk.client._base import (
    ClientCore,
    ResourceT,
    SearchPage,
    SearchParams,
    Token,
    channel_credentials,
    channel_options,
    check_type,
    translate_error,
)
from his_sdk.client._options import TlsConfig
from his_sdk.search import SummaryMode

if TYPE_CHECKING:
    from his_sdk.tools import RiskLevel, ToolDescriptor, ValidationStatus

__all__ = ["AsyncHisClient"]


class AsyncHisClient(ClientCore):
    """Asyncio client for the gateway's FhirService; see :class:`his_sdk.HisClient`.

    Example::

        async with AsyncHisClient.connect("127.0.0.1:50051", token=token) as client:
            patient = await client.read(Patient, "1")
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        token: Token = None,
        timeout: float | None = 30.0,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(token=token, timeout=timeout, metadata=metadata)
        self._channel = channel
        self._stub = fhir_pb2_grpc.FhirServiceStub(channel)
        self._tools = tools_pb2_grpc.ToolRegistryStub(channel)

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        token: Token = None,
        timeout: float | None = 30.0,
        tls: TlsConfig | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> AsyncHisClient:
        """Open a channel to ``target`` (``host:port``); TLS when ``tls`` is given."""
        options = channel_options(tls, max_message_bytes)
        if tls is not None:
            channel = grpc.aio.secure_channel(target, channel_credentials(tls), options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        return cls(channel, token=token, timeout=timeout, metadata=metadata)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncHisClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _invoke(self, method: Any, request: Any, break_glass: str | None) -> Any:
        try:
            return await method(
                request, timeout=self._timeout, metadata=self._call_metadata(break_glass)
            )
        except grpc.aio.AioRpcError as exc:
            raise translate_error(exc) from exc

    @overload
    async def read(
        self,
        resource_type: type[ResourceT],
        resource_id: str,
        *,
        elements: Sequence[str] = (),
        summary: SummaryMode | str | None = None,
        break_glass: str | None = None,
    ) -> ResourceT: ...

    @overload
    async def read(
        self,
        resource_type: str,
        resource_id: str,
        *,
        elements: Sequence[str] = (),
        summary: SummaryMode | str | None = None,
        break_glass: str | None = None,
    ) -> Resource: ...

    async def read(
        self,
        resource_type: type[Resource] | str,
        resource_id: str,
        *,
        elements: Sequence[str] = (),
        summary: SummaryMode | str | None = None,
        break_glass: str | None = None,
    ) -> Resource:
        """Read one resource; arguments as :meth:`his_sdk.HisClient.read`."""
        check_type(resource_type)
        request = self._read_request(resource_type, resource_id, elements, summary)
        return self._read_result(await self._invoke(self._stub.Read, request, break_glass))

    async def search(
        self,
        resource_type: type[Resource] | str,
        params: SearchParams = None,
        *,
        count: int | None = None,
        cursor: str | None = None,
        elements: Sequence[str] = (),
        summary: SummaryMode | str | None = None,
        total: bool = False,
        break_glass: str | None = None,
    ) -> SearchPage:
        """Search one page; arguments as :meth:`his_sdk.HisClient.search`."""
        check_type(resource_type)
        request = self._search_request(
            resource_type,
            params,
            count=count,
            cursor=cursor,
            elements=elements,
            summary=summary,
            total=total,
        )
        response = await self._invoke(self._stub.Search, request, break_glass)
        return self._search_result(request, response)

    async def next_page(
        self, page: SearchPage, *, break_glass: str | None = None
    ) -> SearchPage | None:
        """The page after ``page``, or None when it was the last."""
        request = self._next_request(page)
        if request is None:
            return None
        response = await self._invoke(self._stub.Search, request, break_glass)
        return self._search_result(request, response)

    async def search_all(
        self,
        resource_type: type[Resource] | str,
        params: SearchParams = None,
        *,
        count: int | None = None,
        limit: int | None = None,
        elements: Sequence[str] = (),
        summary: SummaryMode | str | None = None,
        break_glass: str | None = None,
    ) -> AsyncIterator[Resource]:
        """Every match across pages, fetched lazily; stop after ``limit`` resources."""
        page: SearchPage | None = await self.search(
            resource_type,
            params,
            count=count,
            elements=elements,
            summary=summary,
            break_glass=break_glass,
        )
        seen = 0
        while page is not None:
            for resource in page.resources:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield resource
            page = await self.next_page(page, break_glass=break_glass)

    async def capabilities(self) -> CapabilityStatement:
        """The gateway's CapabilityStatement."""
        response = await self._invoke(self._stub.Capabilities, fhir_pb2.CapabilitiesRequest(), None)
        return self._capabilities_result(response)

    async def propose_create(
        self, resource: Resource, *, justification: str, idempotency_key: str | None = None
    ) -> Task:
        """Propose creating ``resource``; arguments as :meth:`his_sdk.HisClient.propose_create`."""
        request = self._create_request(resource, justification, idempotency_key)
        return self._task_result(await self._invoke(self._stub.Create, request, None))

    async def propose_update(
        self, resource: Resource, *, justification: str, idempotency_key: str | None = None
    ) -> Task:
        """Propose replacing the resource with ``resource`` (matched by its ``id``)."""
        request = self._update_request(resource, justification, idempotency_key)
        return self._task_result(await self._invoke(self._stub.Update, request, None))

    async def propose_delete(
        self, resource: Resource | str, *, justification: str, idempotency_key: str | None = None
    ) -> Task:
        """Propose deleting a resource (a model with an id, or ``"Type/id"``)."""
        request = self._delete_request(resource, justification, idempotency_key)
        return self._task_result(await self._invoke(self._stub.Delete, request, None))

    async def get_task(self, task_id: str) -> Task:
        """The current Task of an approval request."""
        request = fhir_pb2.GetTaskRequest(id=task_id)
        return self._task_result(await self._invoke(self._stub.GetTask, request, None))

    async def watch(self, task_id: str) -> AsyncIterator[Task]:
        """Yield the Task now and at each status change until it is terminal.

        It waits as long as the request lives; bound it with ``asyncio.timeout()``.
        """
        stream = self._stub.WatchTask(
            fhir_pb2.WatchTaskRequest(id=task_id), metadata=self._call_metadata(None)
        )
        try:
            async for response in stream:
                yield self._task_result(response)
        except grpc.aio.AioRpcError as exc:
            raise translate_error(exc) from exc
        finally:
            stream.cancel()

    async def list_tools(
        self,
        *,
        max_risk: RiskLevel | str | None = None,
        category: str | None = None,
        validation_status: ValidationStatus | str | None = None,
        invocable_only: bool = False,
    ) -> list[ToolDescriptor]:
        """The tools this gateway offers, optionally filtered.

        Args:
            max_risk: Only tools at this risk or lower (``"low"``, ``"medium"``, ``"high"``).
            category: Only this category (``"calculator"``, ``"fhir.search"``, ...).
            validation_status: Only ``"validated"``, ``"experimental"`` or ``"deprecated"``.
            invocable_only: Only the tools this token's scopes and roles permit.
        """
        request = self._list_tools_request(max_risk, category, validation_status, invocable_only)
        return self._tools_result(await self._invoke(self._tools.ListTools, request, None))

    async def get_tool(self, name: str) -> ToolDescriptor:
        """One tool's descriptor (``his_sdk.errors.NotFoundError`` when there is none)."""
        request = tools_pb2.GetToolRequest(name=name)
        return self._tool_result(await self._invoke(self._tools.GetTool, request, None))

    async def invoke_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        justification: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any] | Task:
        """Invoke a tool; a high-risk tool answers with the Task of its approval request.

        Args:
            name: The tool's name.
            arguments: The arguments object of the tool's input schema.
            justification: Why the agent calls the tool; required for high-risk tools.
            idempotency_key: Repeating a high-risk call with the same key returns the same
                Task.

        Returns:
            The tool's result object, or the FHIR Task tracking the approval.

        Raises:
            his_sdk.errors.HisError: The subclass matching the gRPC status (denied, invalid
                arguments with the OperationOutcome text, approvals not configured, ...).
        """
        request = self._invoke_tool_request(name, arguments, justification, idempotency_key)
        return self._invoke_tool_result(await self._invoke(self._tools.InvokeTool, request, None))
