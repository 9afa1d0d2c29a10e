"""gRPC server interceptors: error mapping (outermost) and authentication.

Both wrap the method handler itself, so they run in the same task as the servicer and see its
exceptions; the authentication wrapper publishes the verified principal through
:data:`his_sdk.server._context.current_call`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import Any

import grpc

import his_sdk.errors
from his_sdk.auth import TokenVerifier
from his_sdk.server._context import CallContext, current_call

__all__ = [
    "ERROR_CLASS_METADATA_KEY",
    "OUTCOME_METADATA_KEY",
    "AuthenticationInterceptor",
    "ErrorMappingInterceptor",
    "call_context_from_headers",
]

_log = logging.getLogger(__name__)

OUTCOME_METADATA_KEY = his_sdk.errors.OUTCOME_METADATA_KEY
ERROR_CLASS_METADATA_KEY = his_sdk.errors.ERROR_CLASS_METADATA_KEY

_Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
_Wrapper = Callable[[_Behavior, bool], _Behavior]


def _wrap(handler: grpc.RpcMethodHandler, wrapper: _Wrapper) -> grpc.RpcMethodHandler:
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrapper(handler.unary_unary, False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrapper(handler.unary_stream, True),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Map ``HisError`` to its status code and OperationOutcome; anything else to INTERNAL.

    Unexpected exceptions are logged with their traceback and the request id; the caller gets
    a fixed message, so no patient data can leak through status details.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap the handler of every method."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return _wrap(handler, lambda behavior, stream: _error_mapped(method, behavior, stream))


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    if isinstance(exc, his_sdk.errors.HisError):
        error = exc
    else:
        request_id = _request_id_of(context)
        _log.exception("unhandled error in %s (request %s)", method, request_id)
        error = his_sdk.errors.HisError(f"internal error; quote request id {request_id}")
    await context.abort(
        error.grpc_status_code,
        error.message,
        trailing_metadata=(
            (ERROR_CLASS_METADATA_KEY, type(error).__name__),
            (OUTCOME_METADATA_KEY, error.operation_outcome_json()),
        ),
    )


def _error_mapped(method: str, behavior: _Behavior, stream: bool) -> _Behavior:
    if stream:

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in behavior(request, context):
                    yield item
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                await _abort(context, method, exc)

        return streaming

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, method, exc)

    return unary


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    pairs = context.invocation_metadata() or ()
    return {k: v for k, v in pairs if isinstance(v, str)}


def _request_id_of(context: grpc.aio.ServicerContext) -> str:
    call = current_call.get(None)
    if call is not None:
        return call.request_id
    return _metadata(context).get("x-request-id") or "unknown"


async def call_context_from_headers(
    verifier: TokenVerifier, headers: Mapping[str, str], *, peer: str, public: bool
) -> CallContext:
    """Authenticate one call from its headers; every transport builds its context here.

    Args:
        verifier: Checks the bearer token.
        headers: Lower-case header (or gRPC metadata) names to values: ``authorization``,
            ``x-request-id``, ``traceparent``, ``x-his-break-glass``.
        peer: The transport's peer address.
        public: Whether the method runs without a token; a token sent anyway is verified.

    Raises:
        his_sdk.errors.AuthenticationError: No bearer token on a protected method, or a token
            that fails verification.
    """
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    principal = None
    if token and scheme.lower() == "bearer":
        principal = await verifier.verify(token.strip())
    elif not public:
        raise his_sdk.errors.AuthenticationError(
            "a bearer token is required ('authorization: Bearer <jwt>')"
        )
    # A present but empty header is a break-glass request without a reason: the policy refuses
    # it as such instead of treating it as no request at all.
    raw_reason = headers.get("x-his-break-glass")
    reason = raw_reason.strip() if raw_reason is not None else None
    return CallContext(
        principal=principal,
        request_id=headers.get("x-request-id") or uuid.uuid4().hex,
        trace_parent=headers.get("traceparent"),
        peer=peer,
        break_glass_reason=reason,
    )


class AuthenticationInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Verify the bearer token and publish the call context to the servicer.

    Methods in ``public_methods`` (health, reflection, capabilities) run without a token.
    """

    def __init__(self, verifier: TokenVerifier, public_methods: Collection[str]) -> None:
        self._verifier = verifier
        self._public = frozenset(public_methods)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap the handler of every method with token verification."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        public = (
            handler_call_details.method in self._public
            or handler_call_details.method.startswith(("/grpc.health.v1.", "/grpc.reflection."))
        )
        return _wrap(
            handler, lambda behavior, stream: self._authenticated(behavior, stream, public)
        )

    async def _context(self, context: grpc.aio.ServicerContext, public: bool) -> CallContext:
        return await call_context_from_headers(
            self._verifier, _metadata(context), peer=context.peer() or "", public=public
        )

    def _authenticated(self, behavior: _Behavior, stream: bool, public: bool) -> _Behavior:
        if stream:

            async def streaming(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                token = current_call.set(await self._context(context, public))
                try:
                    async for item in behavior(request, context):
                        yield item
                finally:
                    current_call.reset(token)

            return streaming

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = current_call.set(await self._context(context, public))
            try:
                return await behavior(request, context)
            finally:
                current_call.reset(token)

        return unary
