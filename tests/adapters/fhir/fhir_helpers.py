"""Real loopback servers for the FHIR adapter tests.

``TokenServer`` is a minimal SMART Backend Services authorization server (client credentials
with a ``private_key_jwt`` assertion) that signs access tokens with a dev issuer.
``FaultProxy`` is an HTTP/1.1 proxy that forwards to an upstream and injects faults per
request: slow answers, statuses with ``Retry-After``, connection resets.
``VersionedStore`` is a tiny versioned FHIR server for creates and conditional updates.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from his_sdk.auth import DevIssuer
from his_sdk.config import RestSettings
from his_sdk.rest import RestServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

REPO = Path(__file__).resolve().parents[3]
SMALL_BUNDLE = (
    REPO / "tests/data/synthea/Aaron697_Abernathy524_55eca691-c7bf-6db3-4608-d7830237ecbb.json"
)
A_ISSUER, A_AUDIENCE = "http://127.0.0.1/gateway-a-issuer", "gateway-a"
B_ISSUER, B_AUDIENCE = "http://127.0.0.1/gateway-b-issuer", "gateway-b"
SERVED = ["Patient", "Observation", "Condition", "Encounter"]
SYSTEM_SCOPES = {f"system/{t}.rs" for t in SERVED}
PATIENT = "1"
"""The seeded patient; the legacy row names Practitioner/1 as primary care provider."""
DOCTOR = dict(roles=("clinician",), act_subject="dr.one", act_fhir_user="Practitioner/1")
STRANGER = dict(roles=("clinician",), act_subject="dr.x", act_fhir_user="Practitioner/99")
AGENT_SCOPES = "user/Patient.rs user/Observation.rs user/Condition.rs"


def public_jwks(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    private = {"d", "p", "q", "dp", "dq", "qi"}
    return {"keys": [{k: v for k, v in data.items() if k not in private}]}


@dataclass
class Client:
    """A registered backend client: its public keys and the scopes it may get."""

    jwks: dict[str, Any]
    allowed_scopes: set[str]


class TokenServer:
    """A SMART Backend Services token endpoint on loopback, backed by a dev issuer."""

    def __init__(self, issuer: DevIssuer, audience: str, *, token_seconds: int = 300) -> None:
        self.issuer = issuer
        self.audience = audience
        self.token_seconds = token_seconds
        self.clients: dict[str, Client] = {}
        self.issued = 0
        self.expired_to_issue = 0
        self.seen_jti: set[str] = set()
        self.rejections: list[str] = []
        self._server = RestServer(
            Starlette(routes=[Route("/token", self._token, methods=["POST"])]),
            RestSettings(port=0, grace_seconds=0),
        )
        self.url = ""

    async def start(self) -> str:
        port = await self._server.start()
        self.url = f"http://127.0.0.1:{port}/token"
        return self.url

    async def stop(self) -> None:
        await self._server.stop(0)

    def _reject(self, error: str, why: str) -> JSONResponse:
        self.rejections.append(why)
        return JSONResponse({"error": error, "error_description": why}, status_code=400)

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != "client_credentials":
            return self._reject("unsupported_grant_type", "client_credentials only")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return self._reject("invalid_client", "a JWT client assertion is required")
        assertion = str(form.get("client_assertion", ""))
        # Find the client by the assertion's (not yet verified) issuer, then verify with the
        # keys that client registered.
        try:
            claims_hint = json.loads(extract_compact(assertion.encode()).payload)
        except (JoseError, ValueError):
            return self._reject("invalid_client", "malformed assertion")
        client_id = str(claims_hint.get("iss", ""))
        client = self.clients.get(client_id)
        if client is None:
            return self._reject("invalid_client", "unknown client")
        try:
            token = jwt.decode(
                assertion, KeySet.import_key_set(client.jwks), algorithms=["RS384", "ES384"]
            )
        except JoseError as exc:
            return self._reject("invalid_client", f"bad signature: {exc}")
        claims = token.claims
        now = time.time()
        if token.header.get("typ") != "JWT" or not token.header.get("kid"):
            return self._reject("invalid_client", "assertion header needs typ JWT and a kid")
        if claims.get("sub") != client_id or claims.get("aud") != self.url:
            return self._reject("invalid_client", "iss, sub or aud wrong")
        if not now < claims.get("exp", 0) <= now + 300 + 5:
            return self._reject("invalid_client", "exp missing, past or over five minutes")
        jti = claims.get("jti")
        if not jti or jti in self.seen_jti:
            return self._reject("invalid_client", "jti missing or replayed")
        self.seen_jti.add(jti)
        requested = set(str(form.get("scope", "")).split())
        granted = _expand(requested, client.allowed_scopes)
        if not granted:
            return self._reject("invalid_scope", "no requested scope is allowed")
        ttl = self.token_seconds
        if self.expired_to_issue > 0:
            self.expired_to_issue -= 1
            ttl = -120
        access = self.issuer.mint(
            client_id=client_id,
            audience=self.audience,
            scopes=" ".join(sorted(granted)),
            roles=("system",),
            ttl_seconds=ttl,
        )
        self.issued += 1
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": self.token_seconds,
                "scope": " ".join(sorted(granted)),
            },
            headers={"Cache-Control": "no-store"},
        )


def _expand(requested: set[str], allowed: set[str]) -> set[str]:
    """Requested scopes narrowed to what the client may have (``system/*.rs`` expands)."""
    granted: set[str] = set()
    for scope in requested:
        if scope in allowed:
            granted.add(scope)
        elif scope == "system/*.rs":
            granted |= {s for s in allowed if s.startswith("system/")}
    return granted


@dataclass
class Fault:
    """One injected fault for the next request under ``path``: ``slow`` (delay, then
    forward), ``status`` (answer without forwarding) or ``reset`` (drop the connection with a
    TCP RST)."""

    kind: str
    path: str = "/"
    delay: float = 0.0
    status: int = 503
    retry_after: str | None = None


@dataclass
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


class FaultProxy:
    """An HTTP/1.1 proxy on loopback in front of ``upstream``, with per-request faults."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: deque[Fault] = deque()
        self.requests: list[str] = []
        self.forwarded = 0
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, fault: Fault, times: int = 1) -> None:
        self.faults.extend([fault] * times)

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=30)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
        if self._client is not None:
            await self._client.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                self.requests.append(f"{request.method} {request.target.split('?')[0]}")
                fault = self._take_fault(request.target)
                if fault is not None and fault.kind == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if fault is not None and fault.kind == "status":
                    body = json.dumps(
                        {
                            "resourceType": "OperationOutcome",
                            "issue": [
                                {
                                    "severity": "error",
                                    "code": "transient",
                                    "details": {"text": "injected"},
                                }
                            ],
                        }
                    ).encode()
                    headers = [("Content-Type", "application/fhir+json")]
                    if fault.retry_after is not None:
                        headers.append(("Retry-After", fault.retry_after))
                    await _write_response(writer, fault.status, headers, body)
                    continue
                if fault is not None and fault.kind == "slow":
                    await asyncio.sleep(fault.delay)
                status, headers, body = await self._forward(request)
                await _write_response(writer, status, headers, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    def _take_fault(self, target: str) -> Fault | None:
        for fault in self.faults:
            if target.startswith(fault.path):
                self.faults.remove(fault)
                return fault
        return None

    async def _forward(self, request: _Request) -> tuple[int, list[tuple[str, str]], bytes]:
        assert self._client is not None
        hop = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}
        headers = [(k, v) for k, v in request.headers if k.lower() not in hop]
        response = await self._client.request(
            request.method, self.upstream + request.target, headers=headers, content=request.body
        )
        self.forwarded += 1
        out = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in hop | {"content-encoding"}
        ]
        return response.status_code, out, response.content


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    body = await reader.readexactly(length) if length else b""
    return _Request(method, target, headers, body)


async def _write_response(
    writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


_REASONS = {
    200: "OK",
    201: "Created",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


@dataclass
class VersionedStore:
    """A tiny FHIR server with versions: read, search by ``_tag``, create, update.

    Creates honour ``If-None-Exist: _tag=system|code``; updates honour ``If-Match``.
    """

    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1
    creates: int = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/metadata", self._metadata, methods=["GET"]),
                Route("/{type}/{id}", self._read, methods=["GET"]),
                Route("/{type}/{id}", self._update, methods=["PUT"]),
                Route("/{type}", self._search, methods=["GET"]),
                Route("/{type}", self._create, methods=["POST"]),
            ]
        )

    def put(self, data: dict[str, Any]) -> None:
        data = dict(data)
        data["meta"] = {**(data.get("meta") or {}), "versionId": "1"}
        self.resources[(data["resourceType"], data["id"])] = data

    async def _metadata(self, request: Request) -> Response:
        resource = {
            "interaction": [{"code": c} for c in ("read", "search-type", "create", "update")],
            "searchParam": [
                {"name": "_id", "type": "token"},
                {"name": "_tag", "type": "token"},
                {"name": "patient", "type": "reference"},
            ],
        }
        return _fhir(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "date": "2024-01-01",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "format": ["json"],
                "rest": [
                    {
                        "mode": "server",
                        "resource": [
                            {"type": t, **resource} for t in ("Patient", "Observation", "Task")
                        ],
                    }
                ],
            }
        )

    async def _read(self, request: Request) -> Response:
        data = self.resources.get((request.path_params["type"], request.path_params["id"]))
        if data is None:
            return _fhir({"resourceType": "OperationOutcome", "issue": []}, 404)
        return _fhir(data, headers={"ETag": f'W/"{data["meta"]["versionId"]}"'})

    def _with_tag(self, resource_type: str, tag: str) -> list[dict[str, Any]]:
        system, _, code = tag.partition("|")
        return [
            r
            for (t, _), r in self.resources.items()
            if t == resource_type
            and any(
                x.get("system") == system and x.get("code") == code
                for x in r["meta"].get("tag", [])
            )
        ]

    async def _search(self, request: Request) -> Response:
        tag = request.query_params.get("_tag", "")
        matches = self._with_tag(request.path_params["type"], tag)
        return _fhir(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matches),
                "entry": [{"resource": r} for r in matches],
            }
        )

    async def _create(self, request: Request) -> Response:
        resource_type = request.path_params["type"]
        condition = request.headers.get("if-none-exist", "")
        if condition.startswith("_tag="):
            existing = self._with_tag(resource_type, condition.removeprefix("_tag="))
            if existing:
                return _fhir(existing[0], 200)
        data = json.loads(await request.body())
        data["id"] = f"n{self.next_id}"
        self.next_id += 1
        data["meta"] = {**(data.get("meta") or {}), "versionId": "1"}
        self.resources[(resource_type, data["id"])] = data
        self.creates += 1
        return _fhir(data, 201, headers={"Location": f"/{resource_type}/{data['id']}/_history/1"})

    async def _update(self, request: Request) -> Response:
        key = (request.path_params["type"], request.path_params["id"])
        current = self.resources.get(key)
        if current is None:
            return _fhir({"resourceType": "OperationOutcome", "issue": []}, 404)
        version = current["meta"]["versionId"]
        if request.headers.get("if-match") not in (f'W/"{version}"', f'"{version}"'):
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "conflict",
                        "details": {"text": "version conflict"},
                    }
                ],
            }
            return _fhir(outcome, 412)
        data = json.loads(await request.body())
        data["meta"] = {**(data.get("meta") or {}), "versionId": str(int(version) + 1)}
        self.resources[key] = data
        return _fhir(data, 200)


def _fhir(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(body), status_code=status, headers=headers, media_type="application/fhir+json"
    )
