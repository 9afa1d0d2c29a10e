"""Issuer key sets: parsing a JWKS, matching keys to algorithms, file and URL sources."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey

import his_sdk.errors

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "FileKeySource",
    "KeyRing",
    "KeySource",
    "UrlKeySource",
    "key_fits_algorithm",
    "parse_jwks",
]

_log = logging.getLogger("his_sdk.auth")

# Algorithm -> (kty, curve or None). RSA keys must also be at least _MIN_RSA_BITS long.
SUPPORTED_ALGORITHMS: Mapping[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "ES256K": ("EC", "secp256k1"),
    "Ed25519": ("OKP", "Ed25519"),
    "Ed448": ("OKP", "Ed448"),
}
"""Asymmetric JWS algorithms the verifier can use, with the key type and curve each needs."""

_MIN_RSA_BITS = 2048
_MAX_JWKS_BYTES = 1024 * 1024


def key_fits_algorithm(key: Key, alg: str) -> bool:
    """Whether ``key`` may verify signatures made with ``alg``.

    The key type and curve must be the ones the algorithm is defined for, an RSA key must
    have at least 2048 bits, and a key that names its own ``alg`` or ``use`` must name
    ``alg`` and ``sig``.
    """
    wanted = SUPPORTED_ALGORITHMS.get(alg)
    if wanted is None or key.key_type != wanted[0]:
        return False
    if key.get("alg") not in (None, alg) or key.get("use") not in (None, "sig"):
        return False
    if isinstance(key, RSAKey):
        return bool(key.raw_value.key_size >= _MIN_RSA_BITS)
    if isinstance(key, ECKey | OKPKey):
        return key.curve_name == wanted[1]
    return False


@dataclass(frozen=True)
class KeyRing:
    """One loaded key set.

    Attributes:
        version: Increases whenever the set's content changes; verified tokens cached under
            an older version are verified again.
        by_kid: Public keys by ``kid`` (several keys may share one).
        all_keys: Every key, for tokens without a ``kid`` when the set holds a single key.
    """

    version: int
    by_kid: Mapping[str, tuple[Key, ...]] = field(default_factory=dict)
    all_keys: tuple[Key, ...] = ()


def parse_jwks(data: bytes) -> tuple[Key, ...]:
    """Parse a JWKS document into public verification keys.

    Symmetric (``oct``) keys are skipped: a shared secret never verifies a bearer token here;
    so are RSA keys shorter than 2048 bits.
    Members with a key type this library does not know are skipped as RFC 7517 section 5
    asks; a member that claims a known type but is broken fails the whole set.

    Raises:
        ValueError: The document is not a JWKS, or holds no usable key.
    """
    if len(data) > _MAX_JWKS_BYTES:
        raise ValueError("JWKS document too large")
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ValueError("JWKS is not JSON") from exc
    members = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(members, list):
        raise ValueError("JWKS has no 'keys' list")
    keys: list[Key] = []
    for member in members:
        if not isinstance(member, dict):
            raise ValueError("JWKS member is not an object")
        if member.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if member.get("kty") == "RSA" and _rsa_bits(member) < _MIN_RSA_BITS:
            _log.warning(
                "JWKS key %r ignored: RSA keys need %d bits", member.get("kid"), _MIN_RSA_BITS
            )
            continue
        public = {k: v for k, v in member.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            keys.append(JWKRegistry.import_key(public))
        except (JoseError, ValueError, TypeError) as exc:
            raise ValueError(f"JWKS member {member.get('kid')!r} is invalid: {exc}") from exc
    if not keys:
        raise ValueError("JWKS holds no RSA, EC or OKP key")
    return tuple(keys)


def _rsa_bits(member: Mapping[str, object]) -> int:
    modulus = member.get("n")
    if not isinstance(modulus, str):
        raise ValueError(f"JWKS member {member.get('kid')!r} is invalid: no modulus")
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"JWKS member {member.get('kid')!r} is invalid: bad modulus") from exc
    return int.from_bytes(raw, "big").bit_length()


def _ring(version: int, keys: tuple[Key, ...]) -> KeyRing:
    by_kid: dict[str, list[Key]] = {}
    for key in keys:
        if key.kid is not None:
            by_kid.setdefault(key.kid, []).append(key)
    return KeyRing(version=version, by_kid={k: tuple(v) for k, v in by_kid.items()}, all_keys=keys)


class KeySource(Protocol):
    """Where the verifier gets the issuer's public keys."""

    async def current(self) -> KeyRing:
        """The key ring to verify with now, reloading when it is stale.

        Raises:
            his_sdk.errors.UpstreamUnavailableError: No keys could ever be loaded.
        """
        ...

    async def refresh_for_unknown_kid(self) -> KeyRing:
        """Reload early because a token named a ``kid`` that is not in the ring.

        Sources that cannot change between calls to :meth:`current` return the same ring.
        """
        ...


class FileKeySource:
    """A JWKS file, reloaded when its modification time, size or inode changes.

    A file that cannot be read or parsed keeps the last good keys in use (and is logged once
    per change); with no good keys yet, verification fails as unavailable.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._ring: KeyRing | None = None
        self._signature: tuple[int, int, int] | None = None
        self._version = 0

    async def current(self) -> KeyRing:
        """The keys from the file, reloaded when the file changed since the last call."""
        try:
            st = os.stat(self._path)
        except OSError as exc:
            return self._keep(None, f"JWKS file {self._path} unreadable: {exc.strerror}")
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)
        if signature == self._signature:
            if self._ring is None:
                raise his_sdk.errors.UpstreamUnavailableError("no usable token signing keys")
            return self._ring
        try:
            keys = parse_jwks(self._path.read_bytes())
        except (OSError, ValueError) as exc:
            return self._keep(signature, f"JWKS file {self._path} not usable: {exc}")
        self._signature = signature
        self._version += 1
        self._ring = _ring(self._version, keys)
        _log.info("loaded %d signing keys from %s", len(keys), self._path)
        return self._ring

    async def refresh_for_unknown_kid(self) -> KeyRing:
        """The same ring: :meth:`current` already looked at the file for this call."""
        return await self.current()

    def _keep(self, signature: tuple[int, int, int] | None, problem: str) -> KeyRing:
        if signature is None or signature != self._signature:
            _log.warning("%s", problem)
        self._signature = signature
        if self._ring is None:
            raise his_sdk.errors.UpstreamUnavailableError("no usable token signing keys")
        return self._ring


class UrlKeySource:
    """A JWKS endpoint, fetched with httpx and cached.

    The set is refetched when older than ``cache_seconds``, and early when a token names an
    unknown ``kid``; any fetch starts at most once per ``min_refresh_seconds`` so that tokens
    with invented ``kid`` values cannot flood the issuer. A failed fetch keeps the previous
    keys in use (logged); with no keys yet, verification fails as unavailable
    (:class:`his_sdk.errors.UpstreamUnavailableError`) because the token itself may be valid.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
        clock: Callable[[], float],
        timeout_seconds: float = 5.0,
    ) -> None:
        self._url = url
        self._cache_seconds = cache_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._clock = clock
        self._timeout = timeout_seconds
        self._ring: KeyRing | None = None
        self._raw: bytes | None = None
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetch_count = 0
        """How many fetches were started (observability and tests)."""

    async def current(self) -> KeyRing:
        """The cached keys, refetched when older than ``cache_seconds``."""
        ring = self._ring
        if ring is not None and self._clock() - self._fetched_at < self._cache_seconds:
            return ring
        return await self._refresh(stale_only=True)

    async def refresh_for_unknown_kid(self) -> KeyRing:
        """Refetch now unless a fetch started less than ``min_refresh_seconds`` ago."""
        return await self._refresh(stale_only=False)

    async def _refresh(self, *, stale_only: bool) -> KeyRing:
        async with self._lock:
            now = self._clock()
            fresh = now - self._fetched_at < self._cache_seconds
            if self._ring is not None and stale_only and fresh:
                # Another task refreshed while this one waited for the lock.
                return self._ring
            if now - self._attempted_at >= self._min_refresh_seconds:
                self._attempted_at = now
                await self._fetch()
            if self._ring is None:
                raise his_sdk.errors.UpstreamUnavailableError("no usable token signing keys")
            return self._ring

    async def _fetch(self) -> None:
        self.fetch_count += 1
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(self._url, headers={"Accept": "application/json"})
            response.raise_for_status()
            raw = response.content
            keys = parse_jwks(raw)
        except (httpx.HTTPError, ValueError) as exc:
            _log.warning("JWKS fetch from %s failed: %s", self._url, exc)
            return
        self._fetched_at = self._clock()
        if raw != self._raw:
            version = (self._ring.version if self._ring is not None else 0) + 1
            self._ring = _ring(version, keys)
            self._raw = raw
            _log.info("loaded %d signing keys from %s", len(keys), self._url)
