"""The verified caller: agent, the user it acts for, scopes, roles and launch context."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import his_sdk.errors

from ._scopes import SmartScope, parse_scopes

__all__ = ["Actor", "Principal", "principal_from_claims"]

_MAX_ACT_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Actor:
    """A party named in an RFC 8693 ``act`` claim.

    Attributes:
        subject: The actor's ``sub``.
        fhir_user: Its FHIR identity (``Practitioner/12``) from the ``fhirUser`` member.
        display: A display name from the ``name`` member, for audit records.
    """

    subject: str
    fhir_user: str | None = None
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls, on whose behalf, and with which grants; built once from a verified token.

    The agent is the OAuth2 client; the human it works for arrives in an RFC 8693 ``act``
    claim. RFC 8693 section 4.1 makes the outermost ``act`` the current actor and nested
    ``act`` members prior actors in the delegation chain, so ``on_behalf_of`` is the outermost
    ``act`` and ``prior_actors`` holds the nested ones, nearest first, for the audit trail.

    Attributes:
        client_id: The agent's OAuth2 client id (``client_id``, else ``azp``, else ``sub``).
        subject: The token's ``sub``.
        on_behalf_of: The user the agent acts for (outermost ``act``), if any.
        fhir_user: The top-level ``fhirUser`` claim (``Practitioner/12``), if any.
        scopes: SMART resource scopes.
        other_scopes: Every other scope (``openid``, ``launch/patient``, ...).
        roles: Roles from the configured roles claim.
        patient: The SMART launch context patient id, if any.
        token_id: The token's ``jti``.
        issuer: The token's ``iss``.
        expires_at: The token's ``exp`` (UTC).
        purpose_of_use: Purpose-of-use codes (``TREAT``, ``ETREAT``, ...).
        prior_actors: Nested ``act`` claims below ``on_behalf_of``, nearest first.
    """

    client_id: str
    subject: str
    on_behalf_of: Actor | None
    fhir_user: str | None
    scopes: tuple[SmartScope, ...]
    other_scopes: tuple[str, ...]
    roles: frozenset[str]
    patient: str | None
    token_id: str
    issuer: str
    expires_at: datetime.datetime
    purpose_of_use: tuple[str, ...] = ()
    prior_actors: tuple[Actor, ...] = ()

    @property
    def acting_user(self) -> str | None:
        """The practitioner reference to check care-team membership against.

        The ``fhirUser`` of the user the agent acts for, else the token's own ``fhirUser``.
        """
        if self.on_behalf_of is not None and self.on_behalf_of.fhir_user is not None:
            return self.on_behalf_of.fhir_user
        return self.fhir_user

    def has_role(self, role: str) -> bool:
        """Whether the principal holds ``role``."""
        return role in self.roles

    def scopes_for(self, resource_type: str, interaction: str) -> list[SmartScope]:
        """The resource scopes granting ``interaction`` on ``resource_type``, in token order.

        Args:
            resource_type: A FHIR resource type.
            interaction: A SMART letter or interaction name, as in :meth:`SmartScope.permits`.
        """
        return [s for s in self.scopes if s.permits(resource_type, interaction)]

    def scope_contexts_for(self, resource_type: str, interaction: str) -> list[str]:
        """The contexts of the scopes granting ``interaction`` on ``resource_type``.

        Each context appears once, broadest first: ``system``, ``user``, ``patient``.

        Args:
            resource_type: A FHIR resource type.
            interaction: A SMART letter or interaction name, as in :meth:`SmartScope.permits`.
        """
        found = {s.context for s in self.scopes if s.permits(resource_type, interaction)}
        return [c for c in ("system", "user", "patient") if c in found]


def _str_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise his_sdk.errors.AuthenticationError(f"malformed {name} claim")
    return value


def _required_str_claim(claims: Mapping[str, Any], name: str) -> str:
    value = _str_claim(claims, name)
    if value is None:
        raise his_sdk.errors.AuthenticationError(f"token has no {name} claim")
    return value


def _str_list_claim(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = _lookup(claims, name)
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise his_sdk.errors.AuthenticationError(f"malformed {name} claim")


def _lookup(claims: Mapping[str, Any], name: str) -> Any:
    # A dotted name reaches into nested objects (Keycloak's ``realm_access.roles``) when no
    # top-level claim carries the whole name.
    if name in claims or "." not in name:
        return claims.get(name)
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _actors(claims: Mapping[str, Any]) -> list[Actor]:
    chain: list[Actor] = []
    act = claims.get("act")
    while act is not None:
        if not isinstance(act, Mapping) or len(chain) >= _MAX_ACT_DEPTH:
            raise his_sdk.errors.AuthenticationError("malformed act claim")
        subject = act.get("sub")
        fhir_user = act.get("fhirUser")
        display = act.get("name")
        if not isinstance(subject, str) or not subject:
            raise his_sdk.errors.AuthenticationError("malformed act claim: no sub")
        if fhir_user is not None and (not isinstance(fhir_user, str) or not fhir_user):
            raise his_sdk.errors.AuthenticationError("malformed act claim: bad fhirUser")
        if display is not None and not isinstance(display, str):
            raise his_sdk.errors.AuthenticationError("malformed act claim: bad name")
        chain.append(Actor(subject=subject, fhir_user=fhir_user, display=display))
        act = act.get("act")
    return chain


def principal_from_claims(claims: Mapping[str, Any], *, roles_claim: str) -> Principal:
    """Build a :class:`Principal` from claims whose signature and times were already checked.

    Args:
        claims: The token's payload.
        roles_claim: Name of the roles claim (a dotted name reaches into nested objects).

    Raises:
        his_sdk.errors.AuthenticationError: A claim is missing or has the wrong shape.
    """
    subject = _required_str_claim(claims, "sub")
    token_id = _required_str_claim(claims, "jti")
    issuer = _required_str_claim(claims, "iss")
    client_id = _str_claim(claims, "client_id") or _str_claim(claims, "azp") or subject
    scope_claim = claims.get("scope", claims.get("scp"))
    if scope_claim is None:
        scope_text = ""
    elif isinstance(scope_claim, str):
        scope_text = scope_claim
    elif isinstance(scope_claim, list) and all(isinstance(s, str) for s in scope_claim):
        scope_text = " ".join(scope_claim)
    else:
        raise his_sdk.errors.AuthenticationError("malformed scope claim")
    scopes, other_scopes = parse_scopes(scope_text)
    actors = _actors(claims)
    exp = claims["exp"]
    return Principal(
        client_id=client_id,
        subject=subject,
        on_behalf_of=actors[0] if actors else None,
        fhir_user=_str_claim(claims, "fhirUser"),
        scopes=scopes,
        other_scopes=other_scopes,
        roles=frozenset(_str_list_claim(claims, roles_claim)),
        patient=_str_claim(claims, "patient"),
        token_id=token_id,
        issuer=issuer,
        expires_at=datetime.datetime.fromtimestamp(exp, tz=datetime.UTC),
        purpose_of_use=_str_list_claim(claims, "purpose_of_use"),
        prior_actors=tuple(actors[1:]),
    )
