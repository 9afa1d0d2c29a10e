"""A local development identity provider: a key directory, a JWKS and minted access tokens."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey

from ._jwks import SUPPORTED_ALGORITHMS

__all__ = ["DevIssuer"]

_PRIVATE_FILE = "signing-keys.json"
_JWKS_FILE = "jwks.json"


def _generate(alg: str) -> tuple[Key, str]:
    if alg not in SUPPORTED_ALGORITHMS:
        raise ValueError(f"unsupported key type {alg!r}; use one of {sorted(SUPPORTED_ALGORITHMS)}")
    kty, curve = SUPPORTED_ALGORITHMS[alg]
    parameters: Any = {"alg": alg, "use": "sig"}
    key: Key
    if kty == "RSA":
        key = RSAKey.generate_key(2048, parameters, private=True, auto_kid=True)
    elif kty == "EC":
        key = ECKey.generate_key(curve, parameters, private=True, auto_kid=True)
    else:
        key = OKPKey.generate_key(curve, parameters, private=True, auto_kid=True)  # type: ignore[arg-type]
    return key, _kid(key)


def _kid(key: Key) -> str:
    kid = key.kid
    if not kid:
        raise ValueError("signing key has no kid")
    return kid


def _write(path: Path, data: Mapping[str, Any], mode: int) -> None:
    # Write beside the target and rename, so a verifier watching the file never reads half of
    # it and the private key never exists with wider permissions.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class DevIssuer:
    """A development OAuth2 issuer that signs access tokens with keys kept in a directory.

    The directory holds ``signing-keys.json`` (private keys, mode 0600) and ``jwks.json``
    (the public keys, for ``AuthSettings.jwks_file``). Keys are named by their RFC 7638
    thumbprint. Use it for the demo and tests, never in production.
    """

    def __init__(self, directory: Path, issuer: str, keys: list[Key], active_kid: str) -> None:
        self._directory = directory
        self._issuer = issuer
        self._keys = keys
        self._active_kid = active_kid

    @classmethod
    def init(cls, directory: Path, *, issuer: str, key_type: str = "RS256") -> DevIssuer:
        """Create a key directory with one signing key.

        An issuer already in ``directory`` is replaced: tokens it signed stop verifying.

        Args:
            directory: Created if missing (mode 0700).
            issuer: The ``iss`` of minted tokens (``AuthSettings.issuer``).
            key_type: The JWS algorithm of the key: ``RS256``, ``PS256``, ``ES256``,
                ``ES384``, ``Ed25519``, ...

        Raises:
            ValueError: ``key_type`` is not supported.
        """
        key, kid = _generate(key_type)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        issuer_obj = cls(directory, issuer, [key], kid)
        issuer_obj._save()
        return issuer_obj

    @classmethod
    def load(cls, directory: Path) -> DevIssuer:
        """Open a key directory made by :meth:`init`.

        Raises:
            FileNotFoundError: The directory holds no issuer.
            ValueError: The key file is damaged.
        """
        path = directory / _PRIVATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no dev issuer in {directory}")
        data = json.loads(path.read_text(encoding="utf-8"))
        try:
            keys = [JWKRegistry.import_key(k) for k in data["keys"]]
            issuer = data["issuer"]
            active_kid = data["active_kid"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"damaged dev issuer key file {path}") from exc
        if not isinstance(issuer, str) or active_kid not in {_kid(k) for k in keys}:
            raise ValueError(f"damaged dev issuer key file {path}")
        return cls(directory, issuer, keys, active_kid)

    @property
    def issuer(self) -> str:
        """The ``iss`` of minted tokens."""
        return self._issuer

    @property
    def directory(self) -> Path:
        """The key directory."""
        return self._directory

    @property
    def jwks_path(self) -> Path:
        """The public JWKS file."""
        return self._directory / _JWKS_FILE

    @property
    def active_kid(self) -> str:
        """The ``kid`` new tokens are signed with."""
        return self._active_kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Every published ``kid``, oldest first."""
        return tuple(_kid(k) for k in self._keys)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document (what ``jwks.json`` holds)."""
        return {"keys": [k.as_dict(private=False) for k in self._keys]}

    def rotate(self, key_type: str | None = None) -> str:
        """Add a new signing key and sign new tokens with it.

        Older public keys stay in ``jwks.json``, so tokens already issued still verify until
        :meth:`retire` removes their key.

        Args:
            key_type: Algorithm of the new key; the active key's algorithm by default.

        Returns:
            The new key's ``kid``.
        """
        alg = key_type or str(self._active_key().alg)
        key, kid = _generate(alg)
        self._keys.append(key)
        self._active_kid = kid
        self._save()
        return kid

    def retire(self, kid: str) -> None:
        """Remove a key that is no longer active; tokens it signed stop verifying.

        Raises:
            ValueError: ``kid`` is the active key or unknown.
        """
        if kid == self._active_kid:
            raise ValueError("cannot retire the active key; rotate first")
        if kid not in self.kids:
            raise ValueError(f"unknown kid {kid!r}")
        self._keys = [k for k in self._keys if k.kid != kid]
        self._save()

    def mint(
        self,
        *,
        client_id: str,
        audience: str | list[str],
        scopes: str,
        roles: Iterable[str] = (),
        patient: str | None = None,
        act_subject: str | None = None,
        act_fhir_user: str | None = None,
        fhir_user: str | None = None,
        ttl_seconds: int = 3600,
        purpose_of_use: Iterable[str] = (),
        extra_claims: Mapping[str, Any] | None = None,
        roles_claim: str = "roles",
    ) -> str:
        """Sign an access token with the active key.

        Args:
            client_id: The agent's client id (``client_id`` and ``sub``).
            audience: The ``aud`` claim.
            scopes: Space-separated scopes for the ``scope`` claim.
            roles: Values of the roles claim.
            patient: SMART launch context patient id.
            act_subject: ``act.sub``, the user the agent acts for; defaults to
                ``act_fhir_user`` when only that is given.
            act_fhir_user: ``act.fhirUser`` (``Practitioner/12``).
            fhir_user: Top-level ``fhirUser`` claim.
            ttl_seconds: Lifetime from now (``exp - iat``).
            purpose_of_use: The ``purpose_of_use`` claim (a list).
            extra_claims: Merged in last; a ``None`` value removes that claim.
            roles_claim: Name of the roles claim (``AuthSettings.roles_claim``).

        Returns:
            The compact JWS.
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": client_id,
            "aud": audience,
            "client_id": client_id,
            "scope": scopes,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if roles := list(roles):
            claims[roles_claim] = roles
        if patient is not None:
            claims["patient"] = patient
        if fhir_user is not None:
            claims["fhirUser"] = fhir_user
        if act_subject is not None or act_fhir_user is not None:
            act: dict[str, str] = {"sub": act_subject or str(act_fhir_user)}
            if act_fhir_user is not None:
                act["fhirUser"] = act_fhir_user
            claims["act"] = act
        if pou := list(purpose_of_use):
            claims["purpose_of_use"] = pou
        for name, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = self._active_key()
        alg = str(key.alg)
        header = {"alg": alg, "kid": self._active_kid, "typ": "at+jwt"}
        return jwt.encode(header, claims, key, algorithms=[alg])

    def _active_key(self) -> Key:
        for key in self._keys:
            if key.kid == self._active_kid:
                return key
        raise ValueError(f"active key {self._active_kid!r} missing")

    def _save(self) -> None:
        private = {
            "issuer": self._issuer,
            "active_kid": self._active_kid,
            "keys": [k.as_dict(private=True) for k in self._keys],
        }
        _write(self._directory / _PRIVATE_FILE, private, 0o600)
        _write(self.jwks_path, self.jwks(), 0o644)
