"""The gRPC ApprovalService servicer: convert, call :class:`ApprovalService`, convert back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import grpc

import his_sdk.errors
from his_sdk._generated.his.v1 import approval_pb2, approval_pb2_grpc, tools_pb2
from his_sdk.server import current_call

from ._convert import (
    action_from_proto,
    duration_from_proto,
    query_from_proto,
    request_to_proto,
    risk_from_proto,
)

if TYPE_CHECKING:
    from ._service import ApprovalService

__all__ = ["SERVICE_NAME", "ApprovalServicer", "add_to_server"]

SERVICE_NAME = approval_pb2.DESCRIPTOR.services_by_name["ApprovalService"].full_name
"""The full gRPC name of the service (for reflection)."""


def add_to_server(servicer: ApprovalServicer, server: grpc.aio.Server) -> None:
    """Register the servicer on a gRPC server."""
    approval_pb2_grpc.add_ApprovalServiceServicer_to_server(servicer, server)


class ApprovalServicer(approval_pb2_grpc.ApprovalServiceServicer):  # type: ignore[misc]
    """Thin gRPC adapter over :class:`approval_service.ApprovalService`.

    The gateway's interceptors authenticate every call and map errors to status codes.
    """

    def __init__(self, service: ApprovalService) -> None:
        self._service = service

    async def ListRequests(
        self, request: approval_pb2.ListRequestsRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.ListRequestsResponse:
        """Requests matching the filters."""
        page = await self._service.list_requests(current_call.get(), query_from_proto(request))
        return approval_pb2.ListRequestsResponse(
            requests=[request_to_proto(r) for r in page.requests],
            next_page_token=page.next_page_token or "",
        )

    async def GetRequest(
        self, request: approval_pb2.GetRequestRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.ApprovalRequest:
        """One request in full."""
        found = await self._service.get_request(current_call.get(), request.id)
        return request_to_proto(found)

    async def Decide(
        self, request: approval_pb2.DecideRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.ApprovalRequest:
        """Approve, approve with edits, or reject."""
        edited = (
            _json_object(request.edited_resource_json) if request.edited_resource_json else None
        )
        decided = await self._service.decide(
            current_call.get(),
            request.request_id,
            action_from_proto(request.action),
            reason=request.reason or None,
            edited_resource=edited,
            version=request.version or None,
        )
        return request_to_proto(decided)

    async def Extend(
        self, request: approval_pb2.ExtendRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.ApprovalRequest:
        """Give a pending request more time."""
        by = duration_from_proto(request.extend_by)
        if by is None:
            raise his_sdk.errors.InvalidRequestError(
                "extend_by must be positive", expression=["extend_by"]
            )
        extended = await self._service.extend(
            current_call.get(), request.request_id, by, reason=request.reason or None
        )
        return request_to_proto(extended)

    async def Escalate(
        self, request: approval_pb2.EscalateRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.ApprovalRequest:
        """Raise a pending request's risk tier."""
        to_risk = (
            risk_from_proto(request.to_risk)
            if request.to_risk != tools_pb2.RISK_LEVEL_UNSPECIFIED
            else None
        )
        escalated = await self._service.escalate(
            current_call.get(), request.request_id, reason=request.reason, to_risk=to_risk
        )
        return request_to_proto(escalated)


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise his_sdk.errors.InvalidRequestError(
            "the edited resource is not valid JSON", expression=["edited_resource_json"]
        ) from exc
    if not isinstance(data, dict):
        raise his_sdk.errors.InvalidRequestError(
            "the edited resource must be a JSON object", expression=["edited_resource_json"]
        )
    return data
