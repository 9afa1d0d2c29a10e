"""The bridge inside a real gateway: configured by import string, audited by the gateway's trail."""

from __future__ import annotations

import json

import grpc
import pytest

from his_sdk._generated.his.v1 import fhir_pb2, inference_pb2, inference_pb2_grpc
from his_sdk.audit import AuditSettings, KafkaSettings
from his_sdk.config import InferenceGatewaySettings
from his_sdk.server import Gateway
from tests.conftest import GatewayThread
from tests.fixtures import MemoryAdapter
from tests.inference_bridge.ib_helpers import BREAST, CLINICIAN_SCOPES, breast_observations


@pytest.fixture
def gateway_with_bridge(settings, kafka_bootstrap):
    adapter = MemoryAdapter(
        [{"resourceType": "Patient", "id": "p1"}],
        care_teams={"p1": frozenset({"Practitioner/dr1"})},
    )
    configured = settings.model_copy(
        update={
            "inference": InferenceGatewaySettings(enabled=True),
            "audit": AuditSettings(
                outbox_url=settings.state.url,
                kafka=KafkaSettings(bootstrap_servers=[kafka_bootstrap], topic="his.audit.ib"),
                write_interval_seconds=0.01,
            ),
        }
    )
    with GatewayThread(Gateway(configured, adapters=[("memory", adapter)])) as gw:
        yield gw


def test_infer_through_the_gateway_is_authorized_and_audited(gateway_with_bridge, mint, samples):
    token = mint(
        CLINICIAN_SCOPES,
        roles=("clinician",),
        act_subject="dr.one",
        act_fhir_user="Practitioner/dr1",
    )
    request = inference_pb2.InferRequest(
        model=BREAST,
        patient_id="p1",
        inputs=[
            fhir_pb2.Resource(resource_type="Observation", id=o["id"], json=json.dumps(o).encode())
            for o in breast_observations(samples.breast_x[0])
        ],
    )
    with grpc.insecure_channel(f"127.0.0.1:{gateway_with_bridge.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        response = stub.Infer(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
        outsider = mint(
            CLINICIAN_SCOPES,
            roles=("clinician",),
            act_subject="dr.x",
            act_fhir_user="Practitioner/other",
        )
        with pytest.raises(grpc.RpcError) as denied:
            stub.Infer(request, metadata=(("authorization", f"Bearer {outsider}"),), timeout=30)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert response.resources[0].resource_type == "RiskAssessment"
    gateway_with_bridge.audit.flush()
    events = [row.event for row in gateway_with_bridge.audit.outbox.events()]
    operations = [
        e
        for e in events
        if e["subtype"][-1].get("code") == "$infer" or "$infer" in json.dumps(e["subtype"])
    ]
    assert len(operations) == 2
    assert {e["outcome"] for e in operations} == {"0", "4"}
