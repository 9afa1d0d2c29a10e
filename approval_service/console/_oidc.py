"""Reviewer login at an OpenID Connect issuer: authorization-code flow with PKCE and a nonce."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

import httpx
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.discovery import OpenIDProviderMetadata  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

import his_sdk.errors
from his_sdk.config import ConsoleOidcSettings

from ._session import Reviewer

__all__ = ["LoginTransaction", "OidcLogin"]

_TIMEOUT = httpx.Timeout(10.0)
_DISCOVERY_TTL = 3600.0


@dataclass(frozen=True)
class LoginTransaction:
    """What the console remembers between sending the browser to the issuer and its return.

    Attributes:
        state: Binds the callback to this browser (CSRF protection of the login itself).
        nonce: Binds the ID token to this login (replay protection).
        code_verifier: The PKCE secret whose hash went with the authorization request.
        next_path: The console page to open after login.
    """

    state: str
    nonce: str
    code_verifier: str
    next_path: str


def _claim(claims: dict[str, Any], name: str) -> Any:
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class OidcLogin:
    """The console's OIDC relying party.

    Args:
        settings: The ``console.oidc`` settings.
        transport: The HTTP transport for calls to the issuer; httpx's default when None.
    """

    def __init__(
        self, settings: ConsoleOidcSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._metadata: OpenIDProviderMetadata | None = None
        self._keys: KeySet | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def begin(self, next_path: str) -> LoginTransaction:
        """New state, nonce and PKCE verifier for one login."""
        return LoginTransaction(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            code_verifier=secrets.token_urlsafe(48),
            next_path=next_path,
        )

    async def authorization_url(self, login: LoginTransaction, redirect_uri: str) -> str:
        """Where to send the browser to log in.

        Raises:
            his_sdk.errors.UpstreamUnavailableError: The issuer's metadata cannot be read.
        """
        metadata = await self._discover()
        scopes = ["openid", *(s for s in self.settings.scopes if s != "openid")]
        url: str = prepare_grant_uri(
            metadata["authorization_endpoint"],
            self.settings.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=" ".join(scopes),
            state=login.state,
            nonce=login.nonce,
            code_challenge=create_s256_code_challenge(login.code_verifier),
            code_challenge_method="S256",
        )
        return url

    async def complete(self, login: LoginTransaction, code: str, redirect_uri: str) -> Reviewer:
        """Exchange the authorization code and verify the ID token; the reviewer it names.

        Raises:
            his_sdk.errors.AuthenticationError: The issuer refused the code, or the ID token is
                invalid (signature, issuer, audience, times, nonce).
            his_sdk.errors.UpstreamUnavailableError: The issuer cannot be reached.
        """
        metadata = await self._discover()
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=login.code_verifier,
            client_id=self.settings.client_id,
        )
        auth = (
            httpx.BasicAuth(self.settings.client_id, self.settings.client_secret)
            if self.settings.client_secret
            else None
        )
        try:
            async with self._client() as client:
                response = await client.post(
                    metadata["token_endpoint"],
                    content=body,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Accept": "application/json",
                    },
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                )
        except httpx.HTTPError as exc:
            raise his_sdk.errors.UpstreamUnavailableError(
                f"the identity provider is unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            raise his_sdk.errors.AuthenticationError(
                f"the identity provider refused the login (HTTP {response.status_code})"
            )
        try:
            id_token = response.json()["id_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise his_sdk.errors.AuthenticationError(
                "the identity provider returned no ID token"
            ) from exc
        claims = await self._verify(str(id_token), login.nonce)
        roles = _claim(claims, self.settings.roles_claim) or []
        if isinstance(roles, str):
            roles = roles.split()
        name = _claim(claims, self.settings.name_claim)
        fhir_user = _claim(claims, self.settings.fhir_user_claim)
        return Reviewer(
            subject=str(claims["sub"]),
            issuer=str(claims["iss"]),
            display=str(name) if name else None,
            fhir_user=str(fhir_user) if fhir_user else None,
            roles=tuple(sorted({str(r) for r in roles})),
        )

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        keys = await self._key_set(refresh=False)
        try:
            token = jwt.decode(id_token, keys, algorithms=self.settings.algorithms)
        except JoseError:
            # A key rotated at the issuer since the last fetch: read the JWKS once more.
            keys = await self._key_set(refresh=True)
            try:
                token = jwt.decode(id_token, keys, algorithms=self.settings.algorithms)
            except JoseError as exc:
                raise his_sdk.errors.AuthenticationError(
                    f"invalid ID token: {exc.description or exc.error}"
                ) from exc
        registry = jwt.JWTClaimsRegistry(
            leeway=self.settings.leeway_seconds,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            raise his_sdk.errors.AuthenticationError(
                f"invalid ID token: {exc.description or exc.error}"
            ) from exc
        return dict(token.claims)

    async def _discover(self) -> OpenIDProviderMetadata:
        async with self._lock:
            fresh = time.monotonic() - self._loaded_at < _DISCOVERY_TTL
            if self._metadata is not None and fresh:
                return self._metadata
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            data = await self._get_json(url)
            metadata = OpenIDProviderMetadata(data)
            try:
                metadata.validate_issuer()
                metadata.validate_authorization_endpoint()
                metadata.validate_token_endpoint()
                metadata.validate_jwks_uri()
            except ValueError as exc:
                raise his_sdk.errors.UpstreamUnavailableError(
                    f"unusable OpenID configuration at {url}: {exc}"
                ) from exc
            if metadata["issuer"] != self.settings.issuer:
                raise his_sdk.errors.UpstreamUnavailableError(
                    f"the OpenID configuration names issuer {metadata['issuer']!r}, "
                    f"not {self.settings.issuer!r}"
                )
            self._metadata, self._keys, self._loaded_at = metadata, None, time.monotonic()
            return metadata

    async def _key_set(self, *, refresh: bool) -> KeySet:
        metadata = await self._discover()
        if self._keys is None or refresh:
            data = await self._get_json(metadata["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(cast(Any, data))
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise his_sdk.errors.UpstreamUnavailableError(
                    f"unusable JWKS at {metadata['jwks_uri']}: {exc}"
                ) from exc
        return self._keys

    def _client(self) -> httpx.AsyncClient:
        # One client per exchange: logins are rare, and the console has no shutdown hook.
        return httpx.AsyncClient(timeout=_TIMEOUT, transport=self._transport)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._client() as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise his_sdk.errors.UpstreamUnavailableError(
                f"cannot read {url}: {type(exc).__name__}"
            ) from exc
        if not isinstance(data, dict):
            raise his_sdk.errors.UpstreamUnavailableError(f"{url} is not a JSON object")
        return data
