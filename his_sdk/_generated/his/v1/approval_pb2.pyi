import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from his_sdk._generated.his.v1 import tools_pb2 as _tools_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApprovalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_STATUS_UNSPECIFIED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_PENDING: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_APPROVED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_REJECTED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_EXPIRED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_EXECUTED: _ClassVar[ApprovalStatus]
    APPROVAL_STATUS_FAILED: _ClassVar[ApprovalStatus]

class WriteInteraction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WRITE_INTERACTION_UNSPECIFIED: _ClassVar[WriteInteraction]
    WRITE_INTERACTION_CREATE: _ClassVar[WriteInteraction]
    WRITE_INTERACTION_UPDATE: _ClassVar[WriteInteraction]
    WRITE_INTERACTION_DELETE: _ClassVar[WriteInteraction]

class DecisionAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_ACTION_UNSPECIFIED: _ClassVar[DecisionAction]
    DECISION_ACTION_APPROVE: _ClassVar[DecisionAction]
    DECISION_ACTION_APPROVE_WITH_EDITS: _ClassVar[DecisionAction]
    DECISION_ACTION_REJECT: _ClassVar[DecisionAction]
APPROVAL_STATUS_UNSPECIFIED: ApprovalStatus
APPROVAL_STATUS_PENDING: ApprovalStatus
APPROVAL_STATUS_APPROVED: ApprovalStatus
APPROVAL_STATUS_REJECTED: ApprovalStatus
APPROVAL_STATUS_EXPIRED: ApprovalStatus
APPROVAL_STATUS_EXECUTED: ApprovalStatus
APPROVAL_STATUS_FAILED: ApprovalStatus
WRITE_INTERACTION_UNSPECIFIED: WriteInteraction
WRITE_INTERACTION_CREATE: WriteInteraction
WRITE_INTERACTION_UPDATE: WriteInteraction
WRITE_INTERACTION_DELETE: WriteInteraction
DECISION_ACTION_UNSPECIFIED: DecisionAction
DECISION_ACTION_APPROVE: DecisionAction
DECISION_ACTION_APPROVE_WITH_EDITS: DecisionAction
DECISION_ACTION_REJECT: DecisionAction

class Party(_message.Message):
    __slots__ = ("client_id", "subject", "user", "fhir_user", "display", "roles")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    FHIR_USER_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    subject: str
    user: str
    fhir_user: str
    display: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., subject: _Optional[str] = ..., user: _Optional[str] = ..., fhir_user: _Optional[str] = ..., display: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class RequestVersion(_message.Message):
    __slots__ = ("number", "resource_json", "diff_json", "author", "reason", "created_at")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    DIFF_JSON_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    number: int
    resource_json: bytes
    diff_json: bytes
    author: Party
    reason: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[int] = ..., resource_json: _Optional[bytes] = ..., diff_json: _Optional[bytes] = ..., author: _Optional[_Union[Party, _Mapping]] = ..., reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("action", "reviewer", "version", "reason", "decided_at")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    action: DecisionAction
    reviewer: Party
    version: int
    reason: str
    decided_at: _timestamp_pb2.Timestamp
    def __init__(self, action: _Optional[_Union[DecisionAction, str]] = ..., reviewer: _Optional[_Union[Party, _Mapping]] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RequestEvent(_message.Message):
    __slots__ = ("kind", "actor", "from_status", "to_status", "detail", "at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    FROM_STATUS_FIELD_NUMBER: _ClassVar[int]
    TO_STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    actor: Party
    from_status: ApprovalStatus
    to_status: ApprovalStatus
    detail: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[str] = ..., actor: _Optional[_Union[Party, _Mapping]] = ..., from_status: _Optional[_Union[ApprovalStatus, str]] = ..., to_status: _Optional[_Union[ApprovalStatus, str]] = ..., detail: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("resource_type", "resource_id", "version_id", "message", "error", "executed_at")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_AT_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    resource_id: str
    version_id: str
    message: str
    error: str
    executed_at: _timestamp_pb2.Timestamp
    def __init__(self, resource_type: _Optional[str] = ..., resource_id: _Optional[str] = ..., version_id: _Optional[str] = ..., message: _Optional[str] = ..., error: _Optional[str] = ..., executed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ApprovalRequest(_message.Message):
    __slots__ = ("id", "status", "risk", "risk_reason", "interaction", "resource_type", "resource_id", "patient_id", "requester", "justification", "idempotency_key", "current_version", "versions", "decisions", "approvals_required", "approvals_given", "reviewer_roles", "escalated", "created_at", "updated_at", "expires_at", "outcome", "history", "current_resource_json", "task_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    RISK_REASON_FIELD_NUMBER: _ClassVar[int]
    INTERACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_GIVEN_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_ROLES_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    TASK_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: ApprovalStatus
    risk: _tools_pb2.RiskLevel
    risk_reason: str
    interaction: WriteInteraction
    resource_type: str
    resource_id: str
    patient_id: str
    requester: Party
    justification: str
    idempotency_key: str
    current_version: int
    versions: _containers.RepeatedCompositeFieldContainer[RequestVersion]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    approvals_required: int
    approvals_given: int
    reviewer_roles: _containers.RepeatedScalarFieldContainer[str]
    escalated: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    outcome: Outcome
    history: _containers.RepeatedCompositeFieldContainer[RequestEvent]
    current_resource_json: bytes
    task_json: bytes
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[ApprovalStatus, str]] = ..., risk: _Optional[_Union[_tools_pb2.RiskLevel, str]] = ..., risk_reason: _Optional[str] = ..., interaction: _Optional[_Union[WriteInteraction, str]] = ..., resource_type: _Optional[str] = ..., resource_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., requester: _Optional[_Union[Party, _Mapping]] = ..., justification: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., current_version: _Optional[int] = ..., versions: _Optional[_Iterable[_Union[RequestVersion, _Mapping]]] = ..., decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., approvals_required: _Optional[int] = ..., approvals_given: _Optional[int] = ..., reviewer_roles: _Optional[_Iterable[str]] = ..., escalated: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[_Union[Outcome, _Mapping]] = ..., history: _Optional[_Iterable[_Union[RequestEvent, _Mapping]]] = ..., current_resource_json: _Optional[bytes] = ..., task_json: _Optional[bytes] = ...) -> None: ...

class ListRequestsRequest(_message.Message):
    __slots__ = ("statuses", "risks", "patient_id", "requester", "min_age", "max_age", "page_size", "page_token")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    RISKS_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    MIN_AGE_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[ApprovalStatus]
    risks: _containers.RepeatedScalarFieldContainer[_tools_pb2.RiskLevel]
    patient_id: str
    requester: str
    min_age: _duration_pb2.Duration
    max_age: _duration_pb2.Duration
    page_size: int
    page_token: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[ApprovalStatus, str]]] = ..., risks: _Optional[_Iterable[_Union[_tools_pb2.RiskLevel, str]]] = ..., patient_id: _Optional[str] = ..., requester: _Optional[str] = ..., min_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRequestsResponse(_message.Message):
    __slots__ = ("requests", "next_page_token")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ApprovalRequest]
    next_page_token: str
    def __init__(self, requests: _Optional[_Iterable[_Union[ApprovalRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetRequestRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("request_id", "action", "reason", "edited_resource_json", "version")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EDITED_RESOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    action: DecisionAction
    reason: str
    edited_resource_json: bytes
    version: int
    def __init__(self, request_id: _Optional[str] = ..., action: _Optional[_Union[DecisionAction, str]] = ..., reason: _Optional[str] = ..., edited_resource_json: _Optional[bytes] = ..., version: _Optional[int] = ...) -> None: ...

class ExtendRequest(_message.Message):
    __slots__ = ("request_id", "extend_by", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXTEND_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    extend_by: _duration_pb2.Duration
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., extend_by: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class EscalateRequest(_message.Message):
    __slots__ = ("request_id", "reason", "to_risk")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TO_RISK_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    to_risk: _tools_pb2.RiskLevel
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ..., to_risk: _Optional[_Union[_tools_pb2.RiskLevel, str]] = ...) -> None: ...
