"""The queue's SQLModel tables: requests, their versions, decisions and history.

The schema is created and upgraded only by the Alembic migrations shipped in
``approval_service/migrations`` (:func:`approval_service.migrate`); these classes describe it to
the code and to ``alembic revision --autogenerate``.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

__all__ = [
    "METADATA",
    "DecisionRow",
    "EventRow",
    "RequestRow",
    "UtcDateTime",
    "VersionRow",
]


class UtcDateTime(sa.types.TypeDecorator[datetime.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        """Convert to UTC; naive values are refused rather than guessed."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        utc = value.astimezone(datetime.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        """Attach UTC to naive values read back from SQLite."""
        if value is None:
            return None
        return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value


def _when(*, nullable: bool = False, index: bool = False) -> sa.Column[datetime.datetime]:
    return sa.Column(UtcDateTime(), nullable=nullable, index=index)


class RequestRow(SQLModel, table=True):
    """One approval request: the proposed write, its state and, once run, its outcome."""

    __tablename__ = "his_approval_requests"
    __table_args__ = (
        sa.UniqueConstraint("requester_client_id", "idempotency_key", name="uq_his_approval_key"),
        sa.Index("ix_his_approval_status_expires", "status", "expires_at"),
        sa.Index("ix_his_approval_status_claim", "status", "claim_expires_at"),
        sa.Index("ix_his_approval_created", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=16)
    risk: str = Field(max_length=16)
    risk_rank: int
    risk_reason: str = Field(sa_type=sa.Text)
    approvals_required: int
    reviewer_roles: str = Field(sa_type=sa.Text)
    """JSON list of the roles that may approve at the current tier."""
    escalated: bool = False
    interaction: str = Field(max_length=8)
    resource_type: str = Field(max_length=64)
    resource_id: str | None = Field(default=None, max_length=64)
    patient_id: str | None = Field(default=None, max_length=64, index=True)
    requester_client_id: str = Field(max_length=256, index=True)
    requester_subject: str = Field(max_length=256)
    requester_user: str | None = Field(default=None, max_length=256, index=True)
    requester_fhir_user: str | None = Field(default=None, max_length=256)
    requester_json: str = Field(sa_type=sa.Text)
    """The requester as the audit trail records it (issuer, token id, user, roles, purpose)."""
    justification: str = Field(sa_type=sa.Text)
    idempotency_key: str = Field(max_length=256)
    payload_hash: str = Field(max_length=64)
    request_id: str = Field(max_length=128)
    """The proposing call's ``x-request-id``."""
    current_version: int = 1
    base_version_id: str | None = Field(default=None, max_length=64)
    """The EHR's version of the target when the write was proposed (update, delete)."""
    current_json: str | None = Field(default=None, sa_type=sa.Text)
    """The EHR's target resource when the write was proposed (update, delete)."""
    created_at: datetime.datetime = Field(sa_column=_when())
    updated_at: datetime.datetime = Field(sa_column=_when())
    expires_at: datetime.datetime = Field(sa_column=_when())
    decided_at: datetime.datetime | None = Field(default=None, sa_column=_when(nullable=True))
    status_reason: str | None = Field(default=None, sa_type=sa.Text)
    revision: int = 1
    """Bumped by every change, so watchers and caches notice it."""
    claim_owner: str | None = Field(default=None, max_length=128)
    claim_expires_at: datetime.datetime | None = Field(default=None, sa_column=_when(nullable=True))
    attempts: int = 0
    executed_at: datetime.datetime | None = Field(default=None, sa_column=_when(nullable=True))
    outcome_resource_type: str | None = Field(default=None, max_length=64)
    outcome_resource_id: str | None = Field(default=None, max_length=64)
    outcome_version_id: str | None = Field(default=None, max_length=64)
    outcome_message: str | None = Field(default=None, sa_type=sa.Text)
    error_text: str | None = Field(default=None, sa_type=sa.Text)


class VersionRow(SQLModel, table=True):
    """One version of the proposed resource; an edit by a reviewer adds one."""

    __tablename__ = "his_approval_versions"

    request_id: str = Field(primary_key=True, max_length=64, foreign_key="his_approval_requests.id")
    number: int = Field(primary_key=True)
    resource_json: str | None = Field(default=None, sa_type=sa.Text)
    """The proposed resource (None for a delete)."""
    diff_json: str | None = Field(default=None, sa_type=sa.Text)
    """JSON Patch (RFC 6902) from the previous version."""
    author_json: str = Field(sa_type=sa.Text)
    reason: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime.datetime = Field(sa_column=_when())


class DecisionRow(SQLModel, table=True):
    """A reviewer's decision on one version."""

    __tablename__ = "his_approval_decisions"
    __table_args__ = (
        sa.UniqueConstraint("request_id", "version", "reviewer", name="uq_his_approval_decision"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=64, foreign_key="his_approval_requests.id", index=True)
    version: int
    action: str = Field(max_length=24)
    reviewer: str = Field(max_length=256)
    """The deciding human (their subject): distinct approvers are counted by it."""
    reviewer_json: str = Field(sa_type=sa.Text)
    reason: str | None = Field(default=None, sa_type=sa.Text)
    decided_at: datetime.datetime = Field(sa_column=_when())


class EventRow(SQLModel, table=True):
    """One entry of a request's history."""

    __tablename__ = "his_approval_events"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=64, foreign_key="his_approval_requests.id", index=True)
    kind: str = Field(max_length=32)
    actor_json: str = Field(sa_type=sa.Text)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    detail: str | None = Field(default=None, sa_type=sa.Text)
    at: datetime.datetime = Field(sa_column=_when())


METADATA = SQLModel.metadata
"""The metadata holding the queue's tables (shared with any other SQLModel table)."""
APPROVAL_TABLES = frozenset(
    {
        RequestRow.__tablename__,
        VersionRow.__tablename__,
        DecisionRow.__tablename__,
        EventRow.__tablename__,
    }
)
"""Names of the tables the queue's migrations own."""
