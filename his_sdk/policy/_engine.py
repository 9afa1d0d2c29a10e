"""The Oso policy engine: Polar decides, this module ranks reasons and words them for agents."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from oso import Oso
from polar import Variable

import his_sdk.adapter
import his_sdk.auth
import his_sdk.config

from ._model import AccessRequest, Decision

__all__ = ["REASON_CODES", "PolicyEngine", "shipped_policy_files"]

_POLICY_DIR = Path(__file__).parent / "policies"
_CONTEXT_ORDER = {"system": 0, "user": 1, "patient": 2}
_AMBIGUOUS = "ambiguous_granular_scopes"
_UNKNOWN_ORDER = 15
_EXAMPLE_LETTERS = {"read": "rs", "search": "rs", "create": "c", "update": "u", "delete": "d"}

_Explain = Callable[[his_sdk.auth.Principal, AccessRequest, "PolicyEngine"], str]


def _scope_example(p: his_sdk.auth.Principal, r: AccessRequest) -> str:
    context = p.scopes[0].context if p.scopes else "user"
    return f"{context}/{r.resource_type}.{_EXAMPLE_LETTERS.get(r.action, 'rs')}"


def _roles(p: his_sdk.auth.Principal) -> str:
    return ", ".join(sorted(p.roles)) or "none"


# Reason code -> (order, message). The order follows the policy's facets: scope, scope
# context, population, then patient access (facts, break-glass, relationship, consent). The
# policy denies each granting context by its first failing facet; among contexts the one
# that got furthest is reported.
_REASONS: dict[str, tuple[int, _Explain]] = {
    "unsupported_action": (
        0,
        lambda p, r, e: (
            f"action {r.action!r} is not supported; use read, search, create, update or delete"
        ),
    ),
    "insufficient_scope": (
        0,
        lambda p, r, e: (
            f"token lacks a scope granting {r.action} on {r.resource_type} "
            f"(e.g. {_scope_example(p, r)})"
        ),
    ),
    "patient_context_missing": (
        10,
        lambda p, r, e: (
            f"token has patient/ scopes for {r.resource_type} but no patient launch context; "
            "request a token launched for a patient, or user/ scopes"
        ),
    ),
    "patient_context_mismatch": (
        10,
        lambda p, r, e: (
            f"patient context mismatch: token is for patient {p.patient}; request a token "
            "for the patient in question, or user/ scopes"
        ),
    ),
    "role_not_permitted": (
        10,
        lambda p, r, e: (
            f"no role of this token ({_roles(p)}) permits {r.action} on {r.resource_type} "
            "with user/ scopes"
        ),
    ),
    "system_role_required": (
        10,
        lambda p, r, e: "system/ scopes are for backend services and need the 'system' role",
    ),
    "population_search_not_permitted": (
        20,
        lambda p, r, e: (
            "searching Patient without naming one needs a clinician or nurse role with user/ "
            "scopes, or system/ scopes; read the patient by id instead"
            if r.resource_type == "Patient"
            else f"{r.action} on {r.resource_type} across patients needs one of the roles "
            f"{', '.join(e.population_roles) or '(none configured)'}; name a patient "
            "(patient=...) instead"
        ),
    ),
    "patient_facts_unavailable": (
        30,
        lambda p, r, e: "care team and consent of this patient could not be established",
    ),
    "break_glass_reason_required": (
        31,
        lambda p, r, e: "break-glass needs a non-empty reason",
    ),
    "break_glass_role_not_permitted": (
        32,
        lambda p, r, e: (
            f"no role of this token ({_roles(p)}) may break glass; only clinicians and nurses may"
        ),
    ),
    "no_acting_user": (
        33,
        lambda p, r, e: (
            "token names no user (act.fhirUser or fhirUser) to check against this patient's "
            "care team; request a token on behalf of a treating clinician"
        ),
    ),
    "not_on_care_team": (
        33,
        lambda p, r, e: (
            f"user {p.acting_user} is not on the care team of this patient; ask a treating "
            "clinician or use break-glass with a reason"
        ),
    ),
    "consent_opt_out": (
        34,
        lambda p, r, e: (
            "the patient declined sharing with automated agents; only break-glass by a "
            "clinician or nurse, with a reason, overrides this"
        ),
    ),
    _AMBIGUOUS: (
        40,
        lambda p, r, e: (
            f"the token's granular scopes for {r.resource_type} filter on different "
            "parameters, which cannot be combined; request one granular scope or an "
            "unfiltered one"
        ),
    ),
}

REASON_CODES: frozenset[str] = frozenset(_REASONS)
"""Every reason code the shipped policy and the engine produce."""


def shipped_policy_files() -> list[Path]:
    """The Polar files shipped in the package, in load order."""
    return sorted(_POLICY_DIR.glob("*.polar"))


class PolicyEngine:
    """Authorization decisions from an Oso (Polar) policy.

    The policy defines ``decision(who, req, result)``, answering for each scope context that
    grants the interaction either a grant or the first facet that denies it (``allow`` and
    ``deny_reason`` split the same answer); ``policies/access.polar`` describes the
    arguments, and ``policies/roles.polar`` the shipped roles. One Polar query decides a
    request. This class prefers the ordinary policy over break-glass among the grants,
    derives the granular filters from the granting scopes, and words denials for the caller.

    Decisions are pure functions of principal, request and facts, so the latest
    ``cache_size`` of them are kept: the gateway asks the same question on every call of a
    conversation, and a Polar query costs a few hundred microseconds.

    Args:
        files: Polar files to load.
        population_roles: Roles allowed to search clinical types without naming a patient;
            the policy sees them as ``POPULATION_ROLES``.
        cache_size: Most decisions kept.

    Raises:
        ValueError: No files were given.
        FileNotFoundError: A policy file does not exist.
        polar.exceptions.OsoError: The policy does not parse or an inline query fails.
    """

    def __init__(
        self,
        files: Sequence[Path],
        *,
        population_roles: Iterable[str],
        cache_size: int = 4096,
    ) -> None:
        if not files:
            raise ValueError("no policy files given")
        for path in files:
            if not Path(path).is_file():
                raise FileNotFoundError(f"policy file not found: {path}")
        self._files = tuple(Path(f) for f in files)
        self._population_roles = tuple(population_roles)
        # oso ships py.typed but leaves its methods unannotated.
        oso: Any = Oso()
        oso.register_class(his_sdk.auth.Principal, name="Principal")
        oso.register_constant(list(self._population_roles), "POPULATION_ROLES")
        oso.load_files(list(self._files))
        self._oso = oso
        self._cached_decide = functools.lru_cache(maxsize=cache_size)(self._decide)

    @classmethod
    def from_settings(cls, settings: his_sdk.config.PolicySettings) -> PolicyEngine:
        """The configured policy files, or the shipped policy when none are configured."""
        files = list(settings.files) or shipped_policy_files()
        return cls(files, population_roles=settings.population_roles)

    @property
    def files(self) -> tuple[Path, ...]:
        """The loaded policy files."""
        return self._files

    @property
    def population_roles(self) -> tuple[str, ...]:
        """Roles allowed population-level access to clinical types."""
        return self._population_roles

    def decide(
        self,
        principal: his_sdk.auth.Principal,
        request: AccessRequest,
        facts: his_sdk.adapter.PatientFacts | None,
    ) -> Decision:
        """Decide one request for one patient compartment (or none).

        Args:
            principal: The verified caller.
            request: What it wants to do.
            facts: Care team and consent of ``request.patient_id``; None when the request
                names no patient. Missing facts for a named patient deny.

        Raises:
            ValueError: ``facts`` describe another patient than the request names.
        """
        if (
            facts is not None
            and request.patient_id is not None
            and facts.patient_id != request.patient_id
        ):
            raise ValueError("patient facts are for another patient than the request")
        return self._cached_decide(principal, request, facts)

    def explain(self, principal: his_sdk.auth.Principal, request: AccessRequest, code: str) -> str:
        """The caller-facing message for a reason code (no patient data)."""
        entry = _REASONS.get(code)
        if entry is None:
            return f"access denied by policy ({code})"
        return entry[1](principal, request, self)

    def _decide(
        self,
        principal: his_sdk.auth.Principal,
        request: AccessRequest,
        facts: his_sdk.adapter.PatientFacts | None,
    ) -> Decision:
        grants: list[tuple[str, str, str]] = []
        denials: list[tuple[str, str]] = []
        query = self._oso.query_rule(
            "decision", _who(principal), _request(request, facts), Variable("result")
        )
        for found in query:
            result = found["bindings"]["result"]
            if result[0] == "allow":
                grants.append((result[1], result[2], result[3]))
            else:
                denials.append((result[1], result[2]))
        for context, via, required in sorted(grants, key=_grant_order):
            filters = _granular_filters(principal, request, context)
            if filters is None:
                continue
            return Decision(
                allowed=True,
                granular_filters=filters,
                break_glass=via == "break_glass",
                required_patient=required or None,
                scope_context=context,
            )
        if grants:
            # Every grant came only from granular scopes that cannot be combined.
            return self._denied(principal, request, _AMBIGUOUS)
        return self._denied(principal, request, _furthest(denials))

    def _denied(
        self, principal: his_sdk.auth.Principal, request: AccessRequest, code: str
    ) -> Decision:
        return Decision(
            allowed=False, reason_code=code, message=self.explain(principal, request, code)
        )


def _who(principal: his_sdk.auth.Principal) -> dict[str, Any]:
    # Plain values travel as Polar dictionaries: every lookup on a host object is a round
    # trip to Python, so only the scope check calls back.
    return {
        "principal": principal,
        "roles": sorted(principal.roles),
        "patient": principal.patient or "",
        "acting_user": principal.acting_user or "",
    }


def _request(request: AccessRequest, facts: his_sdk.adapter.PatientFacts | None) -> dict[str, Any]:
    if not request.break_glass_requested:
        break_glass = ""
    elif request.break_glass_justified:
        break_glass = "justified"
    else:
        break_glass = "empty"
    return {
        "action": request.action,
        "resource_type": request.resource_type,
        "patient_id": request.patient_id or "",
        "break_glass": break_glass,
        "facts": {
            "known": facts is not None,
            "care_team": sorted(facts.care_team) if facts is not None else [],
            "consent_opt_out": facts is not None and facts.consent_opt_out,
        },
    }


def _furthest(denials: list[tuple[str, str]]) -> str:
    # The denial of the context that came closest to being allowed; its advice is the most
    # useful. Ties go to the broader context.
    if not denials:
        return "denied_by_policy"

    def rank(denial: tuple[str, str]) -> tuple[int, int]:
        context, code = denial
        order = _REASONS[code][0] if code in _REASONS else _UNKNOWN_ORDER
        return (order, -_CONTEXT_ORDER.get(context, 9))

    return max(denials, key=rank)[1]


def _grant_order(grant: tuple[str, ...]) -> tuple[bool, bool, int]:
    # The ordinary policy before break-glass, unnarrowed before narrowed, broad contexts first.
    context, via, required = grant
    return (via != "policy", required != "", _CONTEXT_ORDER.get(context, 9))


def _granular_filters(
    principal: his_sdk.auth.Principal, request: AccessRequest, context: str
) -> tuple[tuple[str, str], ...] | None:
    # Filters OR together only when every filtered scope restricts the same single parameter;
    # anything else (different parameters, several parameters in one scope) has no FHIR
    # search equivalent, so None reports the scopes as ambiguous.
    letter = his_sdk.auth.INTERACTION_LETTERS.get(request.action)
    if letter is None:
        return ()
    groups: list[tuple[tuple[str, str], ...]] = []
    for scope in principal.scopes_for(request.resource_type, letter):
        if scope.context != context:
            continue
        if not scope.filters:
            return ()
        if scope.filters not in groups:
            groups.append(scope.filters)
    if len(groups) <= 1:
        return groups[0] if groups else ()
    names = {name for group in groups for name, _ in group}
    if len(names) != 1 or any(len(group) != 1 for group in groups):
        return None
    return tuple(pair for group in groups for pair in group)
