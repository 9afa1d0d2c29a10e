"""The approval queue: requests, versions, decisions and history.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the queue's tables."""
    op.create_table(
        "his_approval_requests",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("risk", sa.String(16), nullable=False),
        sa.Column("risk_rank", sa.Integer(), nullable=False),
        sa.Column("risk_reason", sa.Text(), nullable=False),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("reviewer_roles", sa.Text(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("interaction", sa.String(8), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("requester_client_id", sa.String(256), nullable=False),
        sa.Column("requester_subject", sa.String(256), nullable=False),
        sa.Column("requester_user", sa.String(256), nullable=True),
        sa.Column("requester_fhir_user", sa.String(256), nullable=True),
        sa.Column("requester_json", sa.Text(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("base_version_id", sa.String(64), nullable=True),
        sa.Column("current_json", sa.Text(), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("expires_at"),
        _when("decided_at", nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("claim_owner", sa.String(128), nullable=True),
        _when("claim_expires_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("executed_at", nullable=True),
        sa.Column("outcome_resource_type", sa.String(64), nullable=True),
        sa.Column("outcome_resource_id", sa.String(64), nullable=True),
        sa.Column("outcome_version_id", sa.String(64), nullable=True),
        sa.Column("outcome_message", sa.Text(), nullable=True),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("requester_client_id", "idempotency_key", name="uq_his_approval_key"),
    )
    op.create_index("ix_his_approval_created", "his_approval_requests", ["created_at", "id"])
    op.create_index(
        "ix_his_approval_status_claim", "his_approval_requests", ["status", "claim_expires_at"]
    )
    op.create_index(
        "ix_his_approval_status_expires", "his_approval_requests", ["status", "expires_at"]
    )
    op.create_index(
        "ix_his_approval_requests_requester_client_id",
        "his_approval_requests",
        ["requester_client_id"],
    )
    op.create_index(
        "ix_his_approval_requests_requester_user", "his_approval_requests", ["requester_user"]
    )
    op.create_index("ix_his_approval_requests_patient_id", "his_approval_requests", ["patient_id"])
    op.create_table(
        "his_approval_versions",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("resource_json", sa.Text(), nullable=True),
        sa.Column("diff_json", sa.Text(), nullable=True),
        sa.Column("author_json", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _when("created_at"),
        sa.ForeignKeyConstraint(["request_id"], ["his_approval_requests.id"]),
        sa.PrimaryKeyConstraint("request_id", "number"),
    )
    op.create_table(
        "his_approval_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("reviewer_json", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _when("decided_at"),
        sa.ForeignKeyConstraint(["request_id"], ["his_approval_requests.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "version", "reviewer", name="uq_his_approval_decision"),
    )
    op.create_index(
        "ix_his_approval_decisions_request_id", "his_approval_decisions", ["request_id"]
    )
    op.create_table(
        "his_approval_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor_json", sa.Text(), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        _when("at"),
        sa.ForeignKeyConstraint(["request_id"], ["his_approval_requests.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_his_approval_events_request_id", "his_approval_events", ["request_id"])


def downgrade() -> None:
    """Drop the queue's tables."""
    op.drop_index("ix_his_approval_events_request_id", table_name="his_approval_events")
    op.drop_table("his_approval_events")
    op.drop_index("ix_his_approval_decisions_request_id", table_name="his_approval_decisions")
    op.drop_table("his_approval_decisions")
    op.drop_table("his_approval_versions")
    for index in (
        "ix_his_approval_requests_patient_id",
        "ix_his_approval_requests_requester_user",
        "ix_his_approval_requests_requester_client_id",
        "ix_his_approval_status_expires",
        "ix_his_approval_status_claim",
        "ix_his_approval_created",
    ):
        op.drop_index(index, table_name="his_approval_requests")
    op.drop_table("his_approval_requests")
