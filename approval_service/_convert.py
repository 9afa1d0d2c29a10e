"""The one place where ApprovalService messages and the queue's values are converted."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

import his_sdk.errors
from his_sdk._generated.his.v1 import approval_pb2, tools_pb2
from his_sdk.adapter import Interaction

from ._model import (
    ApprovalRequest,
    DecisionAction,
    DecisionRecord,
    HistoryEvent,
    Outcome,
    Party,
    RequestQuery,
    RequestStatus,
    RequestVersion,
)
from ._policy import RiskTier

__all__ = [
    "action_from_proto",
    "action_to_proto",
    "duration_from_proto",
    "duration_to_proto",
    "query_from_proto",
    "query_to_proto",
    "request_from_proto",
    "request_to_proto",
    "risk_from_proto",
    "risk_to_proto",
    "status_from_proto",
    "status_to_proto",
]

_STATUS: dict[RequestStatus, approval_pb2.ApprovalStatus] = {
    RequestStatus.PENDING: approval_pb2.APPROVAL_STATUS_PENDING,
    RequestStatus.APPROVED: approval_pb2.APPROVAL_STATUS_APPROVED,
    RequestStatus.REJECTED: approval_pb2.APPROVAL_STATUS_REJECTED,
    RequestStatus.EXPIRED: approval_pb2.APPROVAL_STATUS_EXPIRED,
    RequestStatus.EXECUTED: approval_pb2.APPROVAL_STATUS_EXECUTED,
    RequestStatus.FAILED: approval_pb2.APPROVAL_STATUS_FAILED,
}
_RISK: dict[RiskTier, tools_pb2.RiskLevel] = {
    RiskTier.LOW: tools_pb2.RISK_LEVEL_LOW,
    RiskTier.MEDIUM: tools_pb2.RISK_LEVEL_MEDIUM,
    RiskTier.HIGH: tools_pb2.RISK_LEVEL_HIGH,
}
_ACTION: dict[DecisionAction, approval_pb2.DecisionAction] = {
    DecisionAction.APPROVE: approval_pb2.DECISION_ACTION_APPROVE,
    DecisionAction.APPROVE_WITH_EDITS: approval_pb2.DECISION_ACTION_APPROVE_WITH_EDITS,
    DecisionAction.REJECT: approval_pb2.DECISION_ACTION_REJECT,
}
_INTERACTION: dict[Interaction, approval_pb2.WriteInteraction] = {
    Interaction.CREATE: approval_pb2.WRITE_INTERACTION_CREATE,
    Interaction.UPDATE: approval_pb2.WRITE_INTERACTION_UPDATE,
    Interaction.DELETE: approval_pb2.WRITE_INTERACTION_DELETE,
}


def _reverse(table: Mapping[Any, int], value: int, name: str) -> Any:
    for key, number in table.items():
        if number == value:
            return key
    raise his_sdk.errors.InvalidRequestError(f"{name} is missing or unknown", expression=[name])


def status_to_proto(status: RequestStatus) -> approval_pb2.ApprovalStatus:
    """A request status as the proto enum."""
    return _STATUS[status]


def status_from_proto(value: int) -> RequestStatus:
    """The proto enum as a request status."""
    status: RequestStatus = _reverse(_STATUS, value, "status")
    return status


def risk_to_proto(tier: RiskTier) -> tools_pb2.RiskLevel:
    """A risk tier as ``his.v1.RiskLevel``."""
    return _RISK[tier]


def risk_from_proto(value: int) -> RiskTier:
    """``his.v1.RiskLevel`` as a risk tier."""
    tier: RiskTier = _reverse(_RISK, value, "risk")
    return tier


def action_to_proto(action: DecisionAction) -> approval_pb2.DecisionAction:
    """A decision action as the proto enum."""
    return _ACTION[action]


def action_from_proto(value: int) -> DecisionAction:
    """The proto enum as a decision action."""
    action: DecisionAction = _reverse(_ACTION, value, "action")
    return action


def _timestamp(value: datetime.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(datetime.UTC))
    return stamp


def duration_to_proto(value: datetime.timedelta | None) -> Duration | None:
    """A timedelta as a proto Duration (None stays None)."""
    if value is None:
        return None
    duration = Duration()
    duration.FromTimedelta(value)
    return duration


def duration_from_proto(value: Duration) -> datetime.timedelta | None:
    """A proto Duration as a timedelta; zero means none."""
    delta = value.ToTimedelta()
    return delta if delta > datetime.timedelta(0) else None


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _party(party: Party) -> approval_pb2.Party:
    return approval_pb2.Party(
        client_id=party.client_id,
        subject=party.subject,
        user=party.user or "",
        fhir_user=party.fhir_user or "",
        display=party.display or "",
        roles=list(party.roles),
    )


def _version(version: RequestVersion) -> approval_pb2.RequestVersion:
    return approval_pb2.RequestVersion(
        number=version.number,
        resource_json=_json(version.resource) if version.resource is not None else b"",
        diff_json=_json(version.diff) if version.diff else b"",
        author=_party(version.author),
        reason=version.reason or "",
        created_at=_timestamp(version.created_at),
    )


def _decision(decision: DecisionRecord) -> approval_pb2.Decision:
    return approval_pb2.Decision(
        action=action_to_proto(decision.action),
        reviewer=_party(decision.reviewer),
        version=decision.version,
        reason=decision.reason or "",
        decided_at=_timestamp(decision.decided_at),
    )


def _event(event: HistoryEvent) -> approval_pb2.RequestEvent:
    return approval_pb2.RequestEvent(
        kind=event.kind,
        actor=_party(event.actor),
        from_status=status_to_proto(event.from_status) if event.from_status else None,
        to_status=status_to_proto(event.to_status) if event.to_status else None,
        detail=event.detail or "",
        at=_timestamp(event.at),
    )


def _outcome(outcome: Outcome | None) -> approval_pb2.Outcome | None:
    if outcome is None:
        return None
    return approval_pb2.Outcome(
        resource_type=outcome.resource_type or "",
        resource_id=outcome.resource_id or "",
        version_id=outcome.version_id or "",
        message=outcome.message or "",
        error=outcome.error or "",
        executed_at=_timestamp(outcome.executed_at),
    )


def request_to_proto(request: ApprovalRequest) -> approval_pb2.ApprovalRequest:
    """A request as the ``ApprovalRequest`` message."""
    return approval_pb2.ApprovalRequest(
        id=request.id,
        status=status_to_proto(request.status),
        risk=risk_to_proto(request.risk),
        risk_reason=request.risk_reason,
        interaction=_INTERACTION[request.interaction],
        resource_type=request.resource_type,
        resource_id=request.resource_id or "",
        patient_id=request.patient_id or "",
        requester=_party(request.requester),
        justification=request.justification,
        idempotency_key=request.idempotency_key,
        current_version=request.current_version,
        versions=[_version(v) for v in request.versions],
        decisions=[_decision(d) for d in request.decisions],
        approvals_required=request.approvals_required,
        approvals_given=request.approvals_given,
        reviewer_roles=list(request.reviewer_roles),
        escalated=request.escalated,
        created_at=_timestamp(request.created_at),
        updated_at=_timestamp(request.updated_at),
        expires_at=_timestamp(request.expires_at),
        outcome=_outcome(request.outcome),
        history=[_event(e) for e in request.history],
        current_resource_json=(
            _json(request.current_resource) if request.current_resource is not None else b""
        ),
        task_json=_json(request.task_data),
    )


def query_from_proto(message: approval_pb2.ListRequestsRequest) -> RequestQuery:
    """A list call's filters and paging."""
    if message.page_size < 0:
        raise his_sdk.errors.InvalidRequestError(
            "page size must not be negative", expression=["page_size"]
        )
    return RequestQuery(
        statuses=tuple(status_from_proto(s) for s in message.statuses),
        risks=tuple(risk_from_proto(r) for r in message.risks),
        patient_id=message.patient_id or None,
        requester=message.requester or None,
        min_age=duration_from_proto(message.min_age),
        max_age=duration_from_proto(message.max_age),
        page_size=message.page_size or None,
        page_token=message.page_token or None,
    )


def query_to_proto(query: RequestQuery) -> approval_pb2.ListRequestsRequest:
    """A list call's filters and paging as the request message."""
    return approval_pb2.ListRequestsRequest(
        statuses=[status_to_proto(s) for s in query.statuses],
        risks=[risk_to_proto(r) for r in query.risks],
        patient_id=query.patient_id or "",
        requester=query.requester or "",
        min_age=duration_to_proto(query.min_age),
        max_age=duration_to_proto(query.max_age),
        page_size=query.page_size or 0,
        page_token=query.page_token or "",
    )


def _datetime(value: Timestamp, present: bool = True) -> datetime.datetime | None:
    if not present:
        return None
    return value.ToDatetime(tzinfo=datetime.UTC)


def _required_datetime(value: Timestamp) -> datetime.datetime:
    return value.ToDatetime(tzinfo=datetime.UTC)


def _party_from(message: approval_pb2.Party) -> Party:
    return Party(
        client_id=message.client_id,
        subject=message.subject,
        user=message.user or None,
        fhir_user=message.fhir_user or None,
        display=message.display or None,
        roles=tuple(message.roles),
    )


def _loads(payload: bytes) -> Any:
    return json.loads(payload) if payload else None


def request_from_proto(message: approval_pb2.ApprovalRequest) -> ApprovalRequest:
    """An ``ApprovalRequest`` message as the queue's value (what the reviewer client returns)."""
    outcome = None
    if message.HasField("outcome"):
        o = message.outcome
        outcome = Outcome(
            resource_type=o.resource_type or None,
            resource_id=o.resource_id or None,
            version_id=o.version_id or None,
            message=o.message or None,
            error=o.error or None,
            executed_at=_datetime(o.executed_at, o.HasField("executed_at")),
        )
    interaction: Interaction = _reverse(_INTERACTION, message.interaction, "interaction")
    return ApprovalRequest(
        id=message.id,
        status=status_from_proto(message.status),
        risk=risk_from_proto(message.risk),
        risk_reason=message.risk_reason,
        interaction=interaction,
        resource_type=message.resource_type,
        resource_id=message.resource_id or None,
        patient_id=message.patient_id or None,
        requester=_party_from(message.requester),
        justification=message.justification,
        idempotency_key=message.idempotency_key,
        current_version=message.current_version,
        approvals_required=message.approvals_required,
        approvals_given=message.approvals_given,
        reviewer_roles=tuple(message.reviewer_roles),
        escalated=message.escalated,
        created_at=_required_datetime(message.created_at),
        updated_at=_required_datetime(message.updated_at),
        expires_at=_required_datetime(message.expires_at),
        status_reason=_status_reason(message.task_json),
        revision=_revision(message.task_json),
        outcome=outcome,
        proposed=_proposed(message),
        current_resource=_loads(message.current_resource_json),
        task_data=_task_data(message.task_json),
        versions=tuple(
            RequestVersion(
                number=v.number,
                resource=_loads(v.resource_json),
                diff=_loads(v.diff_json) or [],
                author=_party_from(v.author),
                reason=v.reason or None,
                created_at=_required_datetime(v.created_at),
            )
            for v in message.versions
        ),
        decisions=tuple(
            DecisionRecord(
                action=action_from_proto(d.action),
                reviewer=_party_from(d.reviewer),
                version=d.version,
                reason=d.reason or None,
                decided_at=_required_datetime(d.decided_at),
            )
            for d in message.decisions
        ),
        history=tuple(
            HistoryEvent(
                kind=e.kind,
                actor=_party_from(e.actor),
                from_status=status_from_proto(e.from_status) if e.from_status else None,
                to_status=status_from_proto(e.to_status) if e.to_status else None,
                detail=e.detail or None,
                at=_required_datetime(e.at),
            )
            for e in message.history
        ),
    )


def _task_data(task_json: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(task_json)
    return data


def _status_reason(task_json: bytes) -> str | None:
    reason = _task_data(task_json).get("statusReason") or {}
    text = reason.get("text")
    return str(text) if text else None


def _revision(task_json: bytes) -> int:
    return int((_task_data(task_json).get("meta") or {}).get("versionId") or 0)


def _proposed(message: approval_pb2.ApprovalRequest) -> dict[str, Any] | None:
    for version in message.versions:
        if version.number == message.current_version and version.resource_json:
            data: dict[str, Any] = json.loads(version.resource_json)
            return data
    if message.interaction == approval_pb2.WRITE_INTERACTION_DELETE:
        return None
    contained = _task_data(message.task_json).get("contained") or []
    return dict(contained[0]) if contained else None
