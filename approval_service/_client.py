"""Reviewer clients for the ApprovalService over gRPC: blocking and asyncio, one shared core.

``his approvals ...`` and ``bench/approval.py`` use them; a console running beside the gateway
calls :class:`approval_service.ApprovalService` directly instead.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Sequence
from typing import Any

import grpc

import his_sdk.client
from his_sdk._generated.his.v1 import approval_pb2, approval_pb2_grpc

from ._convert import (
    action_to_proto,
    duration_to_proto,
    query_to_proto,
    request_from_proto,
    risk_to_proto,
)
from ._model import ApprovalRequest, DecisionAction, RequestPage, RequestQuery
from ._policy import RiskTier

__all__ = ["ApprovalClient", "AsyncApprovalClient"]

Token = his_sdk.client.Token


class _Core:
    def __init__(
        self, *, token: Token, timeout: float | None, metadata: Sequence[tuple[str, str]]
    ) -> None:
        self._token = token
        self._timeout = timeout
        self._metadata = tuple(metadata)

    def _call_metadata(self) -> tuple[tuple[str, str], ...]:
        pairs = [*self._metadata, ("x-request-id", uuid.uuid4().hex)]
        token = self._token() if callable(self._token) else self._token
        if token:
            pairs.append(("authorization", f"Bearer {token}"))
        return tuple(pairs)

    @staticmethod
    def _decide_request(
        request_id: str,
        action: DecisionAction | str,
        reason: str | None,
        edited_resource: dict[str, Any] | None,
        version: int | None,
    ) -> approval_pb2.DecideRequest:
        return approval_pb2.DecideRequest(
            request_id=request_id,
            action=action_to_proto(DecisionAction(action)),
            reason=reason or "",
            edited_resource_json=(
                json.dumps(edited_resource).encode() if edited_resource is not None else b""
            ),
            version=version or 0,
        )

    @staticmethod
    def _extend_request(
        request_id: str, by: datetime.timedelta, reason: str | None
    ) -> approval_pb2.ExtendRequest:
        return approval_pb2.ExtendRequest(
            request_id=request_id, extend_by=duration_to_proto(by), reason=reason or ""
        )

    @staticmethod
    def _escalate_request(
        request_id: str, reason: str, to_risk: RiskTier | str | None
    ) -> approval_pb2.EscalateRequest:
        return approval_pb2.EscalateRequest(
            request_id=request_id,
            reason=reason,
            to_risk=(risk_to_proto(RiskTier(to_risk)) if to_risk is not None else None),
        )

    @staticmethod
    def _page(response: approval_pb2.ListRequestsResponse) -> RequestPage:
        return RequestPage(
            [request_from_proto(r) for r in response.requests],
            response.next_page_token or None,
        )


class ApprovalClient(_Core):
    """Blocking reviewer client.

    Example::

        with ApprovalClient.connect("127.0.0.1:50051", token=reviewer_token) as client:
            page = client.list(RequestQuery(statuses=(RequestStatus.PENDING,)))
            client.decide(page.requests[0].id, "approve")
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
        self._stub = approval_pb2_grpc.ApprovalServiceStub(channel)

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        token: Token = None,
        timeout: float | None = 30.0,
        tls: his_sdk.client.TlsConfig | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> ApprovalClient:
        """Open a channel to ``target`` (``host:port``); TLS when ``tls`` is given."""
        options = his_sdk.client.channel_options(tls, 16 * 1024 * 1024)
        if tls is not None:
            credentials = his_sdk.client.channel_credentials(tls)
            channel = grpc.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.insecure_channel(target, options=options)
        return cls(channel, token=token, timeout=timeout, metadata=metadata)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> ApprovalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _invoke(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self._timeout, metadata=self._call_metadata())
        except grpc.RpcError as exc:
            raise his_sdk.client.translate_error(exc) from exc

    def list(self, query: RequestQuery | None = None) -> RequestPage:
        """One page of requests, newest first."""
        response = self._invoke(self._stub.ListRequests, query_to_proto(query or RequestQuery()))
        return self._page(response)

    def get(self, request_id: str) -> ApprovalRequest:
        """One request with versions, decisions and history."""
        response = self._invoke(
            self._stub.GetRequest, approval_pb2.GetRequestRequest(id=request_id)
        )
        return request_from_proto(response)

    def decide(
        self,
        request_id: str,
        action: DecisionAction | str,
        *,
        reason: str | None = None,
        edited_resource: dict[str, Any] | None = None,
        version: int | None = None,
    ) -> ApprovalRequest:
        """Approve, approve with edits (``approve_with_edits``), or reject."""
        request = self._decide_request(request_id, action, reason, edited_resource, version)
        return request_from_proto(self._invoke(self._stub.Decide, request))

    def extend(
        self, request_id: str, by: datetime.timedelta, *, reason: str | None = None
    ) -> ApprovalRequest:
        """Give a pending request more time."""
        request = self._extend_request(request_id, by, reason)
        return request_from_proto(self._invoke(self._stub.Extend, request))

    def escalate(
        self, request_id: str, *, reason: str, to_risk: RiskTier | str | None = None
    ) -> ApprovalRequest:
        """Raise a pending request's risk tier."""
        request = self._escalate_request(request_id, reason, to_risk)
        return request_from_proto(self._invoke(self._stub.Escalate, request))


class AsyncApprovalClient(_Core):
    """Asyncio reviewer client; the same methods as :class:`ApprovalClient`, awaitable."""

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
        self._stub = approval_pb2_grpc.ApprovalServiceStub(channel)

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        token: Token = None,
        timeout: float | None = 30.0,
        tls: his_sdk.client.TlsConfig | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> AsyncApprovalClient:
        """Open a channel to ``target`` (``host:port``); TLS when ``tls`` is given."""
        options = his_sdk.client.channel_options(tls, 16 * 1024 * 1024)
        if tls is not None:
            credentials = his_sdk.client.channel_credentials(tls)
            channel = grpc.aio.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        return cls(channel, token=token, timeout=timeout, metadata=metadata)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncApprovalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _invoke(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self._timeout, metadata=self._call_metadata())
        except grpc.aio.AioRpcError as exc:
            raise his_sdk.client.translate_error(exc) from exc

    async def list(self, query: RequestQuery | None = None) -> RequestPage:
        """One page of requests, newest first."""
        request = query_to_proto(query or RequestQuery())
        return self._page(await self._invoke(self._stub.ListRequests, request))

    async def get(self, request_id: str) -> ApprovalRequest:
        """One request with versions, decisions and history."""
        request = approval_pb2.GetRequestRequest(id=request_id)
        return request_from_proto(await self._invoke(self._stub.GetRequest, request))

    async def decide(
        self,
        request_id: str,
        action: DecisionAction | str,
        *,
        reason: str | None = None,
        edited_resource: dict[str, Any] | None = None,
        version: int | None = None,
    ) -> ApprovalRequest:
        """Approve, approve with edits (``approve_with_edits``), or reject."""
        request = self._decide_request(request_id, action, reason, edited_resource, version)
        return request_from_proto(await self._invoke(self._stub.Decide, request))

    async def extend(
        self, request_id: str, by: datetime.timedelta, *, reason: str | None = None
    ) -> ApprovalRequest:
        """Give a pending request more time."""
        request = self._extend_request(request_id, by, reason)
        return request_from_proto(await self._invoke(self._stub.Extend, request))

    async def escalate(
        self, request_id: str, *, reason: str, to_risk: RiskTier | str | None = None
    ) -> ApprovalRequest:
        """Raise a pending request's risk tier."""
        request = self._escalate_request(request_id, reason, to_risk)
        return request_from_proto(await self._invoke(self._stub.Escalate, request))
