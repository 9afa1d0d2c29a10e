"""Reviewer sessions in an HMAC-signed cookie, with idle and absolute expiry and a CSRF token."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, replace
from typing import Any

import his_sdk.auth

__all__ = ["Reviewer", "Session", "SessionCodec"]

_VERSION = 1


@dataclass(frozen=True)
class Reviewer:
    """The person logged in to the console.

    Attributes:
        subject: The identity provider's subject for the person.
        issuer: Who vouched for them (the OIDC issuer, or ``dev-login``).
        display: A display name.
        fhir_user: Their FHIR identity (``Practitioner/12``), if known.
        roles: Their reviewer roles.
    """

    subject: str
    issuer: str
    display: str | None
    fhir_user: str | None
    roles: tuple[str, ...]

    def principal(
        self, *, client_id: str, session_id: str, expires_at: datetime.datetime
    ) -> his_sdk.auth.Principal:
        """The principal the approval service sees for a call made through the console.

        The person is the token subject, so the service's self-approval ban and its count of
        distinct approvers both apply to them.
        """
        return his_sdk.auth.Principal(
            client_id=client_id,
            subject=self.subject,
            on_behalf_of=None,
            fhir_user=self.fhir_user,
            scopes=(),
            other_scopes=(),
            roles=frozenset(self.roles),
            patient=None,
            token_id=session_id,
            issuer=self.issuer,
            expires_at=expires_at,
        )


@dataclass(frozen=True)
class Session:
    """One browser session.

    Attributes:
        id: Random session id (names the session in audit records as the token id).
        csrf: The synchronizer token every POST must echo.
        created: When the session began (the absolute timeout counts from here).
        seen: The last request (the idle timeout counts from here).
        reviewer: The logged-in reviewer; None before login.
        flash: A one-time message for the next page.
    """

    id: str
    csrf: str
    created: datetime.datetime
    seen: datetime.datetime
    reviewer: Reviewer | None = None
    flash: str | None = None

    @classmethod
    def new(cls, now: datetime.datetime) -> Session:
        """A fresh anonymous session with new ids."""
        return cls(
            id=secrets.token_urlsafe(18),
            csrf=secrets.token_urlsafe(32),
            created=now,
            seen=now,
        )

    def logged_in(self, reviewer: Reviewer, now: datetime.datetime) -> Session:
        """A new session for ``reviewer``.

        It gets a new id and CSRF token, so a session fixed before login is worth nothing after.
        """
        return replace(Session.new(now), reviewer=reviewer)

    def touched(self, now: datetime.datetime) -> Session:
        """This session with its last activity at ``now`` and the flash consumed."""
        return replace(self, seen=now, flash=None)

    def csrf_matches(self, token: str | None) -> bool:
        """Whether ``token`` is this session's CSRF token (constant-time)."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())

    def to_dict(self) -> dict[str, Any]:
        """The session as JSON-ready data."""
        reviewer = self.reviewer
        return {
            "v": _VERSION,
            "id": self.id,
            "csrf": self.csrf,
            "created": self.created.timestamp(),
            "seen": self.seen.timestamp(),
            "flash": self.flash,
            "reviewer": None
            if reviewer is None
            else {
                "sub": reviewer.subject,
                "iss": reviewer.issuer,
                "name": reviewer.display,
                "fhir": reviewer.fhir_user,
                "roles": list(reviewer.roles),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        """The session :meth:`to_dict` wrote.

        Raises:
            ValueError: The data is not a session of this version.
        """
        if data.get("v") != _VERSION:
            raise ValueError("unknown session version")
        try:
            raw = data["reviewer"]
            reviewer = (
                None
                if raw is None
                else Reviewer(
                    subject=str(raw["sub"]),
                    issuer=str(raw["iss"]),
                    display=raw["name"],
                    fhir_user=raw["fhir"],
                    roles=tuple(str(r) for r in raw["roles"]),
                )
            )
            return cls(
                id=str(data["id"]),
                csrf=str(data["csrf"]),
                created=datetime.datetime.fromtimestamp(float(data["created"]), datetime.UTC),
                seen=datetime.datetime.fromtimestamp(float(data["seen"]), datetime.UTC),
                reviewer=reviewer,
                flash=data.get("flash"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed session: {exc}") from exc


class SessionCodec:
    """Signs sessions into cookie values and checks them back, enforcing both timeouts.

    Args:
        secret: The signing key; every replica must share it.
        idle_timeout: A session unused this long is refused.
        absolute_timeout: A session older than this is refused.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        idle_timeout: datetime.timedelta,
        absolute_timeout: datetime.timedelta,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must have at least 16 bytes")
        self._key = hashlib.sha256(b"his-console-session\x00" + secret).digest()
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout

    def encode(self, session: Session) -> str:
        """The signed cookie value of ``session``."""
        return self.encode_value(session.to_dict())

    def decode(self, value: str | None) -> Session | None:
        """The session in a cookie value, or None when it is missing or forged.

        The caller checks :meth:`expired`, to tell the reviewer why they must log in again.
        """
        data = self.decode_value(value)
        if data is None:
            return None
        try:
            return Session.from_dict(data)
        except ValueError:
            # A correctly signed but unreadable cookie comes from an older release: start over.
            return None

    def encode_value(self, data: dict[str, Any]) -> str:
        """Any JSON object as a signed cookie value."""
        body = json.dumps(data, separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(body).rstrip(b"=")
        return (payload + b"." + self._sign(payload)).decode("ascii")

    def decode_value(self, value: str | None) -> dict[str, Any] | None:
        """The JSON object in a value :meth:`encode_value` wrote; None if missing or forged."""
        if not value:
            return None
        payload, dot, signature = value.encode("ascii", "replace").rpartition(b".")
        if not dot or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        except (binascii.Error, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def expired(self, session: Session, now: datetime.datetime) -> bool:
        """Whether ``session`` passed its idle or absolute timeout at ``now``."""
        return (
            now - session.seen > self.idle_timeout or now - session.created > self.absolute_timeout
        )

    def _sign(self, payload: bytes) -> bytes:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=")
