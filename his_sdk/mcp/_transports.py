"""The MCP transports: stdio for one agent, streamable HTTP for many (token per request)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import ASGIApp, Receive, Scope, Send

from his_sdk.client import TlsConfig
from his_sdk.mcp._budget import DEFAULT_MAX_RESULT_BYTES
from his_sdk.mcp._server import HisMcpServer

__all__ = ["McpHttpApp", "serve_http", "serve_stdio"]


async def serve_stdio(
    target: str,
    token: str,
    *,
    tls: TlsConfig | None = None,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> None:
    """Serve MCP on this process's stdin and stdout until the client closes them."""
    mcp_server = HisMcpServer(target, token=token, tls=tls, max_result_bytes=max_result_bytes)
    try:
        async with stdio_server() as (read, write):
            await mcp_server.server.run(
                read, write, mcp_server.server.create_initialization_options()
            )
    finally:
        await mcp_server.close()


class McpHttpApp:
    """The streamable HTTP endpoint (``/mcp``) as an ASGI app.

    Requests without ``Authorization: Bearer ...`` are answered 401. A session belongs to the
    token that opened it (the MCP SDK compares the credential on each request), and each tool
    call reaches the gateway with the token of the request that carries it.

    Args:
        target: The gateway's gRPC ``host:port``.
        tls: TLS settings for the gateway channel.
        max_result_bytes: The context budget of one tool result.
        path: Where the endpoint is served.
    """

    def __init__(
        self,
        target: str,
        *,
        tls: TlsConfig | None = None,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        path: str = "/mcp",
    ) -> None:
        self._target = target
        self._tls = tls
        self._max_result_bytes = max_result_bytes
        self._path = path
        self._manager: StreamableHTTPSessionManager | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Open the gateway channel and the session manager; close both on exit."""
        mcp_server = HisMcpServer(
            self._target, tls=self._tls, max_result_bytes=self._max_result_bytes
        )
        manager = StreamableHTTPSessionManager(app=mcp_server.server)
        try:
            async with manager.run():
                self._manager = manager
                yield
        finally:
            self._manager = None
            await mcp_server.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http" or scope["path"].rstrip("/") != self._path:
            await _plain(send, 404, b"not found")
            return
        token = _bearer(scope)
        if token is None:
            await _plain(
                send, 401, b"a bearer token is required", [(b"www-authenticate", b"Bearer")]
            )
            return
        if self._manager is None:
            await _plain(send, 503, b"starting")
            return
        fingerprint = hashlib.sha256(token.encode()).hexdigest()[:32]
        scope = {
            **scope,
            "user": AuthenticatedUser(AccessToken(token=token, client_id=fingerprint, scopes=[])),
        }
        await self._manager.handle_request(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            context = self.lifespan()
            await context.__aenter__()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            raise
        try:
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        finally:
            await context.__aexit__(None, None, None)
        await send({"type": "lifespan.shutdown.complete"})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text: str = bytes(value).decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


async def _plain(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


def uvicorn_server(app: ASGIApp, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for ``app`` with the SDK's logging left alone."""
    config: Any = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on")
    return uvicorn.Server(config)


async def serve_http(
    target: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    tls: TlsConfig | None = None,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> None:
    """Serve MCP over streamable HTTP at ``http://host:port/mcp`` until interrupted."""
    app = McpHttpApp(target, tls=tls, max_result_bytes=max_result_bytes)
    await uvicorn_server(app, host, port).serve()
