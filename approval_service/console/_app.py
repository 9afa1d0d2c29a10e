"""The reviewer console: server-rendered pages over the approval service, no script at all."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import secrets
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jinja2
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import his_sdk.errors
from his_sdk.config import ConsoleSettings
from his_sdk.rest import http_status_of
from his_sdk.server import CallContext

from .._model import ApprovalRequest, DecisionAction, RequestQuery, RequestStatus
from .._policy import RiskTier
from .._service import ApprovalService
from ._audit import request_audit_events
from ._oidc import LoginTransaction, OidcLogin
from ._render import changes, narrative, resource_rows
from ._session import Reviewer, Session, SessionCodec

__all__ = ["ReviewerConsole", "create_app"]

_log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
SESSION_COOKIE = "his_console_session"
LOGIN_COOKIE = "his_console_login"
_LOGIN_TTL = datetime.timedelta(minutes=10)
_MAX_FORM_BYTES = 256 * 1024
_CLIENT_ID = "his-reviewer-console"
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _safe_next(value: str | None) -> str:
    # Only paths on this site: no scheme, no host, no "//evil" or "/\evil" tricks.
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/queue"
    return value


class _SecurityHeaders:
    """Adds the console's security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = _CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                # Pages carry patient data: never keep them in shared or browser caches.
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Form:
    """A URL-encoded form body."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None."""
        values = self._fields.get(name)
        return values[0] if values else None

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``."""
        return list(self._fields.get(name, []))


class ReviewerConsole:
    """The reviewer console as an ASGI app.

    Every operation goes through the :class:`ApprovalService` with a principal built from the
    session's reviewer, so the console enforces exactly what gRPC enforces: roles per risk
    tier, the self-approval ban, two distinct approvers for the highest tier, reasons.

    Args:
        service: The approval service (the gateway's queue).
        settings: The ``console`` settings.
        tls: Whether the console's listener serves HTTPS (marks cookies ``Secure`` unless
            ``settings.secure_cookie`` says otherwise).
        clock: The time source (UTC-aware); tests move it to expire sessions.
        oidc_transport: The HTTP transport for calls to the OIDC issuer (tests).
    """

    def __init__(
        self,
        service: ApprovalService,
        settings: ConsoleSettings,
        *,
        tls: bool = False,
        clock: Callable[[], datetime.datetime] = _now,
        oidc_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not settings.dev_login and settings.oidc is None:
            raise ValueError("the console needs console.oidc or console.dev_login: true")
        self.service = service
        self.settings = settings
        self._clock = clock
        self._secure = settings.secure_cookie if settings.secure_cookie is not None else tls
        secret = settings.session_secret.encode() if settings.session_secret else None
        if secret is None:
            _log.warning("console.session_secret is not set: sessions end when this process does")
        self.codec = SessionCodec(
            secret or secrets.token_bytes(32),
            idle_timeout=settings.idle_timeout,
            absolute_timeout=settings.absolute_timeout,
        )
        self.oidc = (
            OidcLogin(settings.oidc, transport=oidc_transport)
            if settings.oidc is not None
            else None
        )
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._templates.filters["when"] = _when
        self._templates.filters["pretty_json"] = _pretty_json
        routes = [
            Route("/", self._home),
            Route("/login", self._login_page),
            Route("/login/dev", self._dev_login, methods=["POST"]),
            Route("/login/oidc", self._oidc_start),
            Route("/auth/callback", self._oidc_callback),
            Route("/logout", self._logout, methods=["POST"]),
            Route("/queue", self._queue),
            Route("/requests/{request_id}", self._detail),
            Route("/requests/{request_id}/decide", self._decide, methods=["POST"]),
            Route("/requests/{request_id}/extend", self._extend, methods=["POST"]),
            Route("/requests/{request_id}/escalate", self._escalate, methods=["POST"]),
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ]
        self._app: ASGIApp = _SecurityHeaders(Starlette(routes=routes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        await self._app(scope, receive, send)

    # -- sessions ------------------------------------------------------------------------------

    def _load(self, request: Request) -> tuple[Session | None, bool]:
        """The request's live session, and whether a session cookie was there but expired."""
        session = self.codec.decode(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None, False
        if self.codec.expired(session, self._clock()):
            return None, True
        return session, False

    def _store(self, response: Response, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.codec.encode(session),
            max_age=int(self.settings.absolute_timeout.total_seconds()),
            path="/",
            secure=self._secure,
            httponly=True,
            samesite="strict",
        )

    def _forget(self, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path="/", secure=self._secure, httponly=True, samesite="strict"
        )

    def _to_login(self, request: Request, *, expired: bool) -> Response:
        target = request.url.path
        if request.method == "GET" and request.url.query:
            target += "?" + request.url.query
        query = {"next": target}
        if expired:
            query["expired"] = "1"
        response = RedirectResponse("/login?" + urllib.parse.urlencode(query), status_code=303)
        if expired:
            self._forget(response)
        return response

    def _call(self, session: Session) -> CallContext:
        reviewer = session.reviewer
        assert reviewer is not None
        expires = session.created + self.settings.absolute_timeout
        return CallContext(
            principal=reviewer.principal(
                client_id=_CLIENT_ID, session_id=session.id, expires_at=expires
            ),
            request_id=str(uuid.uuid4()),
            peer="his-reviewer-console",
        )

    async def _form(self, request: Request) -> _Form:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM_BYTES:
                raise his_sdk.errors.InvalidRequestError("the form is too large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise his_sdk.errors.InvalidRequestError("the form is not UTF-8") from exc
        return _Form(urllib.parse.parse_qs(text, keep_blank_values=True))

    async def _posted(self, request: Request) -> tuple[Session | None, _Form | Response]:
        """The session and form of a POST whose CSRF token matches; else a refusal."""
        session, expired = self._load(request)
        if session is None:
            if expired:
                return None, self._to_login(request, expired=True)
            return None, self._page("error.html", None, 403, message="Your session is missing.")
        try:
            form = await self._form(request)
        except his_sdk.errors.InvalidRequestError as exc:
            return None, self._page("error.html", session, 400, message=exc.message)
        if not session.csrf_matches(form.get("csrf_token")):
            _log.warning("refused a console POST to %s: bad CSRF token", request.url.path)
            return None, self._page(
                "error.html", session, 403, message="The form expired or did not come from here."
            )
        return session, form

    def _page(
        self, template: str, session: Session | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        html = self._templates.get_template(template).render(
            session=session,
            reviewer=session.reviewer if session else None,
            csrf_token=session.csrf if session else "",
            flash=session.flash if session else None,
            **values,
        )
        response = HTMLResponse(html, status_code=status)
        if session is not None:
            self._store(response, session.touched(self._clock()))
        return response

    def _redirect(self, url: str, session: Session, flash: str | None = None) -> Response:
        response = RedirectResponse(url, status_code=303)
        self._store(response, dataclasses.replace(session.touched(self._clock()), flash=flash))
        return response

    # -- login ---------------------------------------------------------------------------------

    async def _home(self, request: Request) -> Response:
        return RedirectResponse("/queue", status_code=303)

    async def _login_page(self, request: Request) -> Response:
        session, _ = self._load(request)
        if session is None:
            session = Session.new(self._clock())
        return self._page(
            "login.html",
            session,
            expired=request.query_params.get("expired") == "1",
            error=None,
            next_path=_safe_next(request.query_params.get("next")),
            dev_login=self.settings.dev_login,
            dev_roles=self.settings.dev_roles,
            oidc=self.oidc is not None,
        )

    async def _dev_login(self, request: Request) -> Response:
        if not self.settings.dev_login:
            return self._page("error.html", None, 404, message="Dev login is off.")
        session, form = await self._posted(request)
        if session is None or isinstance(form, Response):
            assert isinstance(form, Response)
            return form
        subject = (form.get("subject") or "").strip()
        roles = tuple(sorted(r for r in form.getlist("roles") if r in self.settings.dev_roles))
        if not subject:
            return self._page(
                "login.html",
                session,
                400,
                expired=False,
                error="Enter a reviewer id.",
                next_path=_safe_next(form.get("next")),
                dev_login=True,
                dev_roles=self.settings.dev_roles,
                oidc=self.oidc is not None,
            )
        reviewer = Reviewer(
            subject=subject,
            issuer="dev-login",
            display=(form.get("display") or "").strip() or None,
            fhir_user=(form.get("fhir_user") or "").strip() or None,
            roles=roles,
        )
        _log.info("dev login as %s with roles %s", subject, ", ".join(roles) or "none")
        fresh = session.logged_in(reviewer, self._clock())
        return self._redirect(_safe_next(form.get("next")), fresh)

    def _redirect_uri(self, request: Request) -> str:
        base = self.settings.base_url or str(request.base_url)
        return base.rstrip("/") + "/auth/callback"

    async def _oidc_start(self, request: Request) -> Response:
        if self.oidc is None:
            return self._page("error.html", None, 404, message="OIDC login is not configured.")
        login = self.oidc.begin(_safe_next(request.query_params.get("next")))
        try:
            url = await self.oidc.authorization_url(login, self._redirect_uri(request))
        except his_sdk.errors.UpstreamUnavailableError as exc:
            _log.error("OIDC login unavailable: %s", exc.message)
            return self._page("error.html", None, 503, message="The identity provider is down.")
        response = RedirectResponse(url, status_code=303)
        # The issuer sends the browser back cross-site, so this short-lived cookie is Lax (the
        # session cookie is Strict and would not come along); it holds no credential.
        response.set_cookie(
            LOGIN_COOKIE,
            self.codec.encode_value(
                {
                    "state": login.state,
                    "nonce": login.nonce,
                    "verifier": login.code_verifier,
                    "next": login.next_path,
                    "at": self._clock().timestamp(),
                }
            ),
            max_age=int(_LOGIN_TTL.total_seconds()),
            path="/auth",
            secure=self._secure,
            httponly=True,
            samesite="lax",
        )
        return response

    async def _oidc_callback(self, request: Request) -> Response:
        if self.oidc is None:
            return self._page("error.html", None, 404, message="OIDC login is not configured.")
        data = self.codec.decode_value(request.cookies.get(LOGIN_COOKIE))
        state = request.query_params.get("state")
        code = request.query_params.get("code")
        if (
            data is None
            or self._clock().timestamp() - float(data.get("at", 0)) > _LOGIN_TTL.total_seconds()
            or not state
            or not secrets.compare_digest(state.encode(), str(data.get("state", "")).encode())
        ):
            return self._page("error.html", None, 400, message="The login expired; start again.")
        if not code:
            error = request.query_params.get("error") or "no authorization code"
            return self._page("error.html", None, 401, message=f"Login refused: {error}")
        login = LoginTransaction(
            state=str(data["state"]),
            nonce=str(data["nonce"]),
            code_verifier=str(data["verifier"]),
            next_path=_safe_next(str(data["next"])),
        )
        try:
            reviewer = await self.oidc.complete(login, code, self._redirect_uri(request))
        except his_sdk.errors.HisError as exc:
            _log.warning("OIDC login failed: %s", exc.message)
            return self._page("error.html", None, http_status_of(exc), message="Login failed.")
        session = Session.new(self._clock()).logged_in(reviewer, self._clock())
        response = self._redirect(login.next_path, session)
        response.delete_cookie(LOGIN_COOKIE, path="/auth", secure=self._secure, httponly=True)
        return response

    async def _logout(self, request: Request) -> Response:
        session, form = await self._posted(request)
        if session is None:
            assert isinstance(form, Response)
            return form
        response = RedirectResponse("/login", status_code=303)
        self._forget(response)
        return response

    # -- pages ---------------------------------------------------------------------------------

    def _authenticated(self, request: Request) -> Session | Response:
        session, expired = self._load(request)
        if session is None or session.reviewer is None:
            return self._to_login(request, expired=expired)
        return session

    async def _queue(self, request: Request) -> Response:
        session = self._authenticated(request)
        if isinstance(session, Response):
            return session
        params = request.query_params
        status_filter = params.get("status", "pending")
        risk_filter = params.get("risk", "")
        try:
            query = RequestQuery(
                statuses=(RequestStatus(status_filter),) if status_filter else (),
                risks=(RiskTier(risk_filter),) if risk_filter else (),
                patient_id=params.get("patient") or None,
                requester=params.get("requester") or None,
                page_token=params.get("page_token") or None,
            )
        except ValueError:
            return self._page("error.html", session, 400, message="Unknown filter value.")
        try:
            page = await self.service.list_requests(self._call(session), query)
        except his_sdk.errors.HisError as exc:
            return self._page("error.html", session, http_status_of(exc), message=exc.message)
        cards = [_card(r) for r in page.requests]
        return self._page(
            "queue.html",
            session,
            cards=cards,
            next_page_token=page.next_page_token,
            status_filter=status_filter,
            risk_filter=risk_filter,
            patient_filter=params.get("patient", ""),
            requester_filter=params.get("requester", ""),
            statuses=[s.value for s in RequestStatus],
            risks=[t.value for t in RiskTier],
        )

    async def _detail(self, request: Request) -> Response:
        session = self._authenticated(request)
        if isinstance(session, Response):
            return session
        return await self._render_detail(session, request.path_params["request_id"])

    async def _render_detail(
        self,
        session: Session,
        request_id: str,
        *,
        status: int = 200,
        error: str | None = None,
        form: _Form | None = None,
    ) -> Response:
        try:
            item = await self.service.get_request(self._call(session), request_id)
        except his_sdk.errors.HisError as exc:
            return self._page("error.html", session, http_status_of(exc), message=exc.message)
        events = await request_audit_events(self.service, item)
        reviewer = session.reviewer
        assert reviewer is not None
        own = _is_own(item, reviewer)
        return self._page(
            "request.html",
            session,
            status,
            item=item,
            card=_card(item),
            versions=_versions(item),
            audit_events=events,
            own_request=own,
            error=error,
            reason=(form.get("reason") or "") if form else "",
            edited=(form.get("edited_resource") or "")
            if form
            else json.dumps(item.proposed, indent=2, ensure_ascii=False)
            if item.proposed is not None
            else "",
        )

    # -- decisions -----------------------------------------------------------------------------

    async def _act(
        self,
        request: Request,
        operation: Callable[[CallContext, str, _Form], Awaitable[ApprovalRequest]],
        done: str,
    ) -> Response:
        session, form = await self._posted(request)
        if session is None or isinstance(form, Response):
            assert isinstance(form, Response)
            return form
        request_id = request.path_params["request_id"]
        try:
            item = await operation(self._call(session), request_id, form)
        except his_sdk.errors.HisError as exc:
            return await self._render_detail(
                session, request_id, status=http_status_of(exc), error=exc.message, form=form
            )
        return self._redirect(f"/requests/{item.id}", session, flash=done)

    async def _decide(self, request: Request) -> Response:
        async def decide(call: CallContext, request_id: str, form: _Form) -> ApprovalRequest:
            try:
                action = DecisionAction(form.get("action") or "")
            except ValueError as exc:
                raise his_sdk.errors.InvalidRequestError("unknown decision") from exc
            edited: dict[str, Any] | None = None
            if action is DecisionAction.APPROVE_WITH_EDITS:
                edited = _parse_resource(form.get("edited_resource") or "")
            version_text = form.get("version")
            return await self.service.decide(
                call,
                request_id,
                action,
                reason=form.get("reason") or None,
                edited_resource=edited,
                version=int(version_text) if version_text and version_text.isdigit() else None,
            )

        return await self._act(request, decide, "Decision recorded.")

    async def _extend(self, request: Request) -> Response:
        async def extend(call: CallContext, request_id: str, form: _Form) -> ApprovalRequest:
            hours_text = form.get("hours") or ""
            if not hours_text.isdigit() or not 0 < int(hours_text) <= 24 * 7:
                raise his_sdk.errors.InvalidRequestError("extend by 1 to 168 hours")
            return await self.service.extend(
                call,
                request_id,
                datetime.timedelta(hours=int(hours_text)),
                reason=form.get("reason") or None,
            )

        return await self._act(request, extend, "Deadline extended.")

    async def _escalate(self, request: Request) -> Response:
        async def escalate(call: CallContext, request_id: str, form: _Form) -> ApprovalRequest:
            return await self.service.escalate(call, request_id, reason=form.get("reason") or "")

        return await self._act(request, escalate, "Request escalated.")


def _parse_resource(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise his_sdk.errors.InvalidRequestError(
            f"the edited resource is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from exc
    if not isinstance(value, dict):
        raise his_sdk.errors.InvalidRequestError("the edited resource must be a JSON object")
    return value


def _is_own(item: ApprovalRequest, reviewer: Reviewer) -> bool:
    requester = item.requester
    names = {requester.subject, requester.user, requester.client_id}
    if reviewer.subject in names:
        return True
    return reviewer.fhir_user is not None and reviewer.fhir_user == requester.fhir_user


def _card(item: ApprovalRequest) -> dict[str, Any]:
    return {
        "item": item,
        "rows": resource_rows(item.proposed or item.current_resource),
        "narrative": narrative(item.proposed or item.current_resource),
        "changes": changes(item.current_resource, item.proposed)
        if item.current_resource is not None and item.proposed is not None
        else [],
    }


def _versions(item: ApprovalRequest) -> list[dict[str, Any]]:
    out = []
    previous: dict[str, Any] | None = None
    for version in item.versions:
        out.append(
            {
                "version": version,
                "changes": changes(previous, version.resource) if version.number > 1 else [],
            }
        )
        previous = version.resource
    return out


def _when(value: datetime.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def create_app(service: object, settings: ConsoleSettings, *, tls: bool = False) -> ASGIApp:
    """The console for the gateway (``console.implementation``).

    Args:
        service: The gateway's approval queue; must be an :class:`ApprovalService`.
        settings: The ``console`` settings.
        tls: Whether the console's listener serves HTTPS.

    Raises:
        TypeError: ``service`` is another kind of write queue.
        ValueError: Neither OIDC nor the dev login is configured.
    """
    if not isinstance(service, ApprovalService):
        raise TypeError(f"the reviewer console needs an ApprovalService, got {type(service)!r}")
    return ReviewerConsole(service, settings, tls=tls)
