"""A dev issuer on disk, settings that trust it, a controllable clock and a loopback JWKS server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from his_sdk.auth import DevIssuer
from his_sdk.config import AuthSettings

ISSUER = "https://idp.example.test/realms/hospital"
AUDIENCE = "his-gateway"


class Clock:
    """Wall-clock seconds that tests move forward by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class JwksServer:
    """A real HTTP server on 127.0.0.1 serving a JWKS document that tests replace."""

    def __init__(self) -> None:
        self.body = b'{"keys": []}'
        self.status = 200
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks"

    def serve(self, issuer: DevIssuer) -> None:
        self.body = issuer.jwks_path.read_bytes()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture(scope="session")
def shared_issuer(tmp_path_factory) -> DevIssuer:
    """An RS256 issuer that no test rotates."""
    return DevIssuer.init(tmp_path_factory.mktemp("issuer"), issuer=ISSUER)


@pytest.fixture
def issuer(tmp_path) -> DevIssuer:
    """A fresh issuer a test may rotate."""
    return DevIssuer.init(tmp_path / "issuer", issuer=ISSUER)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
def file_settings():
    """AuthSettings trusting an issuer's jwks.json, with overrides."""

    def make(issuer: DevIssuer, **overrides: object) -> AuthSettings:
        return AuthSettings(
            issuer=ISSUER, audience=AUDIENCE, jwks_file=issuer.jwks_path, **overrides
        )

    return make
