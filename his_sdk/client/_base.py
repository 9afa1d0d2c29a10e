"""What the sync and async clients share: request building, response parsing, error mapping."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

import his_sdk.errors
from his_sdk._converters import resource_from_proto, summary_to_proto
from his_sdk._fhir import model_class
from his_sdk._generated.his.v1 import fhir_pb2, tools_pb2
from his_sdk.client._options import TlsConfig
from his_sdk.search import SummaryMode

if TYPE_CHECKING:
    from his_sdk.tools import RiskLevel, ToolDescriptor, ValidationStatus

__all__ = [
    "ResourceT",
    "SearchPage",
    "SearchParams",
    "Token",
    "channel_credentials",
    "channel_options",
    "translate_error",
]

ResourceT = TypeVar("ResourceT", bound=Resource)
SearchParams = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]] | None
"""Search parameters: ``{"patient": "1", "date": ["ge2020", "lt2021"]}`` or pairs."""
Token = str | Callable[[], str] | None
"""A bearer token, or a function returning a fresh one per call."""

OUTCOME_METADATA_KEY = his_sdk.errors.OUTCOME_METADATA_KEY
ERROR_CLASS_METADATA_KEY = his_sdk.errors.ERROR_CLASS_METADATA_KEY
_USER_AGENT = "his-sdk-python"


@dataclass
class SearchPage:
    """One page of results.

    Attributes:
        resource_type: The type searched.
        resources: The matches on this page.
        next_cursor: Pass to ``search(..., cursor=...)`` with the same parameters for the next
            page; None on the last page.
        total: Count of all matches when asked for (``total=True`` or ``summary="count"``).
    """

    resource_type: str
    resources: list[Resource]
    next_cursor: str | None
    total: int | None
    _request: fhir_pb2.SearchRequest = field(repr=False, default_factory=fhir_pb2.SearchRequest)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def bundle(self) -> Bundle:
        """This page as a FHIR ``searchset`` Bundle."""
        data: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "fullUrl": f"{r.get_resource_type()}/{r.id}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in self.resources
            ],
        }
        if self.total is not None:
            data["total"] = self.total
        return Bundle.model_validate(data)


class ClientCore:
    """State and pure logic shared by :class:`HisClient` and :class:`AsyncHisClient`."""

    def __init__(
        self,
        *,
        token: Token,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]],
    ) -> None:
        self._token = token
        self._timeout = timeout
        self._metadata = tuple(metadata)

    def _call_metadata(self, break_glass: str | None) -> tuple[tuple[str, str], ...]:
        pairs = [*self._metadata, ("x-request-id", uuid.uuid4().hex)]
        token = self._token() if callable(self._token) else self._token
        if token:
            pairs.append(("authorization", f"Bearer {token}"))
        if break_glass:
            pairs.append(("x-his-break-glass", break_glass))
        return tuple(pairs)

    @staticmethod
    def _type_name(resource_type: type[Resource] | str) -> str:
        if isinstance(resource_type, str):
            return resource_type
        return resource_type.get_resource_type()

    def _read_request(
        self,
        resource_type: type[Resource] | str,
        resource_id: str,
        elements: Sequence[str],
        summary: SummaryMode | str | None,
    ) -> fhir_pb2.ReadRequest:
        return fhir_pb2.ReadRequest(
            resource_type=self._type_name(resource_type),
            id=resource_id,
            elements=list(elements),
            summary=summary_to_proto(summary),
        )

    def _search_request(
        self,
        resource_type: type[Resource] | str,
        params: SearchParams,
        *,
        count: int | None,
        cursor: str | None,
        elements: Sequence[str],
        summary: SummaryMode | str | None,
        total: bool,
    ) -> fhir_pb2.SearchRequest:
        return fhir_pb2.SearchRequest(
            resource_type=self._type_name(resource_type),
            parameters=[fhir_pb2.SearchParameter(name=n, value=v) for n, v in _pairs(params)],
            count=count or 0,
            cursor=cursor or "",
            elements=list(elements),
            summary=summary_to_proto(summary),
            include_total=total,
        )

    @staticmethod
    def _read_result(response: fhir_pb2.ReadResponse) -> Resource:
        return resource_from_proto(response.resource)

    @staticmethod
    def _search_result(
        request: fhir_pb2.SearchRequest, response: fhir_pb2.SearchResponse
    ) -> SearchPage:
        return SearchPage(
            resource_type=request.resource_type,
            resources=[resource_from_proto(r) for r in response.resources],
            next_cursor=response.next_cursor or None,
            total=response.total if response.total >= 0 else None,
            _request=request,
        )

    @staticmethod
    def _capabilities_result(response: fhir_pb2.CapabilitiesResponse) -> CapabilityStatement:
        return CapabilityStatement.model_validate_json(response.capability_statement_json)

    @staticmethod
    def _create_request(
        resource: Resource, justification: str, idempotency_key: str | None
    ) -> fhir_pb2.CreateRequest:
        return fhir_pb2.CreateRequest(
            resource_type=resource.get_resource_type(),
            json=resource.model_dump_json().encode(),
            justification=justification,
            idempotency_key=idempotency_key or "",
        )

    @staticmethod
    def _update_request(
        resource: Resource, justification: str, idempotency_key: str | None
    ) -> fhir_pb2.UpdateRequest:
        if not resource.id:
            raise ValueError("an update needs the resource's id")
        return fhir_pb2.UpdateRequest(
            resource_type=resource.get_resource_type(),
            id=resource.id,
            json=resource.model_dump_json().encode(),
            justification=justification,
            idempotency_key=idempotency_key or "",
        )

    @staticmethod
    def _delete_request(
        resource: Resource | str, justification: str, idempotency_key: str | None
    ) -> fhir_pb2.DeleteRequest:
        if isinstance(resource, str):
            resource_type, _, resource_id = resource.partition("/")
            model_class(resource_type)
        else:
            resource_type, resource_id = resource.get_resource_type(), resource.id or ""
        if not resource_id:
            raise ValueError("a delete needs the resource's id ('Type/id' or a model with an id)")
        return fhir_pb2.DeleteRequest(
            resource_type=resource_type,
            id=resource_id,
            justification=justification,
            idempotency_key=idempotency_key or "",
        )

    @staticmethod
    def _task_result(response: fhir_pb2.WriteResponse | fhir_pb2.TaskResponse) -> Task:
        task = resource_from_proto(response.task)
        assert isinstance(task, Task)
        return task

    @staticmethod
    def _list_tools_request(
        max_risk: RiskLevel | str | None,
        category: str | None,
        validation_status: ValidationStatus | str | None,
        invocable_only: bool,
    ) -> tools_pb2.ListToolsRequest:
        # Imported on first use: the tool package builds on the server side.
        from his_sdk.tools import risk_to_proto, validation_status_to_proto

        return tools_pb2.ListToolsRequest(
            max_risk=risk_to_proto(max_risk),
            category=category or "",
            validation_status=validation_status_to_proto(validation_status),
            invocable_only=invocable_only,
        )

    @staticmethod
    def _tools_result(response: tools_pb2.ListToolsResponse) -> list[ToolDescriptor]:
        from his_sdk.tools import descriptor_from_proto

        return [descriptor_from_proto(t) for t in response.tools]

    @staticmethod
    def _tool_result(response: tools_pb2.ToolDescriptor) -> ToolDescriptor:
        from his_sdk.tools import descriptor_from_proto

        return descriptor_from_proto(response)

    @staticmethod
    def _invoke_tool_request(
        name: str,
        arguments: Mapping[str, Any] | None,
        justification: str | None,
        idempotency_key: str | None,
    ) -> tools_pb2.InvokeToolRequest:
        return tools_pb2.InvokeToolRequest(
            name=name,
            arguments_json=json.dumps(dict(arguments or {}), separators=(",", ":")),
            justification=justification or "",
            idempotency_key=idempotency_key or "",
        )

    @staticmethod
    def _invoke_tool_result(response: tools_pb2.InvokeToolResponse) -> dict[str, Any] | Task:
        if response.WhichOneof("outcome") == "task_json":
            return Task.model_validate_json(response.task_json)
        result = json.loads(response.result_json or "{}")
        if not isinstance(result, dict):
            raise his_sdk.errors.UpstreamDataError("the tool's result is not a JSON object")
        return result

    @staticmethod
    def _next_request(page: SearchPage) -> fhir_pb2.SearchRequest | None:
        if not page.next_cursor:
            return None
        request = fhir_pb2.SearchRequest()
        request.CopyFrom(page._request)
        request.cursor = page.next_cursor
        return request


def _pairs(params: SearchParams) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, str):
                pairs.append((name, value))
            else:
                pairs.extend((name, v) for v in value)
        return pairs
    return [(str(n), str(v)) for n, v in params]


def check_type(resource_type: type[Resource] | str) -> None:
    """Fail early, client side, on a name that is no FHIR resource type."""
    if isinstance(resource_type, str):
        model_class(resource_type)


def translate_error(exc: grpc.RpcError) -> his_sdk.errors.HisError:
    """The ``his_sdk.errors`` exception for a failed call, with its OperationOutcome attached."""
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    trailing = exc.trailing_metadata() if callable(getattr(exc, "trailing_metadata", None)) else ()
    meta = {k: v for k, v in (trailing or ())}
    name = meta.get(ERROR_CLASS_METADATA_KEY)
    cls = his_sdk.errors.error_class_for(code, name if isinstance(name, str) else None)
    error = cls(details or code.name)
    outcome = meta.get(OUTCOME_METADATA_KEY)
    if isinstance(outcome, bytes):
        try:
            parsed = json.loads(outcome)
            issue = (parsed.get("issue") or [{}])[0]
            error.diagnostics = issue.get("diagnostics")
            error.expression = list(issue.get("expression") or [])
        except ValueError:
            error.diagnostics = None
    return error


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    """GRPC channel credentials from a :class:`TlsConfig`."""
    return grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.client_private_key,
        certificate_chain=tls.client_certificate,
    )


def channel_options(tls: TlsConfig | None, max_message_bytes: int) -> list[tuple[str, Any]]:
    """Channel options shared by both clients."""
    options: list[tuple[str, Any]] = [
        ("grpc.primary_user_agent", _USER_AGENT),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    if tls and tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return options
