"""The inference bridge: catalog models on Triton and local torch, answered in FHIR.

:class:`InferenceBridge` is the transport-neutral core: it authorizes a model run with the
gateway's policy, turns FHIR inputs into de-identified tensors, routes them to a healthy
placement (Triton or any KServe v2 gRPC server through :class:`TritonBackend`, or in process
through :class:`TorchBackend`) with failover, circuit breakers and one deadline, and answers
with FHIR results, the model's Device and a Provenance. :meth:`InferenceBridge.consult` runs
specialists in parallel and retrieves similar confirmed cases from each specialist's
:class:`CaseLibrary`. :class:`InferenceServicer` serves it over gRPC; :data:`models` is the
``his models`` command group.
"""

from inference_bridge._audit import InferenceAuditRecord, InferenceAuditSink, InferenceOutcome
from inference_bridge._backend import (
    BackendCall,
    BackendCallError,
    InferenceBackend,
    PlacementHealth,
)
from inference_bridge._bridge import (
    ConsultRequest,
    ConsultResult,
    InferenceBridge,
    InferenceProvenance,
    InferenceRequest,
    InferenceResult,
    ModelView,
    Priority,
    SpecialistOpinion,
    render_consult,
)
from inference_bridge._cases import CaseLibrary, Neighbour
from inference_bridge._catalog import (
    SHIPPED_CATALOG,
    Backend,
    Catalog,
    Coding,
    FeatureSpec,
    FhirMapping,
    ModelCard,
    ModelEntry,
    Placement,
    TensorSpec,
    TorchSpec,
)
from inference_bridge._cli import models
from inference_bridge._errors import (
    BackendRejectedError,
    InputTooLargeError,
    ModelNotFoundError,
    NoPlacementAvailableError,
)
from inference_bridge._gateway import GatewayInference, gateway_extension
from inference_bridge._processors import (
    CodedFeatures,
    ConsultContext,
    ConsultFeatures,
    DiagnosticReportResult,
    ModelInputs,
    ObservationResult,
    Postprocessor,
    Preprocessor,
    ResultContext,
    RiskAssessmentResult,
    SpecialistFinding,
)
from inference_bridge._routing import (
    BreakerState,
    CircuitBreaker,
    PlacementStatus,
    RoutedResult,
    Router,
    RoutingPreferences,
)
from inference_bridge._servicer import INFERENCE_SERVICE, InferenceServicer, add_to_server
from inference_bridge._settings import (
    BreakerSettings,
    ConsultSettings,
    InferenceSettings,
    RoutingSettings,
    TorchSettings,
    TritonSettings,
)
from inference_bridge._tensors import EncodedInput, EncodedInputs, decode_outputs, encode_inputs
from inference_bridge._tools import ModelTool, ModelTools

__all__ = [
    "INFERENCE_SERVICE",
    "SHIPPED_CATALOG",
    "Backend",
    "BackendCall",
    "BackendCallError",
    "BackendRejectedError",
    "BreakerSettings",
    "BreakerState",
    "CaseLibrary",
    "Catalog",
    "CircuitBreaker",
    "CodedFeatures",
    "Coding",
    "ConsultContext",
    "ConsultFeatures",
    "ConsultRequest",
    "ConsultResult",
    "ConsultSettings",
    "DiagnosticReportResult",
    "EncodedInput",
    "EncodedInputs",
    "FeatureSpec",
    "FhirMapping",
    "GatewayInference",
    "InferenceAuditRecord",
    "InferenceAuditSink",
    "InferenceBackend",
    "InferenceBridge",
    "InferenceOutcome",
    "InferenceProvenance",
    "InferenceRequest",
    "InferenceResult",
    "InferenceServicer",
    "InferenceSettings",
    "InputTooLargeError",
    "ModelCard",
    "ModelEntry",
    "ModelInputs",
    "ModelNotFoundError",
    "ModelTool",
    "ModelTools",
    "ModelView",
    "Neighbour",
    "NoPlacementAvailableError",
    "ObservationResult",
    "Placement",
    "PlacementHealth",
    "PlacementStatus",
    "Postprocessor",
    "Preprocessor",
    "Priority",
    "ResultContext",
    "RiskAssessmentResult",
    "RoutedResult",
    "Router",
    "RoutingPreferences",
    "RoutingSettings",
    "SpecialistFinding",
    "SpecialistOpinion",
    "TensorSpec",
    "TorchSettings",
    "TorchSpec",
    "TritonSettings",
    "add_to_server",
    "decode_outputs",
    "encode_inputs",
    "gateway_extension",
    "models",
    "render_consult",
]
