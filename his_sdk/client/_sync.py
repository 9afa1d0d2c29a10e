"""The blocking client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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

__all__ = ["HisClient"]


class HisClient(ClientCore):
    """Blocking client for the gateway's FhirService.

    Example::

        with HisClient.connect("127.0.0.1:50051", token=token) as client:
            patient = client.read(Patient, "1")
            page = client.search("Observation", {"patient": "1", "category": "laboratory"})
    """

    def __init__(
        self,
        channel: grpc.Channel,
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
    ) -> HisClient:
        """Open a channel to ``target`` (``host:port``); TLS when ``tls`` is given."""
        options = channel_options(tls, max_message_bytes)
        if tls is not None:
            channel = grpc.secure_channel(target, channel_credentials(tls), options=options)
        else:
            channel = grpc.insecure_channel(target, options=options)
        return cls(channel, token=token, timeout=timeout, metadata=metadata)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> HisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _invoke(self, method: Any, request: Any, break_glass: str | None) -> Any:
        try:
            return method(request, timeout=self._timeout, metadata=self._call_metadata(break_glass))
        except grpc.RpcError as exc:
            raise translate_error(exc) from exc

    @overload
    def read(
        self,
        resource_type: type[ResourceT],
        resource_id: str,
        *,
        elements: Sequence[str] = (),
        summary: SummaryMode | str | None = None,
        break_glass: str | None = None,
    ) -> ResourceT: ...

    @overload
    def read(
        self,
        resource_type: str,
        resource_id: str,
        *,
        elements: Sequence[str] = (),
        summary: SummaryMode | str | None = None,
        break_glass: str | None = None,
    ) -> Resource: ...

    def read(
        self,
        resource_type: type[Resource] | str,
        resource_id: str,
        *,
        elements: Sequence[str] = (),
        summary: SummaryMode | str | None = None,
        break_glass: str | None = None,
    ) -> Resource:
        """Read one resource.

        Args:
            resource_type: A model class (``Patient``) or a type name (``"Patient"``).
            resource_id: The logical id.
            elements: Keep only these top-level elements (FHIR ``_elements``).
            summary: FHIR ``_summary`` mode (``"true"``, ``"text"``, ``"data"``).
            break_glass: A reason for an emergency override; it is recorded and audited.

        Raises:
            his_sdk.errors.HisError: The subclass matching the gRPC status.
        """
        check_type(resource_type)
        request = self._read_request(resource_type, resource_id, elements, summary)
        return self._read_result(self._invoke(self._stub.Read, request, break_glass))

    def search(
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
        """Search one page; continue with ``next_page`` or ``cursor=page.next_cursor``.

        Args:
            resource_type: A model class or a type name.
            params: FHIR search parameters; unsupported ones are refused, never ignored.
            count: Page size (FHIR ``_count``), clamped by the server.
            cursor: A previous page's ``next_cursor`` (same parameters).
            elements: FHIR ``_elements``.
            summary: FHIR ``_summary``; ``"count"`` returns only the total.
            total: Also count all matches.
            break_glass: A reason for an emergency override.
        """
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
        return self._search_result(request, self._invoke(self._stub.Search, request, break_glass))

    def next_page(self, page: SearchPage, *, break_glass: str | None = None) -> SearchPage | None:
        """The page after ``page``, or None when it was the last."""
        request = self._next_request(page)
        if request is None:
            return None
        return self._search_result(request, self._invoke(self._stub.Search, request, break_glass))

    def search_all(
        self,
        resource_type: type[Resource] | str,
        params: SearchParams = None,
        *,
        count: int | None = None,
        limit: int | None = None,
        elements: Sequence[str] = (),
        summary: SummaryMode | str | None = None,
        break_glass: str | None = None,
    ) -> Iterator[Resource]:
        """Every match across pages, fetched lazily; stop after ``limit`` resources."""
        page: SearchPage | None = self.search(
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
            page = self.next_page(page, break_glass=break_glass)

    def capabilities(self) -> CapabilityStatement:
        """The gateway's CapabilityStatement: types, interactions, search parameters."""
        response = self._invoke(self._stub.Capabilities, fhir_pb2.CapabilitiesRequest(), None)
        return self._capabilities_result(response)

    def propose_create(
        self, resource: Resource, *, justification: str, idempotency_key: str | None = None
    ) -> Task:
        """Propose creating ``resource``; a human approves it before it reaches the EHR.

        Args:
            resource: The resource to create (its ``id``, if any, is ignored).
            justification: Why the agent proposes it; required, shown to the reviewer.
            idempotency_key: Proposing again with the same key returns the same Task; by
                default a key is derived from the caller and the resource.

        Returns:
            The FHIR Task of the approval request (status ``requested`` when new).

        Raises:
            his_sdk.errors.HisError: The subclass matching the gRPC status (denied by policy,
                invalid resource, no adapter writes the type, ...).
        """
        request = self._create_request(resource, justification, idempotency_key)
        return self._task_result(self._invoke(self._stub.Create, request, None))

    def propose_update(
        self, resource: Resource, *, justification: str, idempotency_key: str | None = None
    ) -> Task:
        """Propose replacing the resource with ``resource`` (matched by its ``id``)."""
        request = self._update_request(resource, justification, idempotency_key)
        return self._task_result(self._invoke(self._stub.Update, request, None))

    def propose_delete(
        self, resource: Resource | str, *, justification: str, idempotency_key: str | None = None
    ) -> Task:
        """Propose deleting a resource (a model with an id, or ``"Type/id"``)."""
        request = self._delete_request(resource, justification, idempotency_key)
        return self._task_result(self._invoke(self._stub.Delete, request, None))

    def get_task(self, task_id: str) -> Task:
        """The current Task of an approval request."""
        request = fhir_pb2.GetTaskRequest(id=task_id)
        return self._task_result(self._invoke(self._stub.GetTask, request, None))

    def watch(self, task_id: str, *, timeout: float | None = None) -> Iterator[Task]:
        """Yield the Task now and at each status change until it is terminal.

        Args:
            task_id: The Task's id.
            timeout: Give up after this many seconds (``DeadlineExceededError``); None waits
                as long as the request lives.
        """
        stream = self._stub.WatchTask(
            fhir_pb2.WatchTaskRequest(id=task_id),
            timeout=timeout,
            metadata=self._call_metadata(None),
        )
        try:
            for response in stream:
                yield self._task_result(response)
        except grpc.RpcError as exc:
            raise translate_error(exc) from exc
        finally:
            stream.cancel()

    def list_tools(
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
        return self._tools_result(self._invoke(self._tools.ListTools, request, None))

    def get_tool(self, name: str) -> ToolDescriptor:
        """One tool's descriptor (``his_sdk.errors.NotFoundError`` when there is none)."""
        request = tools_pb2.GetToolRequest(name=name)
        return self._tool_result(self._invoke(self._tools.GetTool, request, None))

    def invoke_tool(
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
        return self._invoke_tool_result(self._invoke(self._tools.InvokeTool, request, None))
