"""A reviewer console over a real approval service, served by uvicorn on loopback in a thread."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import secrets
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from fhir.resources.R4B.resource import Resource
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from approval_service import ApprovalService, Database
from approval_service.console import ReviewerConsole
from his_sdk.adapter import ApprovedWrite, Interaction, WriteOutcome
from his_sdk.audit import AuditSettings, AuditTrail
from his_sdk.auth import Actor, DevIssuer, Principal
from his_sdk.config import ApprovalSettings, ConsoleSettings, RestSettings
from his_sdk.rest import RestServer
from his_sdk.server import CallContext, ProposedWrite

T = TypeVar("T")

XSS = "<img src=x onerror=window.__xss=1>"


class Clock:
    """A UTC clock tests can move forward."""

    def __init__(self) -> None:
        self.offset = datetime.timedelta(0)

    def __call__(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + self.offset


def agent(user: str, *, client_id: str = "ward-agent") -> Principal:
    """An agent's principal acting for ``user``."""
    return Principal(
        client_id=client_id,
        subject=client_id,
        on_behalf_of=Actor(subject=user, fhir_user=None, display=None),
        fhir_user=None,
        scopes=(),
        other_scopes=(),
        roles=frozenset(),
        patient=None,
        token_id=uuid.uuid4().hex,
        issuer="http://127.0.0.1/test-issuer",
        expires_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
    )


class ConsoleServer:
    """An approval service and its console on their own event loop in a thread."""

    def __init__(
        self,
        tmp: Path,
        settings: ConsoleSettings | Callable[[str], ConsoleSettings],
        *,
        beside: ASGIApp | None = None,
        **console_kwargs: Any,
    ) -> None:
        self.tmp = tmp
        self._settings = settings
        self.beside_app = beside
        self.beside: RestServer | None = None
        self.beside_url = ""
        self.console_kwargs = console_kwargs
        self.clock = Clock()
        self.executed: list[ApprovedWrite] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.service: ApprovalService | None = None
        self.console: ReviewerConsole | None = None
        self.server: RestServer | None = None
        self.url = ""

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _execute(self, write: ApprovedWrite) -> WriteOutcome:
        self.executed.append(write)
        return WriteOutcome(
            resource_type=write.resource_type,
            resource_id=write.resource_id or f"new-{len(self.executed)}",
            version_id="1",
        )

    async def _start(self) -> None:
        url = f"sqlite:///{self.tmp / 'queue.db'}"
        database = Database(url)
        audit = AuditSettings(outbox_url=url, chain_id="console-test")
        trail = AuditTrail(audit, engine=database.engine, publish=False)
        self.service = ApprovalService(
            database,
            settings=ApprovalSettings(url=url, sweep_interval_seconds=0.5),
            executor=self._execute,
            audit=trail,
        )
        await self.service.start()
        if self.beside_app is not None:
            self.beside = RestServer(
                self.beside_app, RestSettings(host="127.0.0.1", port=0, grace_seconds=0.0)
            )
            self.beside_url = f"http://127.0.0.1:{await self.beside.start()}"
        settings = self._settings
        self.settings = (
            settings if isinstance(settings, ConsoleSettings) else settings(self.beside_url)
        )
        self.console = ReviewerConsole(
            self.service, self.settings, clock=self.clock, **self.console_kwargs
        )
        self.server = RestServer(
            self.console, RestSettings(host="127.0.0.1", port=0, grace_seconds=0.0)
        )
        port = await self.server.start()
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=0)
        if self.beside is not None:
            await self.beside.stop(grace=0)
        if self.service is not None:
            await self.service.close()

    def __enter__(self) -> ConsoleServer:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def propose(
        self,
        resource: Resource | None,
        *,
        user: str = "dr-agentuser",
        interaction: Interaction = Interaction.CREATE,
        resource_id: str | None = None,
        current: Resource | None = None,
        patient_id: str = "pat-1",
        justification: str = "Started per ward round plan.",
    ) -> str:
        """Propose a write as an agent acting for ``user``; returns the request (Task) id."""
        assert self.service is not None
        write = ProposedWrite(
            call=CallContext(principal=agent(user), request_id=uuid.uuid4().hex),
            interaction=interaction,
            resource_type=(resource or current).get_resource_type(),  # type: ignore[union-attr]
            resource_id=resource_id,
            resource=resource,
            current=current,
            patient_id=patient_id,
            justification=justification,
            idempotency_key=uuid.uuid4().hex,
        )
        result = self.run(self.service.propose(write))
        task_id = result.task.id
        assert task_id is not None
        return str(task_id)


def login(page: Any, subject: str, roles: list[str], *, display: str | None = None) -> None:
    """Log a Playwright ``page`` in through the dev login."""
    page.goto("/login")
    page.fill("input[name=subject]", subject)
    if display:
        page.fill("input[name=display]", display)
    for role in roles:
        page.check(f"input[name=roles][value={role}]")
    page.click("form.dev-login button[type=submit]")
    page.wait_for_url("**/queue**")


class LoopbackOidcProvider:
    """A tiny OpenID provider on loopback, signing ID tokens with the dev issuer's key.

    ``/authorize`` logs in whoever ``login_hint`` names at once (no login form) and redirects
    back with a one-time code; ``/token`` checks the client secret, redirect URI and PKCE
    verifier before returning an ID token carrying the request's nonce.
    """

    def __init__(self, tmp: Path, *, client_id: str, client_secret: str) -> None:
        self.tmp = tmp
        self.client_id = client_id
        self.client_secret = client_secret
        self.users: dict[str, dict[str, Any]] = {}
        self.issuer: DevIssuer | None = None
        self.url = ""
        self._codes: dict[str, dict[str, str]] = {}
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._metadata),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
            ]
        )

    def bind(self, url: str) -> None:
        """Make ``url`` the issuer (once the provider's port is known)."""
        self.url = url
        self.issuer = DevIssuer.init(self.tmp / "oidc-issuer", issuer=url)

    async def _metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        assert self.issuer is not None
        return JSONResponse(self.issuer.jwks())

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id or q.get("response_type") != "code":
            return JSONResponse({"error": "unauthorized_client"}, status_code=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self._codes[code] = {
            "user": q.get("login_hint") or "",
            "nonce": q.get("nonce") or "",
            "redirect_uri": q.get("redirect_uri") or "",
            "challenge": q["code_challenge"],
        }
        query = urllib.parse.urlencode({"code": code, "state": q.get("state") or ""})
        return RedirectResponse(f"{q.get('redirect_uri')}?{query}", status_code=302)

    async def _token(self, request: Request) -> Response:
        expected = (
            "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        )
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = urllib.parse.parse_qs((await request.body()).decode())
        grant = self._codes.pop(form.get("code", [""])[0], None)
        verifier = form.get("code_verifier", [""])[0]
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if (
            grant is None
            or form.get("redirect_uri", [""])[0] != grant["redirect_uri"]
            or challenge != grant["challenge"]
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        user = self.users[grant["user"]]
        assert self.issuer is not None
        id_token = self.issuer.mint(
            client_id=self.client_id,
            audience=self.client_id,
            scopes="openid profile",
            roles=user["roles"],
            fhir_user=user.get("fhirUser"),
            ttl_seconds=300,
            extra_claims={
                "sub": grant["user"],
                "nonce": grant["nonce"],
                "name": user.get("name"),
                "azp": self.client_id,
                "client_id": None,
                "scope": None,
            },
        )
        return JSONResponse(
            {"access_token": "opaque", "token_type": "Bearer", "id_token": id_token}
        )
