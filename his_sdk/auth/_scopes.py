"""SMART App Launch scopes: the v2 grammar, granular filters and the v1 spellings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

import his_sdk.errors

__all__ = ["INTERACTION_LETTERS", "SmartScope", "parse_scopes"]

ScopeContext = Literal["patient", "user", "system"]

INTERACTION_LETTERS: dict[str, str] = {
    "create": "c",
    "read": "r",
    "update": "u",
    "delete": "d",
    "search": "s",
}
"""SMART v2 permission letter of each FHIR interaction name."""

_LETTERS = frozenset("cruds")
_RESOURCE_PREFIXES = ("patient/", "user/", "system/")
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(
    r"(?P<context>patient|user|system)/"
    r"(?P<type>\*|[A-Z][A-Za-z0-9]*)\."
    r"(?P<permissions>read|write|\*|c?r?u?d?s?)"
    r"(?:\?(?P<query>.*))?",
    re.DOTALL,
)
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.:]*")
_MAX_SCOPE_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class SmartScope:
    """One SMART resource scope such as ``patient/Observation.rs?category=laboratory``.

    Attributes:
        context: ``patient`` (the launch patient's compartment), ``user`` (what the user may
            see) or ``system`` (a backend service without a user).
        resource_type: A FHIR resource type, or ``*`` for every type.
        interactions: The granted SMART v2 letters, a subset of ``c``, ``r``, ``u``, ``d``,
            ``s``. SMART v1 spellings are mapped: ``read`` to ``rs``, ``write`` to ``cud``
            and ``*`` to ``cruds``.
        filters: Granular ``(parameter, value)`` pairs from the ``?param=value&...`` suffix,
            percent-decoded, in the order written; empty when the scope is not granular.
        raw: The scope exactly as the token carried it.
    """

    context: ScopeContext
    resource_type: str
    interactions: frozenset[str]
    filters: tuple[tuple[str, str], ...]
    raw: str

    def permits(self, resource_type: str, interaction: str) -> bool:
        """Whether this scope grants ``interaction`` on ``resource_type``.

        Args:
            resource_type: A FHIR resource type such as ``Observation``.
            interaction: A SMART letter (``c``, ``r``, ``u``, ``d``, ``s``) or the
                interaction name (``create``, ``read``, ``update``, ``delete``, ``search``).

        Raises:
            ValueError: ``interaction`` is neither a letter nor a known name.
        """
        letter = interaction if interaction in _LETTERS else INTERACTION_LETTERS.get(interaction)
        if letter is None:
            raise ValueError(f"unknown interaction {interaction!r}")
        return letter in self.interactions and self.resource_type in ("*", resource_type)


def _parse_one(text: str) -> SmartScope:
    match = _SCOPE.fullmatch(text) if len(text) <= _MAX_SCOPE_LENGTH else None
    if match is None:
        raise his_sdk.errors.AuthenticationError(f"malformed SMART scope {text[:80]!r}")
    permissions = match["permissions"]
    query = match["query"]
    if not permissions:
        raise his_sdk.errors.AuthenticationError(
            f"malformed SMART scope {text!r}: no permission letters"
        )
    v1 = _V1_PERMISSIONS.get(permissions)
    if v1 is not None and query is not None:
        raise his_sdk.errors.AuthenticationError(
            f"malformed SMART scope {text!r}: granular filters need v2 permission letters"
        )
    filters: list[tuple[str, str]] = []
    if query is not None:
        for part in query.split("&"):
            name, sep, value = part.partition("=")
            if not sep or not value or _PARAM_NAME.fullmatch(name) is None:
                raise his_sdk.errors.AuthenticationError(
                    f"malformed SMART scope {text!r}: bad filter {part[:40]!r}"
                )
            filters.append((name, unquote(value)))
    context: ScopeContext = match["context"]  # type: ignore[assignment]
    return SmartScope(
        context=context,
        resource_type=match["type"],
        interactions=frozenset(v1 if v1 is not None else permissions),
        filters=tuple(filters),
        raw=text,
    )


def parse_scopes(text: str) -> tuple[tuple[SmartScope, ...], tuple[str, ...]]:
    """Split an OAuth2 ``scope`` string into SMART resource scopes and the other scopes.

    Resource scopes follow SMART App Launch v2,
    ``(patient|user|system)/(Type|*).c?r?u?d?s?`` with the letters in that order and at least
    one of them, optionally followed by granular ``?param=value&...`` filters; the v1
    permissions ``read``, ``write`` and ``*`` are accepted and mapped to v2 letters. Every
    other scope (``openid``, ``fhirUser``, ``launch/patient``, ``offline_access``, custom
    scopes) is returned as is. Duplicates are dropped, keeping the first.

    Args:
        text: Space-separated scopes, as in the ``scope`` claim.

    Returns:
        The resource scopes, then the other scopes, each in the order given.

    Raises:
        his_sdk.errors.AuthenticationError: A scope starts like a resource scope
            (``patient/``, ``user/``, ``system/``) but does not follow the grammar; a token
            carrying it is refused as a whole.
    """
    resource: list[SmartScope] = []
    other: list[str] = []
    seen: set[str] = set()
    for item in text.split():
        if item in seen:
            continue
        seen.add(item)
        if item.startswith(_RESOURCE_PREFIXES):
            resource.append(_parse_one(item))
        else:
            other.append(item)
    return tuple(resource), tuple(other)
