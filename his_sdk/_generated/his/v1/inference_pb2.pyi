from his_sdk._generated.his.v1 import fhir_pb2 as _fhir_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_ROUTINE: _ClassVar[Priority]
    PRIORITY_STAT: _ClassVar[Priority]
PRIORITY_UNSPECIFIED: Priority
PRIORITY_ROUTINE: Priority
PRIORITY_STAT: Priority

class TensorSpec(_message.Message):
    __slots__ = ("name", "datatype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    datatype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., datatype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class Coding(_message.Message):
    __slots__ = ("system", "code", "display")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    system: str
    code: str
    display: str
    def __init__(self, system: _Optional[str] = ..., code: _Optional[str] = ..., display: _Optional[str] = ...) -> None: ...

class Feature(_message.Message):
    __slots__ = ("system", "code", "display", "unit")
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    system: str
    code: str
    display: str
    unit: str
    def __init__(self, system: _Optional[str] = ..., code: _Optional[str] = ..., display: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("description", "authors", "training_data", "intended_use", "validation_status", "license", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AUTHORS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_DATA_FIELD_NUMBER: _ClassVar[int]
    INTENDED_USE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_STATUS_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    description: str
    authors: _containers.RepeatedScalarFieldContainer[str]
    training_data: str
    intended_use: str
    validation_status: str
    license: str
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, description: _Optional[str] = ..., authors: _Optional[_Iterable[str]] = ..., training_data: _Optional[str] = ..., intended_use: _Optional[str] = ..., validation_status: _Optional[str] = ..., license: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class PlacementStatus(_message.Message):
    __slots__ = ("backend", "endpoint", "accelerator", "priority", "site", "region", "health", "circuit", "in_flight")
    class Health(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        HEALTH_UNKNOWN: _ClassVar[PlacementStatus.Health]
        HEALTH_READY: _ClassVar[PlacementStatus.Health]
        HEALTH_NOT_READY: _ClassVar[PlacementStatus.Health]
    HEALTH_UNKNOWN: PlacementStatus.Health
    HEALTH_READY: PlacementStatus.Health
    HEALTH_NOT_READY: PlacementStatus.Health
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    backend: str
    endpoint: str
    accelerator: str
    priority: int
    site: str
    region: str
    health: PlacementStatus.Health
    circuit: str
    in_flight: int
    def __init__(self, backend: _Optional[str] = ..., endpoint: _Optional[str] = ..., accelerator: _Optional[str] = ..., priority: _Optional[int] = ..., site: _Optional[str] = ..., region: _Optional[str] = ..., health: _Optional[_Union[PlacementStatus.Health, str]] = ..., circuit: _Optional[str] = ..., in_flight: _Optional[int] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "version", "task", "modality", "inputs", "outputs", "input_resource_types", "output_resource_type", "features", "result_code", "card", "placements", "has_case_library")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_RESOURCE_TYPES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    RESULT_CODE_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    HAS_CASE_LIBRARY_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    task: str
    modality: str
    inputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    input_resource_types: _containers.RepeatedScalarFieldContainer[str]
    output_resource_type: str
    features: _containers.RepeatedCompositeFieldContainer[Feature]
    result_code: Coding
    card: ModelCard
    placements: _containers.RepeatedCompositeFieldContainer[PlacementStatus]
    has_case_library: bool
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., task: _Optional[str] = ..., modality: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., input_resource_types: _Optional[_Iterable[str]] = ..., output_resource_type: _Optional[str] = ..., features: _Optional[_Iterable[_Union[Feature, _Mapping]]] = ..., result_code: _Optional[_Union[Coding, _Mapping]] = ..., card: _Optional[_Union[ModelCard, _Mapping]] = ..., placements: _Optional[_Iterable[_Union[PlacementStatus, _Mapping]]] = ..., has_case_library: _Optional[bool] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("task", "modality")
    TASK_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    task: str
    modality: str
    def __init__(self, task: _Optional[str] = ..., modality: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: Model
    def __init__(self, model: _Optional[_Union[Model, _Mapping]] = ...) -> None: ...

class RoutingPreferences(_message.Message):
    __slots__ = ("accelerators", "site")
    ACCELERATORS_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    accelerators: _containers.RepeatedScalarFieldContainer[str]
    site: str
    def __init__(self, accelerators: _Optional[_Iterable[str]] = ..., site: _Optional[str] = ...) -> None: ...

class InferRequest(_message.Message):
    __slots__ = ("model", "version", "patient_id", "inputs", "features", "priority", "routing")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    patient_id: str
    inputs: _containers.RepeatedCompositeFieldContainer[_fhir_pb2.Resource]
    features: _containers.ScalarMap[str, float]
    priority: Priority
    routing: RoutingPreferences
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., patient_id: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[_fhir_pb2.Resource, _Mapping]]] = ..., features: _Optional[_Mapping[str, float]] = ..., priority: _Optional[_Union[Priority, str]] = ..., routing: _Optional[_Union[RoutingPreferences, _Mapping]] = ...) -> None: ...

class InferenceProvenance(_message.Message):
    __slots__ = ("inference_id", "model", "version", "backend", "endpoint", "accelerator", "input_sha256", "attempts", "failed_placements", "latency_ms")
    INFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    inference_id: str
    model: str
    version: str
    backend: str
    endpoint: str
    accelerator: str
    input_sha256: str
    attempts: int
    failed_placements: _containers.RepeatedScalarFieldContainer[str]
    latency_ms: float
    def __init__(self, inference_id: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., backend: _Optional[str] = ..., endpoint: _Optional[str] = ..., accelerator: _Optional[str] = ..., input_sha256: _Optional[str] = ..., attempts: _Optional[int] = ..., failed_placements: _Optional[_Iterable[str]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class InferResponse(_message.Message):
    __slots__ = ("resources", "provenance", "prediction", "request_id")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[_fhir_pb2.Resource]
    provenance: InferenceProvenance
    prediction: float
    request_id: str
    def __init__(self, resources: _Optional[_Iterable[_Union[_fhir_pb2.Resource, _Mapping]]] = ..., provenance: _Optional[_Union[InferenceProvenance, _Mapping]] = ..., prediction: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class ConsultRequest(_message.Message):
    __slots__ = ("specialists", "patient_id", "inputs", "features", "top_k", "use_generalist", "priority", "routing")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SPECIALISTS_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    USE_GENERALIST_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    specialists: _containers.RepeatedScalarFieldContainer[str]
    patient_id: str
    inputs: _containers.RepeatedCompositeFieldContainer[_fhir_pb2.Resource]
    features: _containers.ScalarMap[str, float]
    top_k: int
    use_generalist: bool
    priority: Priority
    routing: RoutingPreferences
    def __init__(self, specialists: _Optional[_Iterable[str]] = ..., patient_id: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[_fhir_pb2.Resource, _Mapping]]] = ..., features: _Optional[_Mapping[str, float]] = ..., top_k: _Optional[int] = ..., use_generalist: _Optional[bool] = ..., priority: _Optional[_Union[Priority, str]] = ..., routing: _Optional[_Union[RoutingPreferences, _Mapping]] = ...) -> None: ...

class Neighbour(_message.Message):
    __slots__ = ("case_id", "similarity", "label", "value")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    similarity: float
    label: str
    value: float
    def __init__(self, case_id: _Optional[str] = ..., similarity: _Optional[float] = ..., label: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class SpecialistOpinion(_message.Message):
    __slots__ = ("model", "version", "prediction", "resources", "provenance", "neighbours")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    prediction: float
    resources: _containers.RepeatedCompositeFieldContainer[_fhir_pb2.Resource]
    provenance: InferenceProvenance
    neighbours: _containers.RepeatedCompositeFieldContainer[Neighbour]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., prediction: _Optional[float] = ..., resources: _Optional[_Iterable[_Union[_fhir_pb2.Resource, _Mapping]]] = ..., provenance: _Optional[_Union[InferenceProvenance, _Mapping]] = ..., neighbours: _Optional[_Iterable[_Union[Neighbour, _Mapping]]] = ...) -> None: ...

class GeneralistAnswer(_message.Message):
    __slots__ = ("model", "version", "prediction", "resources", "provenance")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    prediction: float
    resources: _containers.RepeatedCompositeFieldContainer[_fhir_pb2.Resource]
    provenance: InferenceProvenance
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., prediction: _Optional[float] = ..., resources: _Optional[_Iterable[_Union[_fhir_pb2.Resource, _Mapping]]] = ..., provenance: _Optional[_Union[InferenceProvenance, _Mapping]] = ...) -> None: ...

class ConsultResponse(_message.Message):
    __slots__ = ("opinions", "generalist", "bundle", "text", "request_id")
    OPINIONS_FIELD_NUMBER: _ClassVar[int]
    GENERALIST_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    opinions: _containers.RepeatedCompositeFieldContainer[SpecialistOpinion]
    generalist: GeneralistAnswer
    bundle: _fhir_pb2.Resource
    text: str
    request_id: str
    def __init__(self, opinions: _Optional[_Iterable[_Union[SpecialistOpinion, _Mapping]]] = ..., generalist: _Optional[_Union[GeneralistAnswer, _Mapping]] = ..., bundle: _Optional[_Union[_fhir_pb2.Resource, _Mapping]] = ..., text: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...
