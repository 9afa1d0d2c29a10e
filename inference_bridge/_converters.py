"""The one place where inference protobuf messages and bridge values are converted."""

from __future__ import annotations

from collections.abc import Iterable

from fhir.resources.R4B.resource import Resource

import his_sdk._converters
from his_sdk._generated.his.v1 import fhir_pb2, inference_pb2

from ._bridge import (
    ConsultRequest,
    ConsultResult,
    InferenceProvenance,
    InferenceRequest,
    InferenceResult,
    ModelView,
    Priority,
)
from ._fhir import parse_input
from ._routing import PlacementStatus, RoutingPreferences

__all__ = [
    "consult_request_from_proto",
    "consult_response_to_proto",
    "infer_request_from_proto",
    "infer_response_to_proto",
    "model_to_proto",
    "resource_to_proto",
]

_PRIORITY = {
    inference_pb2.PRIORITY_UNSPECIFIED: Priority.ROUTINE,
    inference_pb2.PRIORITY_ROUTINE: Priority.ROUTINE,
    inference_pb2.PRIORITY_STAT: Priority.STAT,
}
_HEALTH = {
    None: inference_pb2.PlacementStatus.HEALTH_UNKNOWN,
    True: inference_pb2.PlacementStatus.HEALTH_READY,
    False: inference_pb2.PlacementStatus.HEALTH_NOT_READY,
}


def resource_to_proto(resource: Resource) -> fhir_pb2.Resource:
    """A FHIR model as the wire ``Resource``: the gateway's one FHIR-to-proto converter."""
    return his_sdk._converters.resource_to_proto(resource)


def _resources_from_proto(items: Iterable[fhir_pb2.Resource]) -> tuple[Resource, ...]:
    return tuple(parse_input(item.resource_type, item.json) for item in items)


def _preferences(message: inference_pb2.RoutingPreferences) -> RoutingPreferences:
    return RoutingPreferences(tuple(message.accelerators), message.site or None)


def infer_request_from_proto(
    message: inference_pb2.InferRequest, timeout: float | None
) -> InferenceRequest:
    """An ``InferRequest`` as a bridge request; ``timeout`` is the call's time remaining.

    Raises:
        his_sdk.errors.InvalidRequestError: An input resource is not valid FHIR.
    """
    return InferenceRequest(
        model=message.model,
        version=message.version or None,
        patient_id=message.patient_id or None,
        resources=_resources_from_proto(message.inputs),
        features=dict(message.features),
        priority=_PRIORITY.get(message.priority, Priority.ROUTINE),
        preferences=_preferences(message.routing),
        timeout=timeout,
    )


def consult_request_from_proto(
    message: inference_pb2.ConsultRequest, timeout: float | None
) -> ConsultRequest:
    """A ``ConsultRequest`` as a bridge request.

    Raises:
        his_sdk.errors.InvalidRequestError: An input resource is not valid FHIR.
    """
    return ConsultRequest(
        specialists=tuple(message.specialists),
        patient_id=message.patient_id or None,
        resources=_resources_from_proto(message.inputs),
        features=dict(message.features),
        top_k=message.top_k or None,
        generalist=message.use_generalist,
        priority=_PRIORITY.get(message.priority, Priority.ROUTINE),
        preferences=_preferences(message.routing),
        timeout=timeout,
    )


def _placement_to_proto(status: PlacementStatus) -> inference_pb2.PlacementStatus:
    placement = status.placement
    return inference_pb2.PlacementStatus(
        backend=placement.backend.value,
        endpoint=placement.endpoint,
        accelerator=placement.accelerator,
        priority=placement.priority,
        site=placement.site or "",
        region=placement.region or "",
        health=_HEALTH[status.healthy],
        circuit=status.breaker.value,
        in_flight=status.in_flight,
    )


def model_to_proto(view: ModelView) -> inference_pb2.Model:
    """A catalog entry with its placements' state."""
    entry = view.entry
    card = entry.card
    code = entry.fhir.result_code
    return inference_pb2.Model(
        name=entry.name,
        version=entry.version,
        task=entry.task,
        modality=entry.modality,
        inputs=[
            inference_pb2.TensorSpec(name=t.name, datatype=t.datatype, shape=list(t.shape))
            for t in entry.inputs
        ],
        outputs=[
            inference_pb2.TensorSpec(name=t.name, datatype=t.datatype, shape=list(t.shape))
            for t in entry.outputs
        ],
        input_resource_types=list(entry.fhir.input_types),
        output_resource_type=entry.fhir.output_type,
        features=[
            inference_pb2.Feature(
                system=f.system, code=f.code, display=f.display, unit=f.unit or ""
            )
            for f in entry.fhir.features
        ],
        result_code=inference_pb2.Coding(
            system=code.system, code=code.code, display=code.display or ""
        ),
        card=inference_pb2.ModelCard(
            description=card.description,
            authors=list(card.authors),
            training_data=card.training_data,
            intended_use=card.intended_use,
            validation_status=card.validation_status,
            license=card.license,
            metrics=dict(card.metrics),
        ),
        placements=[_placement_to_proto(p) for p in view.placements],
        has_case_library=entry.case_library is not None,
    )


def _provenance_to_proto(value: InferenceProvenance) -> inference_pb2.InferenceProvenance:
    return inference_pb2.InferenceProvenance(
        inference_id=value.inference_id,
        model=value.model,
        version=value.version,
        backend=value.backend,
        endpoint=value.endpoint,
        accelerator=value.accelerator,
        input_sha256=value.input_sha256,
        attempts=value.attempts,
        failed_placements=list(value.failed_placements),
        latency_ms=value.latency_ms,
    )


def infer_response_to_proto(
    result: InferenceResult, request_id: str
) -> inference_pb2.InferResponse:
    """An inference result on the wire."""
    return inference_pb2.InferResponse(
        resources=[resource_to_proto(r) for r in result.resources],
        provenance=_provenance_to_proto(result.provenance),
        prediction=result.prediction,
        request_id=request_id,
    )


def consult_response_to_proto(result: ConsultResult) -> inference_pb2.ConsultResponse:
    """A consult result on the wire."""
    response = inference_pb2.ConsultResponse(
        opinions=[
            inference_pb2.SpecialistOpinion(
                model=o.result.entry.name,
                version=o.result.entry.version,
                prediction=o.result.prediction,
                resources=[resource_to_proto(r) for r in o.result.resources],
                provenance=_provenance_to_proto(o.result.provenance),
                neighbours=[
                    inference_pb2.Neighbour(
                        case_id=n.case_id, similarity=n.similarity, label=n.label, value=n.value
                    )
                    for n in o.neighbours
                ],
            )
            for o in result.opinions
        ],
        bundle=resource_to_proto(result.bundle),
        text=result.text,
        request_id=result.request_id,
    )
    if result.generalist is not None:
        g = result.generalist
        response.generalist.CopyFrom(
            inference_pb2.GeneralistAnswer(
                model=g.entry.name,
                version=g.entry.version,
                prediction=g.prediction,
                resources=[resource_to_proto(r) for r in g.resources],
                provenance=_provenance_to_proto(g.provenance),
            )
        )
    return response
