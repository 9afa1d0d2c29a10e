"""The gRPC InferenceService servicer: convert, call the bridge, convert back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from his_sdk._generated.his.v1 import inference_pb2, inference_pb2_grpc

from ._bridge import InferenceBridge
from ._converters import (
    consult_request_from_proto,
    consult_response_to_proto,
    infer_request_from_proto,
    infer_response_to_proto,
    model_to_proto,
)

if TYPE_CHECKING:
    import his_sdk.server

__all__ = ["INFERENCE_SERVICE", "InferenceServicer", "add_to_server"]

INFERENCE_SERVICE: str = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name
"""Full name of the service (``his.v1.InferenceService``), for reflection and health."""


def _caller() -> his_sdk.server.CallContext:
    # Imported when a call arrives, not with this module: his_sdk.server imports
    # his_sdk.config, which imports this package's settings.
    import his_sdk.server

    return his_sdk.server.current_call.get()


def _time_remaining(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else float(remaining)


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):  # type: ignore[misc]
    """Thin gRPC adapter over :class:`InferenceBridge`.

    The caller comes from :data:`his_sdk.server.current_call`, which the gateway's
    authentication interceptor sets.
    """

    def __init__(self, bridge: InferenceBridge) -> None:
        self._bridge = bridge

    async def ListModels(
        self, request: inference_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ListModelsResponse:
        """The catalog."""
        views = self._bridge.list_models(
            _caller(),
            task=request.task or None,
            modality=request.modality or None,
        )
        return inference_pb2.ListModelsResponse(models=[model_to_proto(v) for v in views])

    async def GetModel(
        self, request: inference_pb2.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.GetModelResponse:
        """One model."""
        view = self._bridge.get_model(_caller(), request.name, request.version or None)
        return inference_pb2.GetModelResponse(model=model_to_proto(view))

    async def Infer(
        self, request: inference_pb2.InferRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.InferResponse:
        """Run one model; the call's deadline is the end-to-end deadline."""
        call = _caller()
        result = await self._bridge.infer(
            call, infer_request_from_proto(request, _time_remaining(context))
        )
        return infer_response_to_proto(result, call.request_id)

    async def Consult(
        self, request: inference_pb2.ConsultRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ConsultResponse:
        """Consult specialists."""
        call = _caller()
        result = await self._bridge.consult(
            call, consult_request_from_proto(request, _time_remaining(context))
        )
        return consult_response_to_proto(result)


def add_to_server(server: grpc.aio.Server, bridge: InferenceBridge) -> None:
    """Register the InferenceService of ``bridge`` on a gateway's gRPC server."""
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(bridge), server)
