"""What the gateway asks the policy, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AccessRequest", "Decision"]


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One authorization question: may the caller do ``action`` on ``resource_type`` here?

    Attributes:
        action: ``read`` or ``search``; ``create``, ``update`` and ``delete`` for writes.
        resource_type: The FHIR resource type.
        patient_id: The patient compartment the data belongs to, or None for population-level
            requests and data outside any patient compartment.
        break_glass_reason: The caller's emergency justification; None when not requested.
    """

    action: str
    resource_type: str
    patient_id: str | None = None
    break_glass_reason: str | None = None

    @property
    def break_glass_requested(self) -> bool:
        """Whether the caller asked for a break-glass override (even without a reason)."""
        return self.break_glass_reason is not None

    @property
    def break_glass_justified(self) -> bool:
        """Whether a break-glass override was asked for with a non-blank reason."""
        return bool(self.break_glass_reason and self.break_glass_reason.strip())


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer to one :class:`AccessRequest`.

    Attributes:
        allowed: Whether the request may proceed.
        reason_code: Why it was denied (``insufficient_scope``, ``not_on_care_team``, ...);
            None when allowed.
        message: What the caller could do to be allowed; never contains patient data.
        granular_filters: ``(parameter, value)`` pairs from the granting scopes' SMART
            granular filters that the gateway must add to the query (same parameter: any
            of the values).
        break_glass: True when only a break-glass override allowed the request; the gateway
            must record it.
        required_patient: The patient a search without a compartment must be narrowed to (the
            launch patient of a ``patient/`` scope); None when no narrowing applies.
        scope_context: The context (``patient``, ``user``, ``system``) of the granting
            scopes; None when denied.
    """

    allowed: bool
    reason_code: str | None = None
    message: str = ""
    granular_filters: tuple[tuple[str, str], ...] = ()
    break_glass: bool = False
    required_patient: str | None = None
    scope_context: str | None = None
