from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RiskLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_LEVEL_UNSPECIFIED: _ClassVar[RiskLevel]
    RISK_LEVEL_LOW: _ClassVar[RiskLevel]
    RISK_LEVEL_MEDIUM: _ClassVar[RiskLevel]
    RISK_LEVEL_HIGH: _ClassVar[RiskLevel]

class ValidationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALIDATION_STATUS_UNSPECIFIED: _ClassVar[ValidationStatus]
    VALIDATION_STATUS_VALIDATED: _ClassVar[ValidationStatus]
    VALIDATION_STATUS_EXPERIMENTAL: _ClassVar[ValidationStatus]
    VALIDATION_STATUS_DEPRECATED: _ClassVar[ValidationStatus]
RISK_LEVEL_UNSPECIFIED: RiskLevel
RISK_LEVEL_LOW: RiskLevel
RISK_LEVEL_MEDIUM: RiskLevel
RISK_LEVEL_HIGH: RiskLevel
VALIDATION_STATUS_UNSPECIFIED: ValidationStatus
VALIDATION_STATUS_VALIDATED: ValidationStatus
VALIDATION_STATUS_EXPERIMENTAL: ValidationStatus
VALIDATION_STATUS_DEPRECATED: ValidationStatus

class Provenance(_message.Message):
    __slots__ = ("owner", "version", "source", "licence")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LICENCE_FIELD_NUMBER: _ClassVar[int]
    owner: str
    version: str
    source: str
    licence: str
    def __init__(self, owner: _Optional[str] = ..., version: _Optional[str] = ..., source: _Optional[str] = ..., licence: _Optional[str] = ...) -> None: ...

class Validation(_message.Message):
    __slots__ = ("status", "evidence")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    status: ValidationStatus
    evidence: str
    def __init__(self, status: _Optional[_Union[ValidationStatus, str]] = ..., evidence: _Optional[str] = ...) -> None: ...

class RequiredPermission(_message.Message):
    __slots__ = ("smart_scope", "oso_permission")
    SMART_SCOPE_FIELD_NUMBER: _ClassVar[int]
    OSO_PERMISSION_FIELD_NUMBER: _ClassVar[int]
    smart_scope: str
    oso_permission: str
    def __init__(self, smart_scope: _Optional[str] = ..., oso_permission: _Optional[str] = ...) -> None: ...

class ToolAnnotations(_message.Message):
    __slots__ = ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint")
    READ_ONLY_HINT_FIELD_NUMBER: _ClassVar[int]
    DESTRUCTIVE_HINT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_HINT_FIELD_NUMBER: _ClassVar[int]
    OPEN_WORLD_HINT_FIELD_NUMBER: _ClassVar[int]
    read_only_hint: bool
    destructive_hint: bool
    idempotent_hint: bool
    open_world_hint: bool
    def __init__(self, read_only_hint: _Optional[bool] = ..., destructive_hint: _Optional[bool] = ..., idempotent_hint: _Optional[bool] = ..., open_world_hint: _Optional[bool] = ...) -> None: ...

class ToolDescriptor(_message.Message):
    __slots__ = ("name", "title", "description", "category", "input_schema_json", "output_schema_json", "provenance", "validation", "risk", "permission", "annotations")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    title: str
    description: str
    category: str
    input_schema_json: str
    output_schema_json: str
    provenance: Provenance
    validation: Validation
    risk: RiskLevel
    permission: RequiredPermission
    annotations: ToolAnnotations
    def __init__(self, name: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[str] = ..., input_schema_json: _Optional[str] = ..., output_schema_json: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., validation: _Optional[_Union[Validation, _Mapping]] = ..., risk: _Optional[_Union[RiskLevel, str]] = ..., permission: _Optional[_Union[RequiredPermission, _Mapping]] = ..., annotations: _Optional[_Union[ToolAnnotations, _Mapping]] = ...) -> None: ...

class ListToolsRequest(_message.Message):
    __slots__ = ("max_risk", "category", "validation_status", "invocable_only")
    MAX_RISK_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_STATUS_FIELD_NUMBER: _ClassVar[int]
    INVOCABLE_ONLY_FIELD_NUMBER: _ClassVar[int]
    max_risk: RiskLevel
    category: str
    validation_status: ValidationStatus
    invocable_only: bool
    def __init__(self, max_risk: _Optional[_Union[RiskLevel, str]] = ..., category: _Optional[str] = ..., validation_status: _Optional[_Union[ValidationStatus, str]] = ..., invocable_only: _Optional[bool] = ...) -> None: ...

class ListToolsResponse(_message.Message):
    __slots__ = ("tools",)
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[ToolDescriptor]
    def __init__(self, tools: _Optional[_Iterable[_Union[ToolDescriptor, _Mapping]]] = ...) -> None: ...

class GetToolRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class InvokeToolRequest(_message.Message):
    __slots__ = ("name", "arguments_json", "justification", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments_json: str
    justification: str
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., arguments_json: _Optional[str] = ..., justification: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class InvokeToolResponse(_message.Message):
    __slots__ = ("result_json", "task_json")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    TASK_JSON_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    task_json: bytes
    def __init__(self, result_json: _Optional[str] = ..., task_json: _Optional[bytes] = ...) -> None: ...
