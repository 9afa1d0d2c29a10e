"""Migrations on both databases, the models matching them, the risk policy and the diff."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from approval_service import (
    ApprovalPolicy,
    Database,
    ResourceFacts,
    RiskTier,
    current_revision,
    head_revision,
    migrate,
)
from approval_service._diff import json_patch
from approval_service._migrate import VERSION_TABLE
from approval_service._tables import APPROVAL_TABLES, METADATA
from tests.approval_service.conftest import medication_request


def test_migrations_reach_head_twice_and_match_the_models(db_url):
    database = Database(db_url)
    try:
        assert current_revision(database.engine) is None
        migrate(db_url)
        migrate(database.engine)
        assert current_revision(database.engine) == head_revision()
        tables = set(sa.inspect(database.engine).get_table_names())
        assert APPROVAL_TABLES | {VERSION_TABLE} <= tables
        with database.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            diff = [
                d for d in compare_metadata(context, METADATA) if _table_of(d) in APPROVAL_TABLES
            ]
        assert diff == []
    finally:
        database.dispose()


def _table_of(diff) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:] if isinstance(item, tuple) else []:
        name = getattr(part, "name", None) if not isinstance(part, str) else part
        table = getattr(part, "table", None)
        if table is not None:
            return table.name
        if isinstance(name, str) and name in APPROVAL_TABLES:
            return name
    return None


@pytest.fixture(scope="module")
def policy() -> ApprovalPolicy:
    return ApprovalPolicy()


@pytest.mark.parametrize(
    ("interaction", "resource", "tier"),
    [
        ("create", medication_request(), RiskTier.HIGH),
        ("create", {"resourceType": "Observation", "status": "final"}, RiskTier.MEDIUM),
        (
            "create",
            {
                "resourceType": "Observation",
                "interpretation": [{"coding": [{"code": "HH"}]}],
            },
            RiskTier.HIGH,
        ),
        ("create", {"resourceType": "Condition"}, RiskTier.MEDIUM),
        ("create", {"resourceType": "ServiceRequest", "priority": "routine"}, RiskTier.MEDIUM),
        ("create", {"resourceType": "ServiceRequest", "priority": "stat"}, RiskTier.HIGH),
        ("update", {"resourceType": "Task"}, RiskTier.LOW),
        ("delete", {"resourceType": "Task"}, RiskTier.HIGH),
        ("create", {"resourceType": "Basic"}, RiskTier.HIGH),
    ],
)
def test_risk_tiers_follow_type_interaction_and_content(policy, interaction, resource, tier):
    assessment = policy.assess(interaction, resource["resourceType"], resource)
    assert assessment.tier is tier
    assert assessment.approvals_required == (2 if tier is RiskTier.HIGH else 1)


def test_reviewer_roles_per_tier(policy):
    assert policy.permits(["clinician"], "approve", RiskTier.HIGH, "Condition")
    assert policy.permits(["pharmacist"], "approve", RiskTier.HIGH, "MedicationRequest")
    assert not policy.permits(["pharmacist"], "approve", RiskTier.MEDIUM, "Condition")
    assert policy.permits(["nurse"], "approve", RiskTier.MEDIUM, "Observation")
    assert not policy.permits(["nurse"], "approve", RiskTier.HIGH, "Observation")
    assert not policy.permits(["compliance"], "approve", RiskTier.LOW, "Task")
    assert policy.permits(["compliance"], "reject", RiskTier.HIGH, "MedicationRequest")
    assert policy.is_reviewer(["compliance"]) and not policy.is_reviewer(["researcher"])
    with pytest.raises(ValueError):
        policy.permits(["clinician"], "delete", RiskTier.LOW, "Task")


def test_a_hospital_policy_replaces_the_shipped_one_but_not_the_two_approver_floor(tmp_path):
    custom = tmp_path / "hospital.polar"
    custom.write_text(
        'risk(_i, _t, _r, "high", "everything is high here");\n'
        'approvals_required("high", 1);\n'
        'may("chief", _a, _tier, _type);\n'
        "allow(reviewer, action, request) if role in reviewer.roles and "
        "may(role, action, request.tier, request.resource_type);\n"
        'reviewer_role("chief");\n'
    )
    policy = ApprovalPolicy([custom])
    assessment = policy.assess("create", "Task", {})
    assert assessment.tier is RiskTier.HIGH and assessment.approvals_required == 2
    assert assessment.reviewer_roles == ("chief",)
    assert not policy.permits(["clinician"], "approve", RiskTier.HIGH, "Task")


def test_resource_facts_never_fail():
    facts = ResourceFacts({"code": {"coding": [{"system": "s", "code": "c"}]}, "a": [{"b": 1}]})
    assert facts.value("a.b") == "1" and facts.value("missing.path") == ""
    assert facts.has_code("code", "c") and facts.has_code("code", "s|c")
    assert not facts.has_code("code", "x|c") and not facts.has_code("nothing", "c")


def test_json_patch_of_an_edit():
    before = {"a": 1, "b": [1, 2, 3], "c": {"d": "x"}, "gone": True}
    after = {"a": 2, "b": [1, 5], "c": {"d": "x", "e": "y"}}
    assert json_patch(before, after) == [
        {"op": "remove", "path": "/gone"},
        {"op": "replace", "path": "/a", "value": 2},
        {"op": "replace", "path": "/b/1", "value": 5},
        {"op": "remove", "path": "/b/2"},
        {"op": "add", "path": "/c/e", "value": "y"},
    ]
    assert json_patch({"a/b": 1}, {"a/b": 2}) == [{"op": "replace", "path": "/a~1b", "value": 2}]
