"""The reviewer console over plain HTTP: headers, cookies, sessions, OIDC login, settings."""

from __future__ import annotations

import datetime
import re
import urllib.parse

import httpx
import pytest
from console_helpers import ConsoleServer, LoopbackOidcProvider

from approval_service.console import Reviewer, ReviewerConsole, Session, SessionCodec, create_app
from his_sdk.config import ConsoleOidcSettings, ConsoleSettings

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def dev_login(client: httpx.Client, subject: str, roles: list[str], next_path: str = "/queue"):
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login/dev",
        data={"csrf_token": token, "subject": subject, "roles": roles, "next": next_path},
    )


def test_security_headers_and_session_cookie(console: ConsoleServer):
    with httpx.Client(base_url=console.url) as client:
        response = client.get("/login")
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == CSP
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("his_console_session=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie
        assert "<script" not in response.text
        css = client.get("/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_cookie_is_secure_over_tls(console: ConsoleServer):
    assert console.service is not None
    app = ReviewerConsole(console.service, console.settings, tls=True)

    async def login_page() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as c:
            return await c.get("/login")

    # On the console's own loop: a browser test may hold this thread's loop.
    cookie = console.run(login_page()).headers["set-cookie"]
    assert "Secure" in cookie and "SameSite=strict" in cookie


def test_forged_session_cookie_is_ignored(console: ConsoleServer):
    with httpx.Client(base_url=console.url) as client:
        assert dev_login(client, "dr-adams", ["clinician"]).status_code == 303
        value = client.cookies["his_console_session"]
        payload, _, signature = value.rpartition(".")
        client.cookies.set("his_console_session", payload[:-2] + "AA." + signature)
        response = client.get("/queue")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?")


def test_login_redirects_only_inside_the_console(console: ConsoleServer):
    with httpx.Client(base_url=console.url) as client:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            response = dev_login(client, "dr-adams", ["clinician"], next_path=target)
            assert response.headers["location"] == "/queue"


def test_dev_login_without_roles_cannot_list(console: ConsoleServer):
    with httpx.Client(base_url=console.url) as client:
        dev_login(client, "visitor", [])
        response = client.get("/queue")
    assert response.status_code == 403
    assert "reviewer role" in response.text


def test_session_codec_timeouts():
    codec = SessionCodec(
        b"k" * 32,
        idle_timeout=datetime.timedelta(minutes=15),
        absolute_timeout=datetime.timedelta(hours=8),
    )
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    session = Session.new(start).logged_in(
        Reviewer("dr-a", "dev-login", None, None, ("clinician",)), start
    )
    decoded = codec.decode(codec.encode(session))
    assert decoded == session
    assert not codec.expired(session, start + datetime.timedelta(minutes=14))
    assert codec.expired(session, start + datetime.timedelta(minutes=16))
    active = session
    for minutes in range(10, 8 * 60, 10):
        active = active.touched(start + datetime.timedelta(minutes=minutes))
    assert not codec.expired(active, start + datetime.timedelta(hours=7, minutes=55))
    assert codec.expired(active, start + datetime.timedelta(hours=8, minutes=1))
    other = SessionCodec(
        b"x" * 32, idle_timeout=codec.idle_timeout, absolute_timeout=codec.absolute_timeout
    )
    assert other.decode(codec.encode(session)) is None


def test_console_needs_a_login_method(console: ConsoleServer):
    assert console.service is not None
    with pytest.raises(ValueError, match=r"oidc or console\.dev_login"):
        ReviewerConsole(console.service, ConsoleSettings(enabled=True))
    with pytest.raises(TypeError, match="ApprovalService"):
        create_app(object(), ConsoleSettings(enabled=True, dev_login=True))


@pytest.fixture(scope="module")
def oidc_console(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("oidc")
    provider = LoopbackOidcProvider(tmp, client_id="his-console", client_secret="console-secret")
    provider.users["dr-oidc"] = {
        "roles": ["clinician"],
        "name": "Dr. Ida Oidc",
        "fhirUser": "Practitioner/77",
    }

    def settings(provider_url: str) -> ConsoleSettings:
        provider.bind(provider_url)
        return ConsoleSettings(
            enabled=True,
            port=0,
            session_secret="o" * 32,
            oidc=ConsoleOidcSettings(
                issuer=provider_url, client_id="his-console", client_secret="console-secret"
            ),
        )

    with ConsoleServer(tmp, settings, beside=provider.app) as server:
        yield server


def test_oidc_login_round_trip(oidc_console: ConsoleServer):
    with httpx.Client(base_url=oidc_console.url) as client:
        page = client.get("/login")
        assert "/login/oidc" in page.text and "dev-login" not in page.text
        assert client.post("/login/dev", data={}).status_code == 404

        start = client.get("/login/oidc", params={"next": "/queue?status="})
        assert start.status_code == 303
        authorize = start.headers["location"]
        assert authorize.startswith(oidc_console.beside_url + "/authorize?")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["redirect_uri"] == [oidc_console.url + "/auth/callback"]
        assert "SameSite=lax" in start.headers["set-cookie"]

        at_provider = httpx.get(authorize + "&login_hint=dr-oidc")
        assert at_provider.status_code == 302
        callback = at_provider.headers["location"]
        assert callback.startswith(oidc_console.url + "/auth/callback?")

        done = client.get(callback)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/queue?status="
        queue = client.get("/queue")
        assert queue.status_code == 200
        assert "Dr. Ida Oidc" in queue.text and "clinician" in queue.text

        # The login cookie is gone and the code is spent: replaying the callback fails.
        replay = client.get(callback)
        assert replay.status_code == 400


def test_oidc_callback_with_a_foreign_state_is_refused(oidc_console: ConsoleServer):
    with httpx.Client(base_url=oidc_console.url) as client:
        start = client.get("/login/oidc")
        authorize = start.headers["location"]
        at_provider = httpx.get(authorize + "&login_hint=dr-oidc")
        callback = at_provider.headers["location"]
        forged = re.sub(r"state=[^&]+", "state=attacker", callback)
        response = client.get(forged)
        assert response.status_code == 400
        assert client.get("/queue").status_code == 303
