"""InferenceService over gRPC behind the gateway's interceptors, with real tokens."""

from __future__ import annotations

import json

import grpc
import pytest

import inference_bridge
from his_sdk._generated.his.v1 import fhir_pb2, inference_pb2, inference_pb2_grpc
from his_sdk.auth import TokenVerifier
from his_sdk.config import AuthSettings
from his_sdk.server._interceptors import (
    ERROR_CLASS_METADATA_KEY,
    AuthenticationInterceptor,
    ErrorMappingInterceptor,
)
from inference_bridge import InferenceBridge, InferenceSettings
from tests.conftest import AUDIENCE, ISSUER
from tests.inference_bridge.ib_helpers import (
    BREAST,
    CLINICIAN_SCOPES,
    DIABETES,
    GENERALIST,
    breast_observations,
    diabetes_features,
)


@pytest.fixture
async def stub(issuer_dir, policy, facts, audit):
    verifier = TokenVerifier(
        AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=issuer_dir / "jwks.json")
    )
    server = grpc.aio.server(
        interceptors=[ErrorMappingInterceptor(), AuthenticationInterceptor(verifier, ())]
    )
    bridge = InferenceBridge(
        InferenceSettings(consult={"generalist": GENERALIST}),
        policy=policy,
        facts=facts,
        audit=audit,
    )
    await bridge.start()
    inference_bridge.add_to_server(server, bridge)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield inference_pb2_grpc.InferenceServiceStub(channel)
    await channel.close()
    await server.stop(None)
    await bridge.close()


@pytest.fixture
def bearer(mint):
    def _bearer(scopes: str = CLINICIAN_SCOPES, **kwargs):
        kwargs.setdefault("roles", ["clinician"])
        kwargs.setdefault("act_subject", "dr-1")
        kwargs.setdefault("act_fhir_user", "Practitioner/dr-1")
        return (("authorization", f"Bearer {mint(scopes, **kwargs)}"), ("x-request-id", "rq-9"))

    return _bearer


def wire(resources: list[dict]) -> list[fhir_pb2.Resource]:
    return [
        fhir_pb2.Resource(
            resource_type=r["resourceType"], id=r.get("id", ""), json=json.dumps(r).encode()
        )
        for r in resources
    ]


async def test_infer_over_grpc(stub, bearer, samples, audit):
    request = inference_pb2.InferRequest(
        model=BREAST,
        patient_id="p1",
        inputs=wire(breast_observations(samples.breast_x[0])),
        priority=inference_pb2.PRIORITY_STAT,
    )
    response = await stub.Infer(request, metadata=bearer(), timeout=10)
    assert response.request_id == "rq-9"
    assert [r.resource_type for r in response.resources] == [
        "RiskAssessment",
        "Device",
        "Provenance",
    ]
    risk = json.loads(response.resources[0].json)
    assert risk["subject"] == {"reference": "Patient/p1"}
    assert response.provenance.backend == "torch"
    assert 0.0 <= response.prediction <= 1.0
    assert audit.records[0].request_id == "rq-9"


async def test_errors_map_to_status_codes(stub, bearer, samples):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Infer(inference_pb2.InferRequest(model="nope"), metadata=bearer())
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert dict(caught.value.trailing_metadata())[ERROR_CLASS_METADATA_KEY] == "ModelNotFoundError"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Infer(
            inference_pb2.InferRequest(
                model=BREAST,
                patient_id="p2",
                inputs=wire(breast_observations(samples.breast_x[0], patient="p2")),
            ),
            metadata=bearer(),
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Infer(
            inference_pb2.InferRequest(
                model=BREAST,
                patient_id="p1",
                inputs=[
                    fhir_pb2.Resource(
                        resource_type="Observation",
                        json=b'{"resourceType": "Observation", "status": 7}',
                    )
                ],
            ),
            metadata=bearer(),
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListModels(inference_pb2.ListModelsRequest())
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_catalog_over_grpc(stub, bearer):
    listed = await stub.ListModels(inference_pb2.ListModelsRequest(), metadata=bearer())
    assert [m.name for m in listed.models] == [GENERALIST, BREAST, DIABETES]
    model = (
        await stub.GetModel(inference_pb2.GetModelRequest(name=BREAST), metadata=bearer())
    ).model
    assert model.output_resource_type == "RiskAssessment"
    assert model.card.metrics["auroc"] > 0.95
    assert model.has_case_library and len(model.features) == 30
    (placement,) = model.placements
    assert placement.health == inference_pb2.PlacementStatus.HEALTH_READY
    assert placement.circuit == "closed"


async def test_consult_over_grpc(stub, bearer, samples):
    request = inference_pb2.ConsultRequest(
        specialists=[BREAST, DIABETES],
        patient_id="p1",
        inputs=wire(breast_observations(samples.breast_x[5])),
        features=diabetes_features(samples.diabetes_x[5]),
        top_k=4,
        use_generalist=True,
    )
    response = await stub.Consult(request, metadata=bearer(), timeout=10)
    assert [o.model for o in response.opinions] == [BREAST, DIABETES]
    # The generalist reads five neighbours, so the consult retrieves five, not four.
    assert [len(o.neighbours) for o in response.opinions] == [5, 5]
    assert response.generalist.model == GENERALIST
    bundle = json.loads(response.bundle.json)
    assert bundle["type"] == "collection" and len(bundle["entry"]) == 9
    assert response.text.startswith("Consult rq-9 about Patient/p1")


async def test_client_deadline_becomes_the_bridge_deadline(stub, bearer, samples):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Infer(
            inference_pb2.InferRequest(
                model=BREAST, patient_id="p1", inputs=wire(breast_observations(samples.breast_x[0]))
            ),
            metadata=bearer(),
            timeout=0.000001,
        )
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
