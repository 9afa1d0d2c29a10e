"""The bridge end to end on the local torch backend: FHIR in, FHIR out, policy and audit."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

import his_sdk.errors
import inference_bridge
from his_sdk.policy import PolicyEngine
from inference_bridge import (
    ConsultRequest,
    InferenceBridge,
    InferenceOutcome,
    InferenceRequest,
    InferenceSettings,
)
from inference_bridge._fhir import parse_input
from inference_bridge._torch import build_torch_model
from tests.inference_bridge.ib_helpers import (
    BREAST,
    CLINICIAN_SCOPES,
    DIABETES,
    GENERALIST,
    breast_features,
    breast_observations,
    diabetes_features,
    make_call,
    make_principal,
)


def assert_valid_fhir(resource) -> dict:
    """Round-trip through JSON and re-validate: every output must be valid FHIR R4."""
    data = json.loads(resource.model_dump_json(exclude_none=True))
    cls = get_fhir_model_class(data["resourceType"])
    cls.model_validate(data)
    return data


@pytest.fixture
async def bridge(policy: PolicyEngine, facts, audit):
    settings = InferenceSettings(consult={"generalist": GENERALIST})
    async with InferenceBridge(settings, policy=policy, facts=facts, audit=audit) as b:
        yield b


def reference_prediction(name: str, row: np.ndarray) -> tuple[float, np.ndarray]:
    entry = inference_bridge.Catalog.load().get(name)
    model = build_torch_model(entry)
    with torch.inference_mode():
        prediction, embedding = model(torch.tensor(row[None, :], dtype=torch.float32))
    return float(prediction[0, 0]), embedding[0].numpy()


async def test_risk_assessment_from_observations(bridge, clinician_call, samples, audit):
    row = samples.breast_x[0]
    inputs = tuple(
        parse_input("Observation", json.dumps(o).encode()) for o in breast_observations(row)
    )
    result = await bridge.infer(
        clinician_call, InferenceRequest(BREAST, patient_id="p1", resources=inputs)
    )
    expected, _ = reference_prediction(BREAST, row)
    assert math.isclose(result.prediction, expected, rel_tol=1e-5)
    (risk,) = result.results
    data = assert_valid_fhir(risk)
    assert data["resourceType"] == "RiskAssessment"
    assert data["subject"] == {"reference": "Patient/p1"}
    assert data["performer"] == {"reference": f"Device/{result.device.id}"}
    assert data["identifier"][0]["value"] == "req-1"
    assert len(data["basis"]) == 30
    prediction = data["prediction"][0]
    assert prediction["outcome"]["coding"][0]["code"] == "254837009"
    assert math.isclose(float(prediction["probabilityDecimal"]), expected, abs_tol=1e-6)
    device = assert_valid_fhir(result.device)
    assert device["identifier"][0]["value"] == f"{BREAST}@1"
    assert {p["type"]["text"]: p["valueCode"][0]["text"] for p in device["property"]} == {
        "backend": "torch",
        "accelerator": "cpu",
        "validation-status": "research",
    }
    provenance = assert_valid_fhir(result.provenance_resource)
    assert provenance["target"] == [{"reference": f"RiskAssessment/{risk.id}"}]
    assert provenance["entity"][0]["what"]["identifier"]["value"] == result.provenance.input_sha256
    assert provenance["agent"][1]["onBehalfOf"] == {"reference": "Practitioner/dr-1"}
    assert result.provenance.backend == "torch"
    assert result.provenance.attempts == 1
    (record,) = audit.records
    assert record.outcome is InferenceOutcome.SUCCESS
    assert (record.model, record.version, record.backend, record.accelerator) == (
        BREAST,
        "1",
        "torch",
        "cpu",
    )
    assert record.input_sha256 == result.provenance.input_sha256
    assert record.result_ids == (f"RiskAssessment/{risk.id}",)
    assert record.patient_id == "p1"
    assert record.principal is clinician_call.principal


async def test_same_inputs_same_hash_whatever_their_form(bridge, clinician_call, samples):
    row = samples.breast_x[1]
    observations = tuple(
        parse_input("Observation", json.dumps(o).encode()) for o in breast_observations(row)
    )
    by_resources = await bridge.infer(
        clinician_call, InferenceRequest(BREAST, patient_id="p1", resources=observations)
    )
    by_features = await bridge.infer(
        clinician_call, InferenceRequest(BREAST, patient_id="p1", features=breast_features(row))
    )
    assert by_resources.provenance.input_sha256 == by_features.provenance.input_sha256
    assert by_resources.prediction == by_features.prediction


async def test_observation_result_without_patient(policy, samples, audit):
    call = make_call(make_principal("system/Observation.c", roles=("system",), acting=None))
    async with InferenceBridge(InferenceSettings(), policy=policy, audit=audit) as bridge:
        result = await bridge.infer(
            call, InferenceRequest(DIABETES, features=diabetes_features(samples.diabetes_x[0]))
        )
    (observation,) = result.results
    data = assert_valid_fhir(observation)
    assert data["subject"]["identifier"]["value"] == "req-1"
    assert data["valueQuantity"]["code"] == "{score}"
    expected, _ = reference_prediction(DIABETES, samples.diabetes_x[0])
    assert math.isclose(float(data["valueQuantity"]["value"]), expected, abs_tol=0.05)
    assert "onBehalfOf" not in assert_valid_fhir(result.provenance_resource)["agent"][1]


@pytest.mark.parametrize(
    ("principal", "patient", "reason"),
    [
        (make_principal("user/Observation.rs"), "p1", "insufficient_scope"),
        (make_principal(CLINICIAN_SCOPES, roles=("nurse",)), "p1", "role_not_permitted"),
        (make_principal(CLINICIAN_SCOPES), "p2", "not_on_care_team"),
        (make_principal(CLINICIAN_SCOPES), "p3", "consent_opt_out"),
        (make_principal(CLINICIAN_SCOPES), None, "population_search_not_permitted"),
        (
            make_principal("patient/RiskAssessment.c", roles=(), patient="p2"),
            "p1",
            "patient_context_mismatch",
        ),
    ],
)
async def test_policy_denials(bridge, samples, audit, principal, patient, reason):
    request = InferenceRequest(
        BREAST, patient_id=patient, features=breast_features(samples.breast_x[0])
    )
    with pytest.raises(his_sdk.errors.PermissionDeniedError) as caught:
        await bridge.infer(make_call(principal), request)
    assert caught.value.diagnostics == reason
    (record,) = audit.records
    assert record.outcome is InferenceOutcome.DENIED
    assert record.backend is None and record.input_sha256 is None


async def test_patient_scope_for_launch_patient_is_allowed(bridge, samples):
    principal = make_principal("patient/RiskAssessment.c", roles=(), patient="p2", acting=None)
    result = await bridge.infer(
        make_call(principal),
        InferenceRequest(BREAST, patient_id="p2", features=breast_features(samples.breast_x[0])),
    )
    assert result.results[0].subject.reference == "Patient/p2"


async def test_unknown_patient_and_unauthenticated(bridge, samples, clinician_call):
    features = breast_features(samples.breast_x[0])
    principal = make_principal("patient/RiskAssessment.c", roles=(), patient="p9", acting=None)
    with pytest.raises(his_sdk.errors.NotFoundError):
        await bridge.infer(
            make_call(principal), InferenceRequest(BREAST, patient_id="p9", features=features)
        )
    with pytest.raises(his_sdk.errors.AuthenticationError):
        await bridge.infer(make_call(None), InferenceRequest(BREAST, features=features))
    with pytest.raises(inference_bridge.ModelNotFoundError):
        await bridge.infer(clinician_call, InferenceRequest("no-such-model", patient_id="p1"))


async def test_allowed_roles_restrict_a_model(policy, samples, clinician_call):
    catalog = inference_bridge.Catalog.load()
    entry = catalog.get(BREAST).model_copy(update={"allowed_roles": ("oncologist",)})
    bridge = InferenceBridge(
        InferenceSettings(), policy=policy, catalog=inference_bridge.Catalog([entry])
    )
    with pytest.raises(his_sdk.errors.PermissionDeniedError, match="oncologist"):
        await bridge.infer(
            clinician_call,
            InferenceRequest(
                BREAST, patient_id="p1", features=breast_features(samples.breast_x[0])
            ),
        )
    await bridge.close()


async def test_invalid_inputs_are_refused_before_any_backend(
    bridge, clinician_call, samples, audit
):
    features = breast_features(samples.breast_x[0])
    missing = dict(list(features.items())[:-2])
    with pytest.raises(his_sdk.errors.InvalidRequestError) as caught:
        await bridge.infer(
            clinician_call, InferenceRequest(BREAST, patient_id="p1", features=missing)
        )
    assert len(caught.value.expression) == 2
    other_patient = tuple(
        parse_input("Observation", json.dumps(o).encode())
        for o in breast_observations(samples.breast_x[0], patient="p2")
    )
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="another patient"):
        await bridge.infer(
            clinician_call, InferenceRequest(BREAST, patient_id="p1", resources=other_patient)
        )
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="finite"):
        await bridge.infer(
            clinician_call,
            InferenceRequest(
                BREAST, patient_id="p1", features={**features, next(iter(features)): math.nan}
            ),
        )
    assert all(r.outcome is InferenceOutcome.INVALID for r in audit.records)
    assert all(r.backend is None for r in audit.records)


async def test_consult_neighbours_match_brute_force(bridge, clinician_call, samples, audit):
    row = samples.breast_x[3]
    features = {**breast_features(row), **diabetes_features(samples.diabetes_x[3])}
    result = await bridge.consult(
        clinician_call,
        ConsultRequest((BREAST, DIABETES), patient_id="p1", features=features, top_k=7),
    )
    assert [o.result.entry.name for o in result.opinions] == [BREAST, DIABETES]
    for opinion, query_row in zip(result.opinions, (row, samples.diabetes_x[3]), strict=True):
        _, embedding = reference_prediction(opinion.result.entry.name, query_row)
        library = inference_bridge.CaseLibrary.load(opinion.result.entry.case_library)
        # Brute force: cosine against every case in plain Python. Saturated embeddings tie
        # (equal in float32), so the check is tie-aware: the returned cases carry their true
        # similarity, the k-th best is matched, and no case left out is more similar.
        q = [float(v) for v in embedding]
        q_norm = math.sqrt(sum(v * v for v in q))
        brute = []
        for i in range(len(library)):
            case = [float(v) for v in library.unit_embeddings[i]]
            c_norm = math.sqrt(sum(v * v for v in case))
            brute.append(sum(a * b for a, b in zip(q, case, strict=True)) / (q_norm * c_norm))
        best = sorted(brute, reverse=True)[:7]
        returned = [n.index for n in opinion.neighbours]
        assert len(set(returned)) == 7
        for n, expected_similarity in zip(opinion.neighbours, best, strict=True):
            assert math.isclose(n.similarity, brute[n.index], abs_tol=1e-5)
            assert math.isclose(n.similarity, expected_similarity, abs_tol=1e-5)
        floor = min(n.similarity for n in opinion.neighbours)
        assert all(brute[i] <= floor + 1e-5 for i in range(len(library)) if i not in returned)
        for n in opinion.neighbours:
            assert library.case(n.index) == (n.case_id, n.label, n.value)
    assert (
        "breast-fna-malignancy@1" in result.text and "most similar confirmed cases" in result.text
    )
    bundle = assert_valid_fhir(result.bundle)
    types = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert types == [
        "Device",
        "Device",
        "Observation",
        "Provenance",
        "Provenance",
        "RiskAssessment",
    ]
    assert Bundle.model_validate(bundle).type == "collection"
    assert sorted(r.inference_id for r in audit.records) == [
        "req-1:breast-fna-malignancy",
        "req-1:diabetes-progression",
    ]
    assert {r.operation for r in audit.records} == {"consult"}


async def test_consult_with_generalist(bridge, clinician_call, samples, audit):
    malignant = samples.breast_x[np.argmax(samples.breast_y)]
    result = await bridge.consult(
        clinician_call,
        ConsultRequest(
            (BREAST,),
            patient_id="p1",
            features=breast_features(malignant),
            top_k=3,
            generalist=True,
        ),
    )
    # The generalist needs five neighbours, so the consult retrieved five.
    assert len(result.opinions[0].neighbours) == 5
    assert result.generalist is not None
    (report,) = result.generalist.results
    data = assert_valid_fhir(report)
    assert data["resourceType"] == "DiagnosticReport"
    assert data["conclusion"].startswith("malignant")
    assert "Generalist breast-fna-generalist@1" in result.text
    assert len(audit.records) == 2


async def test_consult_request_errors(bridge, clinician_call, audit):
    with pytest.raises(his_sdk.errors.InvalidRequestError):
        await bridge.consult(clinician_call, ConsultRequest(()))
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="twice"):
        await bridge.consult(clinician_call, ConsultRequest((BREAST, BREAST), patient_id="p1"))
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="generalist"):
        await bridge.consult(clinician_call, ConsultRequest((GENERALIST,), patient_id="p1"))
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="top_k"):
        await bridge.consult(clinician_call, ConsultRequest((BREAST,), patient_id="p1", top_k=500))
    denied = make_call(make_principal("user/RiskAssessment.c"))
    with pytest.raises(his_sdk.errors.PermissionDeniedError):
        await bridge.consult(denied, ConsultRequest((BREAST, DIABETES), patient_id="p1"))
    # One record per malformed consult, one per model of a denied one.
    assert [r.outcome for r in audit.records] == [InferenceOutcome.INVALID] * 4 + [
        InferenceOutcome.DENIED
    ] * 2
    assert [r.model for r in audit.records[:4]] == [""] * 4


async def test_generalist_only_when_configured(policy, clinician_call, samples):
    async with InferenceBridge(InferenceSettings(), policy=policy) as bridge:
        with pytest.raises(his_sdk.errors.InvalidRequestError, match="no generalist"):
            await bridge.consult(
                clinician_call,
                ConsultRequest(
                    (BREAST,),
                    patient_id="p1",
                    features=breast_features(samples.breast_x[0]),
                    generalist=True,
                ),
            )


async def test_audit_failure_fails_the_call(policy, clinician_call, samples):
    async def broken(record):
        raise RuntimeError("audit store down")

    async with InferenceBridge(InferenceSettings(), policy=policy, audit=broken) as bridge:
        with pytest.raises(RuntimeError, match="audit store down"):
            await bridge.consult(
                clinician_call,
                ConsultRequest((DIABETES,), features=diabetes_features(samples.diabetes_x[0])),
            )


async def test_list_and_get_models(bridge, clinician_call):
    views = bridge.list_models(clinician_call)
    assert [v.entry.key for v in views] == [f"{GENERALIST}@1", f"{BREAST}@1", f"{DIABETES}@1"]
    assert all(p.healthy for v in views for p in v.placements)
    assert [v.entry.name for v in bridge.list_models(clinician_call, task="regression")] == [
        DIABETES
    ]
    assert bridge.get_model(clinician_call, f"{BREAST}@1").entry.card.metrics["auroc"] > 0.95
    with pytest.raises(his_sdk.errors.AuthenticationError):
        bridge.list_models(make_call(None))


async def test_units_and_statuses_of_observations_are_checked(bridge, clinician_call, samples):
    name = DIABETES
    observations = []
    catalog = inference_bridge.Catalog.load()
    for spec, value in zip(catalog.get(name).fhir.features, samples.diabetes_x[0], strict=True):
        quantity = {"value": float(value)}
        if spec.unit:
            quantity["code"] = spec.unit
        observations.append(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": spec.system, "code": spec.code}]},
                "valueQuantity": quantity,
            }
        )
    parsed = [parse_input("Observation", json.dumps(o).encode()) for o in observations]
    ok = await bridge.infer(
        clinician_call, InferenceRequest(name, patient_id="p1", resources=tuple(parsed))
    )
    assert ok.results[0].get_resource_type() == "Observation"
    wrong_unit = json.loads(json.dumps(observations))
    wrong_unit[2]["valueQuantity"]["code"] = "[lb_av]/[in_i]2"
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="expected kg/m2"):
        await bridge.infer(
            clinician_call,
            InferenceRequest(
                name,
                patient_id="p1",
                resources=tuple(
                    parse_input("Observation", json.dumps(o).encode()) for o in wrong_unit
                ),
            ),
        )
    retracted = json.loads(json.dumps(observations))
    retracted[0]["status"] = "entered-in-error"
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="entered-in-error"):
        await bridge.infer(
            clinician_call,
            InferenceRequest(
                name,
                patient_id="p1",
                resources=tuple(
                    parse_input("Observation", json.dumps(o).encode()) for o in retracted
                ),
            ),
        )
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="not Patient"):
        await bridge.infer(
            clinician_call,
            InferenceRequest(
                name,
                patient_id="p1",
                resources=(parse_input("Patient", b'{"resourceType": "Patient", "id": "p1"}'),),
            ),
        )


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inference_consult.py"


async def test_example_consult_runs_in_process():
    example = EXAMPLE
    module = runpy.run_path(str(example))
    text, entries = await module["in_process"]("1")
    assert text.startswith("Consult example-1 about Patient/1: 2 specialist(s).")
    assert [t for t, _ in entries].count("Provenance") == 3


def cuda_catalog() -> inference_bridge.Catalog:
    return inference_bridge.Catalog.load().with_placements(
        {
            BREAST: [
                inference_bridge.Placement(backend="torch", accelerator="nvidia-h100"),
                inference_bridge.Placement(backend="torch", accelerator="cpu", priority=1),
            ]
        }
    )


async def test_cuda_placement_without_cuda_falls_back_to_cpu(policy, clinician_call, samples):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; test_torch_backend_on_cuda covers it")
    async with InferenceBridge(
        InferenceSettings(), policy=policy, catalog=cuda_catalog()
    ) as bridge:
        status = bridge.router.status(bridge.catalog.get(BREAST))
        assert [s.healthy for s in status] == [False, True]
        result = await bridge.consult(
            make_call(make_principal("system/RiskAssessment.c", roles=("system",), acting=None)),
            ConsultRequest((BREAST,), features=breast_features(samples.breast_x[0])),
        )
    assert result.opinions[0].result.provenance.accelerator == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
async def test_torch_backend_on_cuda(policy, samples):
    call = make_call(make_principal("system/RiskAssessment.c", roles=("system",), acting=None))
    async with InferenceBridge(
        InferenceSettings(), policy=policy, catalog=cuda_catalog()
    ) as bridge:
        for row in samples.breast_x[:10]:
            result = await bridge.infer(
                call, InferenceRequest(BREAST, features=breast_features(row))
            )
            expected, _ = reference_prediction(BREAST, row)
            assert result.provenance.accelerator == "nvidia-h100"
            assert math.isclose(result.prediction, expected, rel_tol=1e-4, abs_tol=1e-6)
