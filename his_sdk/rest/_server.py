"""Serve the REST facade with uvicorn inside the gateway's event loop, beside gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from his_sdk.config import RestSettings

__all__ = ["RestServer"]

_STARTUP_SECONDS = 30.0


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the gateway that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RestServer:
    """One uvicorn listener for an ASGI app; ``await start()`` returns the bound port.

    Args:
        app: The ASGI application (normally :class:`his_sdk.rest.FhirRestApp`).
        settings: Host, port, access log and shutdown grace.
        tls_cert: PEM certificate chain; HTTPS when this and ``tls_key`` are set.
        tls_key: PEM private key for ``tls_cert``.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: RestSettings,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self._app = app
        self._settings = settings
        self._tls = (tls_cert, tls_key) if tls_cert and tls_key else None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def scheme(self) -> str:
        """``https`` with TLS, else ``http``."""
        return "https" if self._tls else "http"

    async def start(self) -> int:
        """Bind, start serving and return the bound port.

        Raises:
            OSError: The address cannot be bound.
            RuntimeError: The server stopped during startup.
        """
        sock = _listen(self._settings.host, self._settings.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=self._settings.access_log,
            server_header=False,
            ws="none",
            timeout_graceful_shutdown=max(1, round(self._settings.grace_seconds)),
            ssl_certfile=str(self._tls[0]) if self._tls else None,
            ssl_keyfile=str(self._tls[1]) if self._tls else None,
        )
        server = _EmbeddedServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="his-rest-server")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STARTUP_SECONDS
        while not server.started:
            if task.done():
                sock.close()
                task.result()
                raise RuntimeError("the REST server stopped during startup")
            if loop.time() > deadline:
                server.should_exit = True
                await task
                raise RuntimeError("the REST server did not start in time")
            await asyncio.sleep(0.005)
        self._server, self._task = server, task
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting requests and let in-flight ones finish within ``grace`` seconds."""
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        if grace is not None and grace <= 0:
            # Skip waiting for open connections; the timeout only bounds closing the sockets.
            server.force_exit = True
            server.config.timeout_graceful_shutdown = 1
        elif grace is not None:
            server.config.timeout_graceful_shutdown = max(1, round(grace))
        server.should_exit = True
        await task


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP given explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    # the listening socket names its protocol; without it every response pays Nagle's delay.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock
