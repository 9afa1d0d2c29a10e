"""JWKS from a real HTTP endpoint on 127.0.0.1: caching, refetch limits, rotation, outages."""

from __future__ import annotations

import base64
import json

import pytest

from his_sdk.auth import TokenVerifier
from his_sdk.config import AuthSettings
from his_sdk.errors import AuthenticationError, UpstreamUnavailableError

AUDIENCE = "his-gateway"


def url_settings(issuer, url: str) -> AuthSettings:
    return AuthSettings(
        issuer=issuer.issuer,
        audience=AUDIENCE,
        jwks_file=None,
        jwks_url=url,
        jwks_cache_seconds=300,
        jwks_min_refresh_seconds=30,
    )


def mint(issuer, **kwargs) -> str:
    return issuer.mint(client_id="agent-1", audience=AUDIENCE, scopes="user/Patient.rs", **kwargs)


def with_kid(token: str, kid: str) -> str:
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    decoded["kid"] = kid
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{forged}.{payload}.{signature}"


async def test_keys_are_fetched_once_and_cached(issuer, jwks_server, clock):
    jwks_server.serve(issuer)
    verifier = TokenVerifier(url_settings(issuer, jwks_server.url), clock=clock)
    for _ in range(5):
        assert (await verifier.verify(mint(issuer))).client_id == "agent-1"
    assert jwks_server.requests == 1
    clock.advance(301)
    assert (await verifier.verify(mint(issuer))).client_id == "agent-1"
    assert jwks_server.requests == 2


async def test_unknown_kids_refetch_at_most_once_per_interval(issuer, jwks_server, clock):
    jwks_server.serve(issuer)
    verifier = TokenVerifier(url_settings(issuer, jwks_server.url), clock=clock)
    await verifier.verify(mint(issuer))
    assert jwks_server.requests == 1
    # A flood of invented kids right after the fetch costs the issuer nothing.
    for i in range(20):
        with pytest.raises(AuthenticationError, match="unknown signing key"):
            await verifier.verify(with_kid(mint(issuer), f"probe-{i}"))
    assert jwks_server.requests == 1
    clock.advance(31)
    for i in range(20):
        with pytest.raises(AuthenticationError, match="unknown signing key"):
            await verifier.verify(with_kid(mint(issuer), f"probe-again-{i}"))
    assert jwks_server.requests == 2


async def test_rotation_through_the_endpoint(issuer, jwks_server, clock):
    jwks_server.serve(issuer)
    verifier = TokenVerifier(url_settings(issuer, jwks_server.url), clock=clock)
    old_kid = issuer.active_kid
    old_token = mint(issuer)
    assert (await verifier.verify(old_token)).token_id

    issuer.rotate()
    jwks_server.serve(issuer)
    new_token = mint(issuer)
    # Within the refetch interval the new kid is not looked up yet ...
    with pytest.raises(AuthenticationError, match="unknown signing key"):
        await verifier.verify(new_token)
    # ... and once it has passed, the unknown kid triggers a refetch and is accepted.
    clock.advance(31)
    assert (await verifier.verify(new_token)).token_id
    assert jwks_server.requests == 2

    issuer.retire(old_kid)
    jwks_server.serve(issuer)
    # The cached principal of the old token stays valid until the key set is refetched ...
    assert (await verifier.verify(old_token)).token_id
    clock.advance(301)
    # ... and is refused once the refetched set no longer holds its key.
    with pytest.raises(AuthenticationError, match="unknown signing key"):
        await verifier.verify(old_token)
    assert (await verifier.verify(new_token)).token_id


async def test_outage_with_cached_keys_keeps_verifying(issuer, jwks_server, clock):
    jwks_server.serve(issuer)
    verifier = TokenVerifier(url_settings(issuer, jwks_server.url), clock=clock)
    await verifier.verify(mint(issuer))
    jwks_server.status = 503
    clock.advance(301)
    assert (await verifier.verify(mint(issuer))).client_id == "agent-1"
    assert jwks_server.requests == 2
    # A failed refetch is not retried on every call.
    assert (await verifier.verify(mint(issuer))).client_id == "agent-1"
    assert jwks_server.requests == 2


async def test_no_keys_at_all_is_unavailable_and_retried_later(issuer, jwks_server, clock):
    jwks_server.status = 500
    verifier = TokenVerifier(url_settings(issuer, jwks_server.url), clock=clock)
    token = mint(issuer)
    with pytest.raises(UpstreamUnavailableError):
        await verifier.verify(token)
    with pytest.raises(UpstreamUnavailableError):
        await verifier.verify(token)
    assert jwks_server.requests == 1
    jwks_server.status = 200
    jwks_server.serve(issuer)
    clock.advance(31)
    assert (await verifier.verify(token)).client_id == "agent-1"


@pytest.mark.parametrize(
    "body",
    [b"<html>login</html>", b'{"keys": "nope"}', b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'],
)
async def test_unusable_documents_are_treated_as_outages(issuer, jwks_server, clock, body):
    jwks_server.body = body
    verifier = TokenVerifier(url_settings(issuer, jwks_server.url), clock=clock)
    with pytest.raises(UpstreamUnavailableError):
        await verifier.verify(mint(issuer))


async def test_unreachable_endpoint_is_unavailable(issuer, clock):
    verifier = TokenVerifier(url_settings(issuer, "http://127.0.0.1:9/jwks"), clock=clock)
    with pytest.raises(UpstreamUnavailableError):
        await verifier.verify(mint(issuer))
