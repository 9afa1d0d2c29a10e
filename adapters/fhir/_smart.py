"""SMART Backend Services: a cached access token from a ``private_key_jwt`` client assertion."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from authlib.oauth2.rfc7523 import private_key_jwt_sign  # type: ignore[import-untyped]
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, RSAKey

import his_sdk.errors

from ._settings import BackendAuthSettings

__all__ = ["ASSERTION_TYPE", "BackendServicesAuth", "TokenSource", "load_signing_key"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
"""RFC 7523 ``client_assertion_type`` for a JWT client assertion."""

# SMART asks that an assertion live five minutes at most.
_ASSERTION_SECONDS = 300
_DEFAULT_TOKEN_SECONDS = 300


class TokenSource(Protocol):
    """Where the transport gets its bearer token."""

    async def token(self) -> str:
        """A valid access token (cached until shortly before it expires)."""
        ...

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after the upstream refused it."""
        ...


def load_signing_key(settings: BackendAuthSettings) -> tuple[Key, str]:
    """The private key and its ``kid`` from a JWK (JSON) or PEM file.

    Raises:
        ValueError: The file holds no private key fit for ``settings.algorithm``.
    """
    raw = settings.private_key_file.read_bytes()
    key: Key
    try:
        if raw.lstrip().startswith(b"{"):
            key = JWKRegistry.import_key(json.loads(raw))
        elif settings.algorithm == "RS384":
            key = RSAKey.import_key(raw)
        else:
            key = ECKey.import_key(raw)
    except (JoseError, ValueError) as exc:
        raise ValueError(f"cannot read a private key from {settings.private_key_file}") from exc
    if settings.algorithm == "RS384" and not isinstance(key, RSAKey):
        raise ValueError("RS384 needs an RSA key")
    if settings.algorithm == "ES384" and (not isinstance(key, ECKey) or key.curve_name != "P-384"):
        raise ValueError("ES384 needs an EC key on curve P-384")
    if not key.is_private:
        raise ValueError(f"{settings.private_key_file} holds a public key; the private one signs")
    kid = settings.key_id or key.kid or key.thumbprint()
    return key, kid


@dataclass(frozen=True)
class _Token:
    value: str
    expires_at: float


class BackendServicesAuth:
    """Fetches and caches the gateway's access token for the upstream FHIR server.

    The token endpoint comes from the settings or from the upstream's
    ``.well-known/smart-configuration``; each fetch signs a fresh client assertion (``iss`` and
    ``sub`` the client id, ``aud`` the token endpoint, a unique ``jti``, five minutes' life).
    Concurrent callers share one fetch; a token is refreshed ``refresh_margin_seconds`` before
    it expires, or at once after the upstream refused it.

    Args:
        settings: Client id, key, algorithm, scope and refresh margin.
        fhir_base: The upstream's base URL (for discovery).
        http: The HTTP client to talk to the authorization server with.
        clock: Wall-clock seconds (injectable for tests).
    """

    def __init__(
        self,
        settings: BackendAuthSettings,
        *,
        fhir_base: str,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._fhir_base = fhir_base.rstrip("/")
        self._http = http
        self._clock = clock
        self._key, self._kid = load_signing_key(settings)
        self._endpoint = settings.token_endpoint
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many tokens were fetched (for metrics and tests)."""

    async def token(self) -> str:
        """A valid access token.

        Raises:
            his_sdk.errors.UpstreamUnavailableError: No token could be obtained.
        """
        cached = self._token
        if cached is not None and self._fresh(cached):
            return cached.value
        async with self._lock:
            cached = self._token
            if cached is None or not self._fresh(cached):
                cached = self._token = await self._fetch()
            return cached.value

    def invalidate(self, token: str) -> None:
        """Forget ``token`` so the next call fetches a new one."""
        if self._token is not None and self._token.value == token:
            self._token = None

    async def token_endpoint(self) -> str:
        """The token endpoint, discovered once from the SMART configuration.

        Raises:
            his_sdk.errors.UpstreamUnavailableError: Discovery failed.
            his_sdk.errors.PreconditionFailedError: The upstream does not support
                ``private_key_jwt`` with the configured algorithm.
        """
        if self._endpoint is None:
            self._endpoint = await self._discover()
        return self._endpoint

    def _fresh(self, token: _Token) -> bool:
        return token.expires_at - self._settings.refresh_margin_seconds > self._clock()

    async def _discover(self) -> str:
        url = f"{self._fhir_base}/.well-known/smart-configuration"
        document = await self._get_json(url, "discovering the SMART configuration")
        endpoint = document.get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise his_sdk.errors.UpstreamDataError(
                "the upstream's SMART configuration names no token endpoint"
            )
        methods = document.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and "private_key_jwt" not in methods:
            raise his_sdk.errors.PreconditionFailedError(
                "the upstream's authorization server does not accept private_key_jwt",
                diagnostics=f"supported: {methods}",
            )
        algorithms = document.get("token_endpoint_auth_signing_alg_values_supported")
        if isinstance(algorithms, list) and self._settings.algorithm not in algorithms:
            raise his_sdk.errors.PreconditionFailedError(
                f"the upstream's authorization server does not accept "
                f"{self._settings.algorithm} client assertions",
                diagnostics=f"supported: {algorithms}",
            )
        return endpoint

    async def _fetch(self) -> _Token:
        endpoint = await self.token_endpoint()
        assertion: str = private_key_jwt_sign(
            self._key,
            self._settings.client_id,
            endpoint,
            alg=self._settings.algorithm,
            header={"alg": self._settings.algorithm, "kid": self._kid, "typ": "JWT"},
            expires_in=_ASSERTION_SECONDS,
        )
        form = {
            "grant_type": "client_credentials",
            "scope": self._settings.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        started = self._clock()
        try:
            response = await self._http.post(
                endpoint, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise his_sdk.errors.UpstreamUnavailableError(
                "the upstream's authorization server cannot be reached",
                diagnostics=type(exc).__name__,
            ) from exc
        body = _json_object(response)
        if response.status_code != 200:
            raise his_sdk.errors.UpstreamUnavailableError(
                "the upstream's authorization server refused this gateway's token request",
                diagnostics=f"HTTP {response.status_code}: {body.get('error', 'no error code')}",
            )
        value = body.get("access_token")
        token_type = str(body.get("token_type", "")).lower()
        if not isinstance(value, str) or not value or token_type != "bearer":
            raise his_sdk.errors.UpstreamDataError(
                "the upstream's authorization server answered without a bearer token"
            )
        expires_in = body.get("expires_in", _DEFAULT_TOKEN_SECONDS)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            expires_in = _DEFAULT_TOKEN_SECONDS
        self.fetches += 1
        return _Token(value, started + float(expires_in))

    async def _get_json(self, url: str, action: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise his_sdk.errors.UpstreamUnavailableError(
                "the upstream FHIR server cannot be reached",
                diagnostics=f"{action}: {type(exc).__name__}",
            ) from exc
        if response.status_code != 200:
            raise his_sdk.errors.UpstreamUnavailableError(
                "the upstream FHIR server publishes no SMART configuration",
                diagnostics=f"{action}: HTTP {response.status_code}",
            )
        return _json_object(response)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
