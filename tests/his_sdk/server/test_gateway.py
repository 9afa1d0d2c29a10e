"""The gateway end to end over gRPC: SDK client -> interceptors -> policy -> adapter."""

from __future__ import annotations

import json

import grpc
import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import his_sdk
import his_sdk.errors
from his_sdk._generated.his.v1 import fhir_pb2, fhir_pb2_grpc

CLINICIAN = dict(roles=("clinician",), act_subject="dr.one", act_fhir_user="Practitioner/dr1")
USER_SCOPES = "user/Patient.rs user/Observation.rs"


def client(target, token=None):
    return his_sdk.HisClient.connect(target, token=token, timeout=10)


def test_capabilities_are_public_and_list_types_and_parameters(target):
    with client(target) as c:
        statement = c.capabilities()
    resources = {r.type: r for r in statement.rest[0].resource}
    assert set(resources) == {"Patient", "Observation"}
    assert {p.name for p in resources["Observation"].searchParam} == {
        "_id",
        "patient",
        "code",
        "category",
    }
    assert statement.fhirVersion == "4.0.1"


def test_clinician_agent_reads_and_searches_its_patient(target, mint):
    with client(target, mint(USER_SCOPES, **CLINICIAN)) as c:
        patient = c.read(Patient, "p1")
        assert isinstance(patient, Patient) and patient.name[0].family == "One"
        page = c.search(Observation, {"patient": "p1", "category": "laboratory"}, total=True)
    assert page.total == 5
    assert sorted(o.id for o in page) == [f"lab{i}" for i in range(5)]
    assert page.bundle().type == "searchset"


def test_paging_visits_every_match_once(target, mint):
    with client(target, mint(USER_SCOPES, **CLINICIAN)) as c:
        ids = [o.id for o in c.search_all(Observation, {"patient": "p1"}, count=3)]
        first = c.search(Observation, {"patient": "p1"}, count=3)
        assert len(first) == 3 and first.next_cursor
        limited = list(c.search_all(Observation, {"patient": "p1"}, count=2, limit=5))
    assert sorted(ids) == sorted([f"lab{i}" for i in range(5)] + [f"vs{i}" for i in range(3)])
    assert len(ids) == len(set(ids)) and len(limited) == 5


def test_forged_or_foreign_cursors_are_refused(target, mint):
    with client(target, mint(USER_SCOPES, **CLINICIAN)) as c:
        page = c.search(Observation, {"patient": "p1"}, count=3)
        with pytest.raises(his_sdk.InvalidRequestError, match="different search"):
            c.search(
                Observation,
                {"patient": "p1", "category": "laboratory"},
                count=3,
                cursor=page.next_cursor,
            )
        body, _, mac = page.next_cursor.partition(".")
        with pytest.raises(his_sdk.InvalidRequestError, match="cursor is invalid"):
            c.search(Observation, {"patient": "p1"}, count=3, cursor=body[:-2] + "AA." + mac)


def test_elements_and_summary_shrink_what_the_agent_reads(target, mint):
    with client(target, mint(USER_SCOPES, **CLINICIAN)) as c:
        full = c.search(Observation, {"patient": "p1"}, count=1).resources[0]
        slim = c.search(Observation, {"patient": "p1"}, count=1, elements=["value"]).resources[0]
        count_only = c.search(Observation, {"patient": "p1"}, summary="count")
    assert slim.valueQuantity is not None and slim.subject is None and full.subject is not None
    assert slim.meta.tag[0].code == "SUBSETTED"
    assert count_only.total == 8 and count_only.resources == []


def test_unsupported_parameter_is_invalid_argument_with_outcome(target, mint):
    with client(target, mint(USER_SCOPES, **CLINICIAN)) as c:
        with pytest.raises(his_sdk.UnsupportedParameterError) as info:
            c.search(Observation, {"patient": "p1", "value-quantity": "gt5"})
    assert info.value.expression == ["value-quantity"]
    assert isinstance(info.value.__cause__, grpc.RpcError)
    assert info.value.__cause__.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_missing_token_is_unauthenticated(target):
    with client(target) as c:
        with pytest.raises(his_sdk.AuthenticationError):
            c.read(Patient, "p1")


def test_expired_token_is_unauthenticated(target, mint):
    with client(target, mint(USER_SCOPES, ttl_seconds=-120, **CLINICIAN)) as c:
        with pytest.raises(his_sdk.AuthenticationError, match="expired"):
            c.read(Patient, "p1")


def test_scope_missing_is_denied_with_an_actionable_reason(target, mint):
    with client(target, mint("user/Patient.rs", **CLINICIAN)) as c:
        with pytest.raises(his_sdk.PermissionDeniedError, match="Observation"):
            c.search(Observation, {"patient": "p1"})
        with pytest.raises(his_sdk.PermissionDeniedError):
            c.read(Observation, "lab1")


def test_user_not_on_care_team_is_denied_unless_break_glass(target, mint, gateway):
    with client(target, mint(USER_SCOPES, **CLINICIAN)) as c:
        with pytest.raises(his_sdk.PermissionDeniedError, match="care team"):
            c.read(Patient, "p2")
        with pytest.raises(his_sdk.PermissionDeniedError):
            c.read(Observation, "lab-p2")
        patient = c.read(Patient, "p2", break_glass="unconscious patient in ED")
    assert patient.id == "p2"
    (record,) = gateway.break_glass.recent()
    assert record["patient_id"] == "p2" and record["reason"] == "unconscious patient in ED"
    assert record["client_id"] == "test-agent" and record["user"] == "dr.one"


def test_consent_opt_out_blocks_even_the_care_team(target, mint):
    with client(target, mint(USER_SCOPES, **CLINICIAN)) as c:
        with pytest.raises(his_sdk.PermissionDeniedError, match="declined sharing"):
            c.search(Observation, {"patient": "p3"})


def test_patient_context_token_is_confined_to_its_patient(target, mint):
    with client(target, mint("patient/Observation.rs patient/Patient.r", patient="p1")) as c:
        own = [o.id for o in c.search_all(Observation)]
        assert own and all(o.startswith(("lab", "vs")) and o != "lab-p2" for o in own)
        with pytest.raises(his_sdk.PermissionDeniedError):
            c.search(Observation, {"patient": "p2"})
        with pytest.raises(his_sdk.PermissionDeniedError):
            c.read(Patient, "p2")
        with pytest.raises(his_sdk.PermissionDeniedError):
            c.read(Observation, "lab-p2")


def test_granular_scope_filters_searches_and_reads(target, mint):
    token = mint("patient/Observation.rs?category=laboratory", patient="p1")
    with client(target, token) as c:
        ids = sorted(o.id for o in c.search_all(Observation, {"patient": "p1"}))
        assert ids == [f"lab{i}" for i in range(5)]
        assert c.read(Observation, "lab1").id == "lab1"
        with pytest.raises(his_sdk.PermissionDeniedError, match="granular"):
            c.read(Observation, "vs1")


def test_unknown_ids_and_unserved_types(target, mint):
    token = mint("system/*.rs", roles=("system",))
    with client(target, token) as c:
        with pytest.raises(his_sdk.NotFoundError):
            c.read(Observation, "nope")
        with pytest.raises(his_sdk.UnsupportedError):
            c.read("Condition", "x")
        with pytest.raises(his_sdk.InvalidRequestError):
            c.read("NotAType", "x")
        with pytest.raises(his_sdk.InvalidRequestError):
            c.read(Patient, "bad id with spaces")


def test_internal_errors_leak_nothing(target, mint, adapter):
    async def broken(resource_type, resource_id):
        raise RuntimeError("Pat One, MRN 12345 exploded")

    adapter.read = broken
    with grpc.insecure_channel(target) as channel:
        stub = fhir_pb2_grpc.FhirServiceStub(channel)
        token = mint("system/*.rs", roles=("system",))
        with pytest.raises(grpc.RpcError) as info:
            stub.Read(
                fhir_pb2.ReadRequest(resource_type="Patient", id="p1"),
                metadata=(("authorization", f"Bearer {token}"), ("x-request-id", "req-42")),
            )
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert "12345" not in info.value.details() and "req-42" in info.value.details()
    outcome = dict(info.value.trailing_metadata())["his-operation-outcome-bin"]
    assert "12345" not in outcome.decode()
    assert json.loads(outcome)["resourceType"] == "OperationOutcome"


def test_health_and_reflection_answer_without_a_token(target):
    with grpc.insecure_channel(target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="his.v1.FhirService")
        )
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"his.v1.FhirService", "grpc.health.v1.Health"} <= names


async def test_async_client_shares_the_behaviour(target, mint):
    async with his_sdk.AsyncHisClient.connect(target, token=mint(USER_SCOPES, **CLINICIAN)) as c:
        patient = await c.read(Patient, "p1")
        ids = [o.id async for o in c.search_all(Observation, {"patient": "p1"}, count=2)]
        with pytest.raises(his_sdk.PermissionDeniedError):
            await c.read(Patient, "p2")
    assert patient.id == "p1" and len(ids) == 8


def test_break_glass_without_a_reason_is_refused_as_such(target, mint):
    token = mint(USER_SCOPES, **CLINICIAN)
    with grpc.insecure_channel(target) as channel:
        stub = fhir_pb2_grpc.FhirServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Read(
                fhir_pb2.ReadRequest(resource_type="Patient", id="p2"),
                metadata=(("authorization", f"Bearer {token}"), ("x-his-break-glass", " ")),
            )
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "reason" in info.value.details()
