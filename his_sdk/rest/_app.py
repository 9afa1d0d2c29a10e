"""The FHIR R4 REST facade: an ASGI app that calls the same service core as gRPC."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from fhir.resources.R4B.resource import Resource
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import his_sdk.errors
from his_sdk._fhir import model_class, parse_resource, resource_to_dict
from his_sdk.auth import TokenVerifier
from his_sdk.config import AuthSettings, RestSettings
from his_sdk.search import lift_result_parameters
from his_sdk.server._context import CallContext, current_call
from his_sdk.server._interceptors import call_context_from_headers
from his_sdk.server._service import FhirService, Shaping
from his_sdk.server._writes import ProposalResult

from ._bundle import CURSOR_PARAMETER, searchset, shaped
from ._media import FHIR_JSON, negotiate, render
from ._problems import HttpProblem, http_status_of
from ._smart import oauth_uris_extension, smart_configuration

__all__ = ["IDEMPOTENCY_HEADER", "JUSTIFICATION_HEADER", "FhirRestApp"]

_log = logging.getLogger(__name__)

JUSTIFICATION_HEADER = "x-his-justification"
"""Header carrying the agent's reason for a proposed write (shown to reviewers; required)."""
IDEMPOTENCY_HEADER = "idempotency-key"
"""Header whose value makes a repeated proposal return the same approval Task."""

# Parameters about the HTTP exchange; they never reach the service.
_FORMAT_PARAMETERS = frozenset({"_format", "_pretty"})
_READ_PARAMETERS = frozenset({"_format", "_pretty", "_elements", "_summary"})
_BODY_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
_FORM = "application/x-www-form-urlencoded"
# fhirpy's count() asks with Aidbox's ``_totalMethod``; it means FHIR's ``_total``.
_TOTAL_ALIAS = {
    ("_totalMethod", "count"): ("_total", "accurate"),
    ("_totalMethod", "estimate"): ("_total", "estimate"),
}


@dataclass(frozen=True)
class _Reply:
    """How the caller wants answers: negotiated media type and ``_pretty``."""

    media_type: str = FHIR_JSON
    pretty: bool = False

    def send(
        self, body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        return render(
            body, status=status, media_type=self.media_type, pretty=self.pretty, headers=headers
        )


_Handler = Callable[[Request, CallContext, _Reply], Awaitable[Response]]
_Endpoint = Callable[[Request], Awaitable[Response]]


class FhirRestApp:
    """The FHIR REST facade over one :class:`his_sdk.server.FhirService`.

    Every request is authenticated by the same helper the gRPC interceptor uses, then calls
    the service core, so authorization, paging cursors and validation are the gRPC ones.
    Writes are proposals answered ``202 Accepted`` with the approval Task and its location.
    Errors are OperationOutcome resources with the HTTP status of the error class.

    Args:
        service: The service core the gateway's gRPC servicer also calls.
        verifier: Verifies bearer tokens.
        rest: The facade's settings.
        auth: The gateway's token settings (issuer and JWKS for the SMART configuration).
    """

    def __init__(
        self,
        service: FhirService,
        verifier: TokenVerifier,
        *,
        rest: RestSettings,
        auth: AuthSettings,
    ) -> None:
        self._service = service
        self._verifier = verifier
        self._rest = rest
        self._auth = auth
        self._app = Starlette(
            routes=[
                Route("/metadata", self._endpoint(self._metadata, True), methods=["GET"]),
                Route(
                    "/.well-known/smart-configuration",
                    self._endpoint(self._smart_configuration, True),
                    methods=["GET"],
                ),
                Route(
                    "/{resource_type}/_search",
                    self._endpoint(self._search, False),
                    methods=["POST"],
                ),
                Route("/Task/{task_id}", self._endpoint(self._task, False), methods=["GET"]),
                Route(
                    "/{resource_type}/{resource_id}",
                    self._endpoint(self._read, False),
                    methods=["GET"],
                ),
                Route(
                    "/{resource_type}/{resource_id}",
                    self._endpoint(self._delete, False),
                    methods=["DELETE"],
                ),
                Route(
                    "/{resource_type}/{resource_id}",
                    self._endpoint(self._update, False),
                    methods=["PUT"],
                ),
                Route("/{resource_type}", self._endpoint(self._search, False), methods=["GET"]),
                Route("/{resource_type}", self._endpoint(self._create, False), methods=["POST"]),
            ],
            exception_handlers={HTTPException: self._routing_problem},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        await self._app(scope, receive, send)

    # One place turns every failure into an OperationOutcome.

    def _endpoint(self, handler: _Handler, public: bool) -> _Endpoint:
        async def endpoint(request: Request) -> Response:
            reply = _Reply()
            call: CallContext | None = None
            try:
                reply = _Reply(
                    negotiate(request.headers.get("accept"), request.query_params.get("_format")),
                    request.query_params.get("_pretty") == "true",
                )
                call = await call_context_from_headers(
                    self._verifier, request.headers, peer=_peer(request), public=public
                )
                token = current_call.set(call)
                try:
                    response = await handler(request, call, reply)
                finally:
                    current_call.reset(token)
            except his_sdk.errors.HisError as exc:
                response = self._error(request, reply, exc)
            except HttpProblem as exc:
                response = reply.send(exc.operation_outcome(), exc.status)
            except Exception:
                request_id = call.request_id if call else request.headers.get("x-request-id")
                _log.exception(
                    "unhandled error in %s %s (request %s)",
                    request.method,
                    request.url.path,
                    request_id or "unknown",
                )
                error = his_sdk.errors.HisError(
                    f"internal error; quote request id {request_id or 'unknown'}"
                )
                response = reply.send(error.operation_outcome(), 500)
            if call is not None:
                response.headers["x-request-id"] = call.request_id
            return response

        return endpoint

    def _error(self, request: Request, reply: _Reply, error: his_sdk.errors.HisError) -> Response:
        status = http_status_of(error)
        headers: dict[str, str] = {}
        if status == 401:
            challenge = f'Bearer realm="{_quoted(self._auth.audience)}"'
            if request.headers.get("authorization"):
                # RFC 6750 3.1: an error code only when the request carried a token.
                challenge += (
                    f', error="invalid_token", error_description="{_quoted(error.message)}"'
                )
            headers["www-authenticate"] = challenge
        elif status == 403 and error.diagnostics == "insufficient_scope":
            headers["www-authenticate"] = (
                f'Bearer realm="{_quoted(self._auth.audience)}", error="insufficient_scope"'
            )
        return reply.send(error.operation_outcome(), status, headers)

    async def _routing_problem(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            problem = HttpProblem(
                405,
                "not-supported",
                f"{request.method} is not supported on {request.url.path}",
                diagnostics=f"allowed: {allowed}" if allowed else None,
            )
        else:
            problem = HttpProblem(
                exc.status_code, "not-found", f"no FHIR endpoint at {request.url.path}"
            )
        return render(
            problem.operation_outcome(), status=problem.status, headers=dict(exc.headers or {})
        )

    # Endpoints.

    async def _metadata(self, request: Request, call: CallContext, reply: _Reply) -> Response:
        statement = self._service.capabilities()
        statement.setdefault("implementation", {})["url"] = self._base(request)
        extension = oauth_uris_extension(self._rest)
        if extension is not None:
            for rest in statement.get("rest", []):
                rest.setdefault("security", {}).setdefault("extension", []).append(extension)
        return reply.send(statement)

    async def _smart_configuration(
        self, request: Request, call: CallContext, reply: _Reply
    ) -> Response:
        document = smart_configuration(self._rest, self._auth)
        if document is None:
            raise his_sdk.errors.NotFoundError(
                "this gateway publishes no SMART configuration (rest.token_endpoint is unset)"
            )
        # SMART clients expect plain JSON here, whatever they sent in Accept.
        return render(document, media_type="application/json", pretty=reply.pretty)

    async def _read(self, request: Request, call: CallContext, reply: _Reply) -> Response:
        resource_type = request.path_params["resource_type"]
        resource_id = request.path_params["resource_id"]
        shaping = _read_shaping(request)
        resource = await self._service.read(call, resource_type, resource_id)
        headers = _version_headers(resource)
        etag = headers.get("etag")
        if etag and etag in _etags(request.headers.get("if-none-match")):
            return reply.send(None, 304, headers)
        return reply.send(shaped(resource, shaping), 200, headers)

    async def _search(self, request: Request, call: CallContext, reply: _Reply) -> Response:
        resource_type = request.path_params["resource_type"]
        pairs = list(request.query_params.multi_items())
        if request.method == "POST":
            pairs += await _form(request, self._rest.max_body_bytes)
        cursors = [value for name, value in pairs if name == CURSOR_PARAMETER]
        if len(cursors) > 1:
            raise his_sdk.errors.InvalidRequestError(
                f"{CURSOR_PARAMETER} may appear once", expression=[CURSOR_PARAMETER]
            )
        # FHIR ignores parameters without a value.
        params = [
            _TOTAL_ALIAS.get((name, value), (name, value))
            for name, value in pairs
            if value != "" and name != CURSOR_PARAMETER and name not in _FORMAT_PARAMETERS
        ]
        cursor = cursors[0] if cursors else None
        result = await self._service.search(call, resource_type, params, cursor=cursor)
        bundle = searchset(self._base(request), resource_type, params, result, cursor=cursor)
        return reply.send(bundle)

    # Writes are proposals: the answer is 202 with the approval Task that tracks them.

    async def _create(self, request: Request, call: CallContext, reply: _Reply) -> Response:
        resource_type = request.path_params["resource_type"]
        body = await self._resource_body(request, resource_type, None)
        result = await self._service.create(
            call,
            resource_type,
            body,
            justification=request.headers.get(JUSTIFICATION_HEADER, ""),
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
        )
        return self._accepted(request, reply, result)

    async def _update(self, request: Request, call: CallContext, reply: _Reply) -> Response:
        resource_type = request.path_params["resource_type"]
        resource_id = request.path_params["resource_id"]
        body = await self._resource_body(request, resource_type, resource_id)
        result = await self._service.update(
            call,
            resource_type,
            resource_id,
            body,
            justification=request.headers.get(JUSTIFICATION_HEADER, ""),
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
        )
        return self._accepted(request, reply, result)

    async def _delete(self, request: Request, call: CallContext, reply: _Reply) -> Response:
        result = await self._service.delete(
            call,
            request.path_params["resource_type"],
            request.path_params["resource_id"],
            justification=request.headers.get(JUSTIFICATION_HEADER, ""),
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
        )
        return self._accepted(request, reply, result)

    async def _task(self, request: Request, call: CallContext, reply: _Reply) -> Response:
        task = await self._service.get_task(call, request.path_params["task_id"])
        return reply.send(resource_to_dict(task), 200, _version_headers(task))

    def _accepted(self, request: Request, reply: _Reply, result: ProposalResult) -> Response:
        location = f"{self._base(request)}/Task/{result.task.id}"
        headers = {"location": location, "content-location": location}
        return reply.send(resource_to_dict(result.task), 202, headers)

    # Helpers.

    def _base(self, request: Request) -> str:
        if self._rest.base_url:
            return self._rest.base_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    async def _resource_body(
        self, request: Request, resource_type: str, resource_id: str | None
    ) -> bytes:
        model_class(resource_type)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in _BODY_TYPES:
            raise HttpProblem(
                415, "not-supported", f"send the resource as {FHIR_JSON}", diagnostics=media
            )
        body = await _body(request, self._rest.max_body_bytes)
        try:
            resource = parse_resource(resource_type, body)
        except his_sdk.errors.UpstreamDataError as exc:
            raise HttpProblem(
                422,
                "invalid",
                f"the request body is not a valid FHIR R4 {resource_type}",
                diagnostics=exc.diagnostics,
            ) from exc
        if resource_id is not None and resource.id != resource_id:
            raise his_sdk.errors.InvalidRequestError(
                "the resource id in the body must equal the id in the URL", expression=["id"]
            )
        return body


def _peer(request: Request) -> str:
    client = request.client
    return f"http:{client.host}:{client.port}" if client else "http:unknown"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def _read_shaping(request: Request) -> Shaping:
    pairs = list(request.query_params.multi_items())
    unknown = sorted({name for name, _ in pairs if name not in _READ_PARAMETERS})
    if unknown:
        raise his_sdk.errors.InvalidRequestError(
            f"read takes no parameter {', '.join(unknown)}",
            diagnostics="allowed: _elements, _summary, _format, _pretty",
            expression=unknown,
        )
    lifted = lift_result_parameters(
        [(name, value) for name, value in pairs if name not in _FORMAT_PARAMETERS]
    )
    return Shaping(lifted.elements, lifted.summary)


def _version_headers(resource: Resource) -> dict[str, str]:
    headers: dict[str, str] = {}
    meta = resource.meta
    if meta is not None and meta.versionId:
        headers["etag"] = f'W/"{meta.versionId}"'
    if meta is not None and meta.lastUpdated is not None:
        headers["last-modified"] = format_datetime(meta.lastUpdated, usegmt=True)
    return headers


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    tags = {tag.strip() for tag in header.split(",")}
    # A strong validator sent back matches the weak one this facade issues.
    return tags | {f"W/{tag}" for tag in tags if not tag.startswith("W/")}


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HttpProblem(413, "too-costly", f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpProblem(413, "too-costly", f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _form(request: Request, limit: int) -> list[tuple[str, str]]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != _FORM:
        raise HttpProblem(415, "not-supported", f"_search takes a {_FORM} body")
    body = await _body(request, limit)
    try:
        return parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise his_sdk.errors.InvalidRequestError("the form body is not UTF-8") from exc
