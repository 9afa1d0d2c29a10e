"""The shipped policy, facet by facet: who may do what, and the reason when not."""

from __future__ import annotations

import pytest

import his_sdk.policy
from his_sdk.adapter import PatientFacts
from his_sdk.policy import AccessRequest, Decision

DR1 = "Practitioner/dr1"
DR2 = "Practitioner/dr2"
P1 = PatientFacts("p1", care_team=frozenset({DR1}))
P3_OPTED_OUT = PatientFacts("p3", care_team=frozenset({DR1}), consent_opt_out=True)
P9_UNKNOWN = PatientFacts("p9", exists=False)
FACTS = {"p1": P1, "p3": P3_OPTED_OUT, "p9": P9_UNKNOWN}


def req(action, resource_type, patient_id=None, break_glass=None) -> AccessRequest:
    return AccessRequest(action, resource_type, patient_id, break_glass)


# name, principal arguments, request, expected reason code (None: allowed)
CASES = [
    # scope facet
    (
        "no scope for the type",
        ("user/Condition.rs", {"roles": ["clinician"], "act": DR1}),
        req("read", "Observation", "p1"),
        "insufficient_scope",
    ),
    (
        "scope lacks the interaction",
        ("user/Observation.r", {"roles": ["clinician"], "act": DR1}),
        req("search", "Observation", "p1"),
        "insufficient_scope",
    ),
    (
        "unknown action",
        ("user/*.cruds", {"roles": ["clinician"], "act": DR1}),
        req("patch", "Observation", "p1"),
        "unsupported_action",
    ),
    (
        "wildcard type",
        ("user/*.rs", {"roles": ["clinician"], "act": DR1}),
        req("read", "AllergyIntolerance", "p1"),
        None,
    ),
    (
        "write scope and role",
        ("user/Observation.cu", {"roles": ["clinician"], "act": DR1}),
        req("create", "Observation", "p1"),
        None,
    ),
    # patient/ context
    (
        "launch patient's own data",
        ("patient/Observation.rs", {"patient": "p1"}),
        req("read", "Observation", "p1"),
        None,
    ),
    (
        "another patient's data",
        ("patient/Observation.rs", {"patient": "p2"}),
        req("read", "Observation", "p1"),
        "patient_context_mismatch",
    ),
    (
        "patient scope without launch context",
        ("patient/Observation.rs", {}),
        req("read", "Observation", "p1"),
        "patient_context_missing",
    ),
    (
        "compartment data without a compartment",
        ("patient/Observation.rs", {"patient": "p1"}),
        req("read", "Observation"),
        "patient_context_mismatch",
    ),
    (
        "reference data in patient context",
        ("patient/Practitioner.rs", {"patient": "p1"}),
        req("search", "Practitioner"),
        None,
    ),
    (
        "patient scope and consent opt-out",
        ("patient/Observation.rs", {"patient": "p3"}),
        req("read", "Observation", "p3"),
        "consent_opt_out",
    ),
    # user/ context: roles
    (
        "clinician on the care team",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR1}),
        req("search", "Observation", "p1"),
        None,
    ),
    (
        "unknown role",
        ("user/Observation.rs", {"roles": ["billing"], "act": DR1}),
        req("read", "Observation", "p1"),
        "role_not_permitted",
    ),
    (
        "no role",
        ("user/Observation.rs", {"act": DR1}),
        req("read", "Observation", "p1"),
        "role_not_permitted",
    ),
    (
        "nurse records observations",
        ("user/Observation.cruds", {"roles": ["nurse"], "act": DR1}),
        req("create", "Observation", "p1"),
        None,
    ),
    (
        "nurse may not delete",
        ("user/Observation.cruds", {"roles": ["nurse"], "act": DR1}),
        req("delete", "Observation", "p1"),
        "role_not_permitted",
    ),
    (
        "pharmacist reads orders",
        ("user/MedicationRequest.rs", {"roles": ["pharmacist"], "act": DR1}),
        req("read", "MedicationRequest", "p1"),
        None,
    ),
    (
        "pharmacist and notes",
        ("user/DocumentReference.rs", {"roles": ["pharmacist"], "act": DR1}),
        req("read", "DocumentReference", "p1"),
        "role_not_permitted",
    ),
    (
        "read-only agent reads",
        ("user/Observation.rs", {"roles": ["agent-readonly"], "act": DR1}),
        req("read", "Observation", "p1"),
        None,
    ),
    (
        "read-only agent writes",
        ("user/Observation.c", {"roles": ["agent-readonly"], "act": DR1}),
        req("create", "Observation", "p1"),
        "role_not_permitted",
    ),
    # user/ context: relationship and consent
    (
        "clinician off the care team",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR2}),
        req("read", "Observation", "p1"),
        "not_on_care_team",
    ),
    (
        "token's own fhirUser on the team",
        ("user/Observation.rs", {"roles": ["clinician"], "fhir_user": DR1}),
        req("read", "Observation", "p1"),
        None,
    ),
    (
        "no user to check",
        ("user/Observation.rs", {"roles": ["clinician"]}),
        req("read", "Observation", "p1"),
        "no_acting_user",
    ),
    (
        "researcher needs no care team",
        ("user/Observation.rs", {"roles": ["researcher"]}),
        req("read", "Observation", "p1"),
        None,
    ),
    (
        "care team and consent opt-out",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR1}),
        req("read", "Observation", "p3"),
        "consent_opt_out",
    ),
    (
        "no facts for a named patient",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR1}),
        req("read", "Observation", "p-missing"),
        "patient_facts_unavailable",
    ),
    (
        "patient the EHR does not know",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR1}),
        req("read", "Observation", "p9"),
        "not_on_care_team",
    ),
    # population-level requests
    (
        "clinician searches everyone",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR1}),
        req("search", "Observation"),
        "population_search_not_permitted",
    ),
    (
        "researcher searches everyone",
        ("user/Observation.rs", {"roles": ["researcher"]}),
        req("search", "Observation"),
        None,
    ),
    (
        "clinician looks up a patient",
        ("user/Patient.rs", {"roles": ["clinician"], "act": DR1}),
        req("search", "Patient"),
        None,
    ),
    (
        "nurse looks up a patient",
        ("user/Patient.rs", {"roles": ["nurse"], "act": DR1}),
        req("search", "Patient"),
        None,
    ),
    (
        "read-only agent looks up a patient",
        ("user/Patient.rs", {"roles": ["agent-readonly"]}),
        req("search", "Patient"),
        "population_search_not_permitted",
    ),
    (
        "reference data for anyone with a role",
        ("user/Practitioner.rs", {"roles": ["agent-readonly"]}),
        req("search", "Practitioner"),
        None,
    ),
    # system/ context
    (
        "backend population search",
        ("system/Observation.rs", {"roles": ["system"]}),
        req("search", "Observation"),
        None,
    ),
    (
        "backend patient lookup",
        ("system/Patient.rs", {"roles": ["system"]}),
        req("search", "Patient"),
        None,
    ),
    (
        "system scope without the role",
        ("system/Observation.rs", {"roles": ["clinician"]}),
        req("search", "Observation"),
        "system_role_required",
    ),
    (
        "backend and consent opt-out",
        ("system/Observation.rs", {"roles": ["system"]}),
        req("read", "Observation", "p3"),
        "consent_opt_out",
    ),
    (
        "backend reads a compartment",
        ("system/Observation.rs", {"roles": ["system"]}),
        req("read", "Observation", "p1"),
        None,
    ),
    # break-glass
    (
        "break-glass by a clinician",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR2}),
        req("read", "Observation", "p1", "patient collapsed in ED"),
        None,
    ),
    (
        "break-glass by a nurse",
        ("user/Observation.rs", {"roles": ["nurse"], "act": DR2}),
        req("read", "Observation", "p1", "rapid response call"),
        None,
    ),
    (
        "break-glass over consent",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR1}),
        req("read", "Observation", "p3", "unconscious, allergy check"),
        None,
    ),
    (
        "break-glass by a pharmacist",
        ("user/Observation.rs", {"roles": ["pharmacist"], "act": DR2}),
        req("read", "Observation", "p1", "urgent"),
        "break_glass_role_not_permitted",
    ),
    (
        "break-glass by a backend",
        ("system/Observation.rs", {"roles": ["system"]}),
        req("read", "Observation", "p3", "urgent"),
        "break_glass_role_not_permitted",
    ),
    (
        "break-glass without a reason",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR2}),
        req("read", "Observation", "p1", ""),
        "break_glass_reason_required",
    ),
    (
        "break-glass with a blank reason",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR2}),
        req("read", "Observation", "p1", "  \t"),
        "break_glass_reason_required",
    ),
    (
        "break-glass never grants scopes",
        ("user/Condition.rs", {"roles": ["clinician"], "act": DR2}),
        req("read", "Observation", "p1", "urgent"),
        "insufficient_scope",
    ),
    (
        "break-glass never grants roles",
        ("user/Observation.rs", {"roles": ["billing"], "act": DR2}),
        req("read", "Observation", "p1", "urgent"),
        "role_not_permitted",
    ),
    (
        "break-glass never changes the launch patient",
        ("patient/Observation.rs", {"roles": ["clinician"], "patient": "p2"}),
        req("read", "Observation", "p1", "urgent"),
        "patient_context_mismatch",
    ),
    (
        "break-glass never widens population access",
        ("user/Observation.rs", {"roles": ["clinician"], "act": DR1}),
        req("search", "Observation", None, "urgent"),
        "population_search_not_permitted",
    ),
    # several contexts: the best way through, or the denial that came closest
    (
        "patient context where user context fails",
        (
            "user/Observation.rs patient/Observation.rs",
            {"roles": ["clinician"], "act": DR2, "patient": "p1"},
        ),
        req("read", "Observation", "p1"),
        None,
    ),
    (
        "furthest denial is reported",
        (
            "patient/Observation.rs user/Observation.rs",
            {"roles": ["clinician"], "act": DR2, "patient": "p2"},
        ),
        req("read", "Observation", "p1"),
        "not_on_care_team",
    ),
]


@pytest.mark.parametrize(
    ("scopes", "kwargs", "request_", "expected"),
    [pytest.param(c[1][0], c[1][1], c[2], c[3], id=c[0]) for c in CASES],
)
def test_policy_table(engine, principal, scopes, kwargs, request_, expected):
    decision = engine.decide(principal(scopes, **kwargs), request_, FACTS.get(request_.patient_id))
    assert isinstance(decision, Decision)
    assert decision.reason_code == expected, decision.message
    assert decision.allowed is (expected is None)
    if expected is None:
        assert decision.message == ""
        assert decision.scope_context in ("patient", "user", "system")
    else:
        assert decision.message
        assert decision.message != f"access denied by policy ({expected})"
        assert decision.granular_filters == ()
        assert decision.break_glass is False


def test_every_reason_code_has_a_message():
    codes = {c[3] for c in CASES if c[3]} | {"ambiguous_granular_scopes"}
    assert codes == his_sdk.policy.REASON_CODES


def test_messages_tell_the_agent_what_would_work(engine, principal):
    p = principal("user/Observation.r", roles=["clinician"], act=DR2)
    no_scope = engine.decide(p, req("search", "Observation", "p1"), P1)
    assert no_scope.message == (
        "token lacks a scope granting search on Observation (e.g. user/Observation.rs)"
    )
    off_team = engine.decide(p, req("read", "Observation", "p1"), P1)
    assert off_team.message == (
        "user Practitioner/dr2 is not on the care team of this patient; ask a treating "
        "clinician or use break-glass with a reason"
    )
    other_patient = engine.decide(
        principal("patient/Observation.rs", patient="p2"), req("read", "Observation", "p1"), P1
    )
    assert other_patient.message.startswith("patient context mismatch: token is for patient p2")
    population = engine.decide(p, req("read", "Observation"), None)
    assert "researcher, system" in population.message


def test_break_glass_is_flagged_only_when_it_was_needed(engine, principal):
    needed = engine.decide(
        principal("user/Observation.rs", roles=["clinician"], act=DR2),
        req("read", "Observation", "p1", "cardiac arrest"),
        P1,
    )
    assert (needed.allowed, needed.break_glass) == (True, True)
    not_needed = engine.decide(
        principal("user/Observation.rs", roles=["clinician"], act=DR1),
        req("read", "Observation", "p1", "cardiac arrest"),
        P1,
    )
    assert (not_needed.allowed, not_needed.break_glass) == (True, False)
    # A context that allows without break-glass wins over one that needs it.
    both = engine.decide(
        principal(
            "user/Observation.rs patient/Observation.rs", roles=["clinician"], act=DR2, patient="p1"
        ),
        req("read", "Observation", "p1", "cardiac arrest"),
        P1,
    )
    assert (both.allowed, both.break_glass, both.scope_context) == (True, False, "patient")


def test_patient_scoped_search_is_narrowed_to_the_launch_patient(engine, principal):
    p = principal("patient/Observation.rs patient/Patient.rs patient/Practitioner.rs", patient="p1")
    observations = engine.decide(p, req("search", "Observation"), None)
    assert (observations.allowed, observations.required_patient) == (True, "p1")
    patients = engine.decide(p, req("search", "Patient"), None)
    assert (patients.allowed, patients.required_patient) == (True, "p1")
    practitioners = engine.decide(p, req("search", "Practitioner"), None)
    assert (practitioners.allowed, practitioners.required_patient) == (True, None)
    inside = engine.decide(p, req("search", "Observation", "p1"), P1)
    assert (inside.allowed, inside.required_patient) == (True, None)


def test_a_broader_context_needs_no_narrowing(engine, principal):
    p = principal("patient/Observation.rs user/Observation.rs", roles=["researcher"], patient="p1")
    decision = engine.decide(p, req("search", "Observation"), None)
    assert (decision.allowed, decision.required_patient, decision.scope_context) == (
        True,
        None,
        "user",
    )


@pytest.mark.parametrize(
    ("scopes", "filters"),
    [
        ("patient/Observation.rs?category=laboratory", (("category", "laboratory"),)),
        (
            "patient/Observation.rs?category=laboratory "
            "patient/Observation.rs?category=vital-signs",
            (("category", "laboratory"), ("category", "vital-signs")),
        ),
        ("patient/Observation.rs?category=laboratory patient/Observation.rs", ()),
        ("patient/Observation.rs?category=laboratory patient/*.rs", ()),
        (
            "patient/Observation.rs?category=laboratory&status=final",
            (("category", "laboratory"), ("status", "final")),
        ),
        (
            "patient/Observation.rs?category=laboratory patient/Observation.rs?category=laboratory",
            (("category", "laboratory"),),
        ),
        # filters of scopes that do not grant the interaction do not apply
        ("patient/Observation.rs patient/Observation.r?category=laboratory", ()),
    ],
)
def test_granular_filters(engine, principal, scopes, filters):
    decision = engine.decide(
        principal(scopes, patient="p1"), req("search", "Observation", "p1"), P1
    )
    assert decision.allowed, decision.message
    assert decision.granular_filters == filters


@pytest.mark.parametrize(
    "scopes",
    [
        "patient/Observation.rs?category=laboratory patient/Observation.rs?code=1234-5",
        "patient/Observation.rs?category=laboratory&status=final "
        "patient/Observation.rs?category=vital-signs&status=final",
    ],
)
def test_granular_scopes_that_cannot_be_combined_are_denied(engine, principal, scopes):
    decision = engine.decide(
        principal(scopes, patient="p1"), req("search", "Observation", "p1"), P1
    )
    assert (decision.allowed, decision.reason_code) == (False, "ambiguous_granular_scopes")
    assert "cannot be combined" in decision.message


def test_granular_filters_come_from_the_granting_context(engine, principal):
    p = principal(
        "user/Observation.rs?category=vital-signs patient/Observation.rs?category=laboratory",
        roles=["clinician"],
        act=DR2,
        patient="p1",
    )
    decision = engine.decide(p, req("read", "Observation", "p1"), P1)
    assert (decision.scope_context, decision.granular_filters) == (
        "patient",
        (("category", "laboratory"),),
    )
    # An ambiguous context gives way to one that can be applied.
    p = principal(
        "user/Observation.rs?category=a user/Observation.rs?code=b patient/Observation.rs",
        roles=["clinician"],
        act=DR1,
        patient="p1",
    )
    decision = engine.decide(p, req("read", "Observation", "p1"), P1)
    assert (decision.allowed, decision.scope_context, decision.granular_filters) == (
        True,
        "patient",
        (),
    )


def test_facts_for_another_patient_are_a_programming_error(engine, principal):
    with pytest.raises(ValueError, match="another patient"):
        engine.decide(principal("user/*.rs", roles=["clinician"]), req("read", "Patient", "p2"), P1)


def test_decisions_are_cached_and_equal(engine, principal):
    p = principal("user/Observation.rs", roles=["clinician"], act=DR1)
    first = engine.decide(p, req("read", "Observation", "p1"), P1)
    assert engine.decide(p, req("read", "Observation", "p1"), P1) is first
    changed = PatientFacts("p1", care_team=frozenset({DR2}))
    assert engine.decide(p, req("read", "Observation", "p1"), changed).reason_code == (
        "not_on_care_team"
    )
