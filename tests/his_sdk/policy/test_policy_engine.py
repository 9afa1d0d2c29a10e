"""Loading the policy: shipped files, overrides from the config, speed."""

from __future__ import annotations

import statistics
import time
from importlib import resources

import pytest
from polar.exceptions import OsoError

import his_sdk.policy
from his_sdk.adapter import PatientFacts
from his_sdk.config import PolicySettings, load_settings
from his_sdk.policy import AccessRequest, PolicyEngine, shipped_policy_files

P1 = PatientFacts("p1", care_team=frozenset({"Practitioner/dr1"}))

MAINTENANCE = """
# Every request is refused while the EHR is migrated.
decision(_who, _req, ["deny", "", "maintenance"]);
allow(who, req, [context, via, required]) if
    decision(who, req, result) and result = ["allow", context, via, required];
"""

CLERK_ROLES = """
role_permits("ward-clerk", "search", "Patient");
role_permits("ward-clerk", "read", "Patient");
role_permits("clinician", _action, _type);
patient_lookup_role("ward-clerk");
break_glass_role("clinician");
"""


def test_exports_are_pinned():
    assert set(his_sdk.policy.__all__) == {
        "REASON_CODES",
        "AccessRequest",
        "Decision",
        "PolicyEngine",
        "shipped_policy_files",
    }
    for name in his_sdk.policy.__all__:
        assert getattr(his_sdk.policy, name) is not None


def test_shipped_policy_is_package_data():
    shipped = {p.name for p in shipped_policy_files()}
    assert shipped == {"access.polar", "roles.polar"}
    folder = resources.files("his_sdk.policy") / "policies"
    assert all((folder / name).is_file() for name in shipped)
    assert PolicyEngine.from_settings(PolicySettings()).files == tuple(shipped_policy_files())


def test_policy_files_from_the_config_file_replace_the_shipped_policy(tmp_path, principal):
    policy = tmp_path / "maintenance.polar"
    policy.write_text(MAINTENANCE)
    config = tmp_path / "gateway.yaml"
    config.write_text(f"policy:\n  files:\n    - {policy}\n")
    engine = PolicyEngine.from_settings(load_settings(config).policy)
    assert engine.files == (policy,)
    decision = engine.decide(
        principal("user/*.cruds", roles=["clinician"], act="Practitioner/dr1"),
        AccessRequest("read", "Observation", "p1"),
        P1,
    )
    assert (decision.allowed, decision.reason_code) == (False, "maintenance")
    assert decision.message == "access denied by policy (maintenance)"


def test_a_hospital_can_replace_the_roles(tmp_path, principal):
    roles = tmp_path / "roles.polar"
    roles.write_text(CLERK_ROLES)
    access = next(p for p in shipped_policy_files() if p.name == "access.polar")
    engine = PolicyEngine.from_settings(PolicySettings(files=[access, roles]))
    clerk = principal("user/Patient.rs user/Observation.rs", roles=["ward-clerk"])
    assert engine.decide(clerk, AccessRequest("search", "Patient"), None).allowed
    denied = engine.decide(clerk, AccessRequest("read", "Observation", "p1"), P1)
    assert denied.reason_code == "role_not_permitted"
    nurse = principal("user/Observation.rs", roles=["nurse"], act="Practitioner/dr1")
    assert engine.decide(nurse, AccessRequest("read", "Observation", "p1"), P1).reason_code == (
        "role_not_permitted"
    )


def test_population_roles_come_from_the_settings(principal):
    engine = PolicyEngine.from_settings(PolicySettings(population_roles=["researcher"]))
    backend = principal("system/Observation.rs", roles=["system"])
    decision = engine.decide(backend, AccessRequest("search", "Observation"), None)
    assert decision.reason_code == "population_search_not_permitted"
    assert "researcher;" in decision.message
    assert engine.population_roles == ("researcher",)


def test_broken_policies_fail_at_startup(tmp_path):
    with pytest.raises(FileNotFoundError):
        PolicyEngine.from_settings(PolicySettings(files=[tmp_path / "missing.polar"]))
    broken = tmp_path / "broken.polar"
    broken.write_text("allow(actor, action, resource) if actor.")
    with pytest.raises(OsoError):
        PolicyEngine.from_settings(PolicySettings(files=[broken]))
    with pytest.raises(ValueError, match="no policy files"):
        PolicyEngine([], population_roles=[])


def test_a_decision_takes_well_under_a_millisecond(principal):
    engine = PolicyEngine(shipped_policy_files(), population_roles=["researcher"], cache_size=0)
    cases = [
        (
            principal("user/Observation.rs", roles=["clinician"], act="Practitioner/dr1"),
            AccessRequest("read", "Observation", "p1"),
            P1,
        ),
        (
            principal("user/Observation.rs", roles=["clinician"], act="Practitioner/dr2"),
            AccessRequest("read", "Observation", "p1", "emergency"),
            P1,
        ),
        (
            principal("user/Observation.rs", roles=["clinician"], act="Practitioner/dr2"),
            AccessRequest("read", "Observation", "p1"),
            P1,
        ),
        (
            principal("patient/Observation.rs", patient="p1"),
            AccessRequest("search", "Observation"),
            None,
        ),
        (
            principal("patient/Observation.rs", patient="p2"),
            AccessRequest("search", "Observation", "p1"),
            P1,
        ),
    ]
    for args in cases:
        engine.decide(*args)
    timings = []
    for _ in range(40):
        for args in cases:
            start = time.perf_counter()
            engine.decide(*args)
            timings.append(time.perf_counter() - start)
    assert statistics.median(timings) < 0.001

    cached = PolicyEngine.from_settings(PolicySettings())
    p, request, facts = cases[0]
    cached.decide(p, request, facts)
    start = time.perf_counter()
    for _ in range(1000):
        cached.decide(p, request, facts)
    assert (time.perf_counter() - start) / 1000 < 0.00005
