"""Bearer-token verification: compact JWS, pinned algorithms, JWKS keys, claims, a hot cache."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key

import his_sdk.config
import his_sdk.errors

from ._jwks import (
    SUPPORTED_ALGORITHMS,
    FileKeySource,
    KeyRing,
    KeySource,
    UrlKeySource,
    key_fits_algorithm,
)
from ._principal import Principal, principal_from_claims

__all__ = ["TokenVerifier"]

_log = logging.getLogger("his_sdk.auth")
_MAX_TOKEN_BYTES = 16 * 1024


def _fail(reason: str) -> his_sdk.errors.AuthenticationError:
    return his_sdk.errors.AuthenticationError(reason)


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal
    key_version: int
    expires: float


def _b64_json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _fail(f"malformed token {what}") from exc
    if not isinstance(value, dict):
        raise _fail(f"malformed token {what}")
    return value


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(f"malformed {name} claim")
    return float(value)


class TokenVerifier:
    """Verifies OAuth2 access tokens (signed JWTs) and turns them into principals.

    Only compact JWS tokens are accepted; encrypted (JWE) and unsigned tokens are refused.
    The header ``alg`` must be in ``AuthSettings.algorithms``; ``none`` and every HMAC
    algorithm are refused even when configured, so a public key can never serve as an HMAC
    secret. The key is picked by ``kid`` from the issuer's JWKS (a token without ``kid`` is
    accepted only while the set holds a single key) and must have the type and curve the
    algorithm is defined for. Then ``iss`` must equal the issuer, ``aud`` must contain the
    audience, ``exp`` must be present and in the future, ``nbf`` and ``iat`` must not be in
    the future (all with ``leeway_seconds``), ``exp - iat`` (or, without ``iat``, the time left)
    must not exceed ``max_token_lifetime_seconds``, and ``sub`` and ``jti`` must be present.

    Keys come from ``jwks_url`` when set (see :class:`UrlKeySource` for caching and refetch
    limits), else from ``jwks_file`` (reloaded when the file changes). When no keys can be
    loaded at all, :meth:`verify` raises :class:`his_sdk.errors.UpstreamUnavailableError`
    (the token may be fine; the caller should retry); every problem with the token itself
    raises :class:`his_sdk.errors.AuthenticationError` with a short reason that never
    contains the token.

    Verified principals are cached by token (least recently used first out) until the token
    expires or the key set changes, so repeated calls with one token cost a dictionary lookup.

    Args:
        settings: The gateway's authentication settings.
        cache_size: Most principals kept in the cache.
        clock: Seconds since the epoch; tests pass a controllable clock.

    Raises:
        ValueError: The settings name no key source, or an algorithm this verifier does not
            support.
    """

    def __init__(
        self,
        settings: his_sdk.config.AuthSettings,
        *,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = [
            a
            for a in settings.algorithms
            if a not in SUPPORTED_ALGORITHMS and a != "none" and not a.startswith("HS")
        ]
        if unknown:
            raise ValueError(f"unsupported token algorithms configured: {unknown}")
        self._algorithms = frozenset(a for a in settings.algorithms if a in SUPPORTED_ALGORITHMS)
        refused = sorted(set(settings.algorithms) - self._algorithms)
        if refused:
            _log.warning("token algorithms %s are configured but always refused", refused)
        if not self._algorithms:
            raise ValueError("no usable token algorithm configured (none and HS* are refused)")
        # Unknown non-critical header parameters are ignored, as RFC 7515 section 4 asks.
        self._registry = jws.JWSRegistry(
            algorithms=sorted(self._algorithms), strict_check_header=False
        )
        self._settings = settings
        self._clock = clock
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._source: KeySource
        if settings.jwks_url:
            self._source = UrlKeySource(
                settings.jwks_url,
                cache_seconds=settings.jwks_cache_seconds,
                min_refresh_seconds=settings.jwks_min_refresh_seconds,
                clock=clock,
            )
        elif settings.jwks_file is not None:
            self._source = FileKeySource(settings.jwks_file)
        else:
            raise ValueError("auth needs jwks_url or jwks_file")

    @property
    def key_source(self) -> KeySource:
        """Where the issuer's keys come from."""
        return self._source

    async def verify(self, token: str) -> Principal:
        """Verify ``token`` and return the principal it describes.

        Args:
            token: The bearer token, without the ``Bearer`` prefix.

        Raises:
            his_sdk.errors.AuthenticationError: The token is invalid; the message says why.
            his_sdk.errors.UpstreamUnavailableError: No signing keys could be loaded.
        """
        ring = await self._source.current()
        cached = self._cache.get(token)
        if cached is not None and cached.key_version == ring.version:
            if self._clock() > cached.expires:
                self._cache.pop(token, None)
                raise _fail("token expired")
            self._cache.move_to_end(token)
            return cached.principal
        principal, expires, ring = await self._verify(token, ring)
        self._cache[token] = _Cached(principal, ring.version, expires)
        self._cache.move_to_end(token)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _verify(self, token: str, ring: KeyRing) -> tuple[Principal, float, KeyRing]:
        if not token:
            raise _fail("empty token")
        if len(token) > _MAX_TOKEN_BYTES or not token.isascii():
            raise _fail("malformed token")
        parts = token.split(".")
        if len(parts) == 5:
            raise _fail("encrypted tokens (JWE) are not accepted")
        if len(parts) != 3:
            raise _fail("malformed token: not a compact JWS")
        header = _b64_json(parts[0], "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _fail("algorithm not allowed")
        if "enc" in header:
            raise _fail("encrypted tokens (JWE) are not accepted")
        if "crit" in header:
            raise _fail("unsupported critical header")
        if not parts[2]:
            raise _fail("token is not signed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _fail("malformed token header: kid")
        key, ring = await self._key_for(ring, kid, alg)
        try:
            obj = jws.extract_compact(token.encode("ascii"), registry=self._registry)
            valid = jws.validate_compact(obj, key, registry=self._registry)
        except JoseError as exc:
            raise _fail(f"malformed token ({exc.error})") from exc
        if not valid:
            raise _fail("bad signature")
        try:
            claims = json.loads(obj.payload or b"")
        except ValueError as exc:
            raise _fail("malformed token payload") from exc
        if not isinstance(claims, dict):
            raise _fail("malformed token payload")
        expires = self._check_claims(claims)
        return principal_from_claims(claims, roles_claim=self._settings.roles_claim), expires, ring

    async def _key_for(self, ring: KeyRing, kid: str | None, alg: str) -> tuple[Key, KeyRing]:
        if kid is None:
            if len(ring.all_keys) != 1:
                raise _fail("token has no key id (kid)")
            candidates: tuple[Key, ...] = ring.all_keys
        else:
            candidates = ring.by_kid.get(kid, ())
            if not candidates:
                ring = await self._source.refresh_for_unknown_kid()
                candidates = ring.by_kid.get(kid, ())
                if not candidates:
                    raise _fail("unknown signing key")
        for key in candidates:
            if key_fits_algorithm(key, alg):
                return key, ring
        raise _fail("signing key does not match the token algorithm")

    def _check_claims(self, claims: Mapping[str, Any]) -> float:
        s = self._settings
        now = self._clock()
        if claims.get("iss") != s.issuer:
            raise _fail("wrong issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or s.audience not in audiences:
            raise _fail("wrong audience")
        exp = _time_claim(claims, "exp")
        if exp is None:
            raise _fail("token has no exp claim")
        if now > exp + s.leeway_seconds:
            raise _fail("token expired")
        nbf = _time_claim(claims, "nbf")
        if nbf is not None and now + s.leeway_seconds < nbf:
            raise _fail("token not yet valid")
        iat = _time_claim(claims, "iat")
        if iat is not None and now + s.leeway_seconds < iat:
            raise _fail("token issued in the future")
        if exp - (iat if iat is not None else now) > s.max_token_lifetime_seconds:
            raise _fail("token lifetime too long")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _fail("token has no jti claim")
        return exp + s.leeway_seconds
