"""The human approval queue for agent-proposed writes.

:class:`ApprovalService` is the one service object: the gateway loads it from
``approvals.implementation`` as its :class:`his_sdk.server.WriteQueue`, the gRPC
:class:`ApprovalServicer` and ``his approvals ...`` (:data:`approvals`, a click group) reach it
over the wire, and a reviewer console calls it directly. Tables are SQLModel classes migrated by
Alembic (:func:`migrate`); risk tiers and reviewer roles are an Oso policy
(:class:`ApprovalPolicy`, ``policies/approval.polar``).
"""

from ._cli import approvals
from ._client import ApprovalClient, AsyncApprovalClient
from ._db import Database
from ._migrate import current_revision, head_revision, migrate
from ._model import (
    ApprovalRequest,
    DecisionAction,
    DecisionRecord,
    HistoryEvent,
    Outcome,
    Party,
    RequestPage,
    RequestQuery,
    RequestStatus,
    RequestVersion,
)
from ._policy import ApprovalPolicy, ResourceFacts, RiskAssessment, RiskTier
from ._service import ApprovalService
from ._servicer import ApprovalServicer
from ._task import build_task

__all__ = [
    "ApprovalClient",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ApprovalService",
    "ApprovalServicer",
    "AsyncApprovalClient",
    "Database",
    "DecisionAction",
    "DecisionRecord",
    "HistoryEvent",
    "Outcome",
    "Party",
    "RequestPage",
    "RequestQuery",
    "RequestStatus",
    "RequestVersion",
    "ResourceFacts",
    "RiskAssessment",
    "RiskTier",
    "approvals",
    "build_task",
    "current_revision",
    "head_revision",
    "migrate",
]
