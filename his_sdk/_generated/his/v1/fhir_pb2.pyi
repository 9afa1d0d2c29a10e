from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SummaryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUMMARY_MODE_UNSPECIFIED: _ClassVar[SummaryMode]
    SUMMARY_MODE_TRUE: _ClassVar[SummaryMode]
    SUMMARY_MODE_TEXT: _ClassVar[SummaryMode]
    SUMMARY_MODE_DATA: _ClassVar[SummaryMode]
    SUMMARY_MODE_COUNT: _ClassVar[SummaryMode]
SUMMARY_MODE_UNSPECIFIED: SummaryMode
SUMMARY_MODE_TRUE: SummaryMode
SUMMARY_MODE_TEXT: SummaryMode
SUMMARY_MODE_DATA: SummaryMode
SUMMARY_MODE_COUNT: SummaryMode

class Resource(_message.Message):
    __slots__ = ("resource_type", "id", "version_id", "json")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    id: str
    version_id: str
    json: bytes
    def __init__(self, resource_type: _Optional[str] = ..., id: _Optional[str] = ..., version_id: _Optional[str] = ..., json: _Optional[bytes] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("resource_type", "id", "elements", "summary")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    id: str
    elements: _containers.RepeatedScalarFieldContainer[str]
    summary: SummaryMode
    def __init__(self, resource_type: _Optional[str] = ..., id: _Optional[str] = ..., elements: _Optional[_Iterable[str]] = ..., summary: _Optional[_Union[SummaryMode, str]] = ...) -> None: ...

class ReadResponse(_message.Message):
    __slots__ = ("resource",)
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    resource: Resource
    def __init__(self, resource: _Optional[_Union[Resource, _Mapping]] = ...) -> None: ...

class SearchParameter(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("resource_type", "parameters", "count", "cursor", "elements", "summary", "include_total")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    parameters: _containers.RepeatedCompositeFieldContainer[SearchParameter]
    count: int
    cursor: str
    elements: _containers.RepeatedScalarFieldContainer[str]
    summary: SummaryMode
    include_total: bool
    def __init__(self, resource_type: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[SearchParameter, _Mapping]]] = ..., count: _Optional[int] = ..., cursor: _Optional[str] = ..., elements: _Optional[_Iterable[str]] = ..., summary: _Optional[_Union[SummaryMode, str]] = ..., include_total: _Optional[bool] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("resources", "next_cursor", "total")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[Resource]
    next_cursor: str
    total: int
    def __init__(self, resources: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ..., next_cursor: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class CapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CapabilitiesResponse(_message.Message):
    __slots__ = ("capability_statement_json",)
    CAPABILITY_STATEMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    capability_statement_json: bytes
    def __init__(self, capability_statement_json: _Optional[bytes] = ...) -> None: ...

class CreateRequest(_message.Message):
    __slots__ = ("resource_type", "json", "justification", "idempotency_key")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    json: bytes
    justification: str
    idempotency_key: str
    def __init__(self, resource_type: _Optional[str] = ..., json: _Optional[bytes] = ..., justification: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("resource_type", "id", "json", "justification", "idempotency_key")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    id: str
    json: bytes
    justification: str
    idempotency_key: str
    def __init__(self, resource_type: _Optional[str] = ..., id: _Optional[str] = ..., json: _Optional[bytes] = ..., justification: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("resource_type", "id", "justification", "idempotency_key")
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    resource_type: str
    id: str
    justification: str
    idempotency_key: str
    def __init__(self, resource_type: _Optional[str] = ..., id: _Optional[str] = ..., justification: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class WriteResponse(_message.Message):
    __slots__ = ("task", "replayed")
    TASK_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    task: Resource
    replayed: bool
    def __init__(self, task: _Optional[_Union[Resource, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchTaskRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class TaskResponse(_message.Message):
    __slots__ = ("task", "terminal")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    task: Resource
    terminal: bool
    def __init__(self, task: _Optional[_Union[Resource, _Mapping]] = ..., terminal: _Optional[bool] = ...) -> None: ...
