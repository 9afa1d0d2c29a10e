"""Risk tiers and reviewer permissions, decided by an Oso (Polar) policy.

The shipped ``policies/approval.polar`` says which writes are low, medium or high risk (by
resource type, interaction and content), how many distinct approvers each tier needs and which
roles may view, approve, reject, extend or escalate at each tier. Two rules hold whatever the
policy says: the highest tier needs at least two distinct approvers, and nobody decides a
request they proposed or that was proposed on their behalf (``approval_service._service``).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oso import Oso
from polar import Variable

__all__ = ["ApprovalPolicy", "ResourceFacts", "RiskAssessment", "RiskTier", "shipped_policy_files"]

_POLICY_DIR = Path(__file__).parent / "policies"


class RiskTier(enum.StrEnum):
    """How risky a write is; the order is the declaration order."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """1 for low, 2 for medium, 3 for high."""
        return list(RiskTier).index(self) + 1

    @classmethod
    def highest(cls) -> RiskTier:
        """The highest tier."""
        return list(cls)[-1]

    def next(self) -> RiskTier | None:
        """The tier above this one, or None for the highest."""
        tiers = list(RiskTier)
        index = tiers.index(self)
        return tiers[index + 1] if index + 1 < len(tiers) else None


REVIEW_ACTIONS = ("view", "approve", "reject", "extend", "escalate")
"""What a reviewer may be allowed to do with a request."""


@dataclass(frozen=True)
class RiskAssessment:
    """The policy's verdict on one write.

    Attributes:
        tier: The risk tier.
        reason: Why (the reasons of every rule that proposed that tier).
        approvals_required: Distinct approvers needed.
        reviewer_roles: Roles that may approve at this tier for this type.
    """

    tier: RiskTier
    reason: str
    approvals_required: int
    reviewer_roles: tuple[str, ...]


class ResourceFacts:
    """A proposed resource as the policy sees it: plain lookups that never fail.

    Args:
        data: The resource as FHIR JSON (a dict); empty for none.
    """

    def __init__(self, data: Mapping[str, Any] | None) -> None:
        self._data = dict(data or {})

    def value(self, path: str) -> str:
        """The text at a dotted path (first item of lists), or "" when absent."""
        found = self._walk(path)
        for item in found:
            if isinstance(item, str | int | float | bool):
                return str(item).lower() if isinstance(item, bool) else str(item)
        return ""

    def has_code(self, path: str, code: str) -> bool:
        """Whether a CodeableConcept (or list of them) at ``path`` carries ``code``.

        ``code`` may be ``system|code`` to require the system too.
        """
        system, _, bare = code.rpartition("|")
        for concept in self._walk(path):
            if not isinstance(concept, Mapping):
                continue
            for coding in concept.get("coding") or []:
                if not isinstance(coding, Mapping) or coding.get("code") != bare:
                    continue
                if not system or coding.get("system") == system:
                    return True
        return False

    def _walk(self, path: str) -> list[Any]:
        current: list[Any] = [self._data]
        for part in path.split("."):
            following: list[Any] = []
            for item in current:
                if isinstance(item, Mapping) and part in item:
                    value = item[part]
                    following.extend(value if isinstance(value, list) else [value])
            current = following
        return current


def shipped_policy_files() -> list[Path]:
    """The Polar files shipped with the queue."""
    return sorted(_POLICY_DIR.glob("*.polar"))


class ApprovalPolicy:
    """Risk tiers, approver counts and reviewer permissions from Polar files.

    Args:
        files: Polar files; the shipped policy when empty.

    Raises:
        FileNotFoundError: A policy file does not exist.
        polar.exceptions.OsoError: The policy does not parse.
    """

    def __init__(self, files: Sequence[Path] = ()) -> None:
        chosen = [Path(f) for f in files] or shipped_policy_files()
        for path in chosen:
            if not path.is_file():
                raise FileNotFoundError(f"approval policy file not found: {path}")
        # oso ships py.typed but leaves its methods unannotated.
        oso: Any = Oso()
        oso.register_class(ResourceFacts, name="ResourceFacts")
        oso.load_files(chosen)
        self._oso = oso
        self.files = tuple(chosen)
        self._required = functools.lru_cache(maxsize=64)(self._approvals_required)
        self._roles = functools.lru_cache(maxsize=1024)(self._reviewer_roles)
        self._permits = functools.lru_cache(maxsize=4096)(self._permits_uncached)

    def assess(
        self, interaction: str, resource_type: str, resource: Mapping[str, Any] | None
    ) -> RiskAssessment:
        """The tier of a write (the highest any rule proposes; the highest tier if none).

        Args:
            interaction: ``create``, ``update`` or ``delete``.
            resource_type: The type written.
            resource: The proposed resource as FHIR JSON (the current one for a delete).
        """
        facts = ResourceFacts(resource)
        proposals: dict[RiskTier, list[str]] = {}
        query = self._oso.query_rule(
            "risk", interaction, resource_type, facts, Variable("tier"), Variable("reason")
        )
        for found in query:
            bindings = found["bindings"]
            try:
                tier = RiskTier(str(bindings["tier"]))
            except ValueError:
                raise ValueError(
                    f"the approval policy proposes an unknown tier {bindings['tier']!r}"
                ) from None
            reason = str(bindings["reason"])
            reasons = proposals.setdefault(tier, [])
            if reason not in reasons:
                reasons.append(reason)
        if proposals:
            tier = max(proposals, key=lambda t: t.rank)
            reason = "; ".join(proposals[tier])
        else:
            tier = RiskTier.highest()
            reason = f"no risk rule covers {interaction} of {resource_type}"
        return self.for_tier(tier, resource_type, reason)

    def for_tier(self, tier: RiskTier, resource_type: str, reason: str) -> RiskAssessment:
        """The assessment of a write placed in ``tier`` (after an escalation or an edit)."""
        return RiskAssessment(
            tier=tier,
            reason=reason,
            approvals_required=self._required(tier),
            reviewer_roles=self._roles(tier, resource_type),
        )

    def permits(
        self, roles: Iterable[str], action: str, tier: RiskTier, resource_type: str
    ) -> bool:
        """Whether any of ``roles`` may take ``action`` on a request of this tier and type."""
        if action not in REVIEW_ACTIONS:
            raise ValueError(f"unknown review action {action!r}")
        return self._permits(frozenset(roles), action, tier, resource_type)

    def is_reviewer(self, roles: Iterable[str]) -> bool:
        """Whether any of ``roles`` is a reviewer role at all."""
        return any(self._oso.query_rule_once("reviewer_role", role) for role in sorted(set(roles)))

    def _permits_uncached(
        self, roles: frozenset[str], action: str, tier: RiskTier, resource_type: str
    ) -> bool:
        reviewer = {"roles": sorted(roles)}
        request = {"tier": tier.value, "resource_type": resource_type}
        return bool(self._oso.query_rule_once("allow", reviewer, action, request))

    def _approvals_required(self, tier: RiskTier) -> int:
        counts = [
            int(found["bindings"]["count"])
            for found in self._oso.query_rule("approvals_required", tier.value, Variable("count"))
        ]
        required = max(counts) if counts else 1
        if tier is RiskTier.highest():
            required = max(required, 2)
        return max(required, 1)

    def _reviewer_roles(self, tier: RiskTier, resource_type: str) -> tuple[str, ...]:
        roles = {
            str(found["bindings"]["role"])
            for found in self._oso.query_rule(
                "may", Variable("role"), "approve", tier.value, resource_type
            )
        }
        return tuple(sorted(roles))
