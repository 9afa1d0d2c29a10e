"""Signed, opaque search cursors that bind an adapter's position to the query that made it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence

import his_sdk.errors

__all__ = ["CursorCodec"]


class CursorCodec:
    """Wrap adapter positions into cursors a caller cannot forge or reuse for another query."""

    def __init__(self, secret: str | None = None) -> None:
        self._key = (secret or secrets.token_hex(32)).encode()

    @staticmethod
    def fingerprint(parts: Sequence[object]) -> str:
        """A stable digest of everything that defines a query and its caller."""
        text = json.dumps([str(p) for p in parts], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def encode(self, position: str, fingerprint: str) -> str:
        """A cursor for ``position`` valid only for the query with ``fingerprint``."""
        body = base64.urlsafe_b64encode(
            json.dumps({"p": position, "f": fingerprint}, separators=(",", ":")).encode()
        ).rstrip(b"=")
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        return f"{body.decode()}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    def decode(self, cursor: str, fingerprint: str) -> str:
        """The adapter position inside ``cursor``.

        Raises:
            his_sdk.errors.InvalidRequestError: Forged, corrupted or from another query.
        """
        body, _, mac = cursor.partition(".")
        try:
            expected = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:16]
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
            if not hmac.compare_digest(expected, given):
                raise ValueError("bad signature")
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, TypeError) as exc:
            raise his_sdk.errors.InvalidRequestError(
                "cursor is invalid or was issued by another gateway instance; restart the search",
                expression=["cursor"],
            ) from exc
        if payload.get("f") != fingerprint:
            raise his_sdk.errors.InvalidRequestError(
                "cursor belongs to a different search; repeat the original parameters with it",
                expression=["cursor"],
            )
        return str(payload["p"])
