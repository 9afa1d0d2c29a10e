"""Catalog, tensors, case libraries, the shipped weights and the public exports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from sklearn.metrics import r2_score, roc_auc_score
from tritonclient.grpc import service_pb2

import inference_bridge
from inference_bridge import Catalog, Placement, decode_outputs, encode_inputs
from inference_bridge._torch import build_torch_model
from tests.inference_bridge.ib_helpers import BREAST, DIABETES, GENERALIST


def test_public_exports_are_pinned():
    assert set(inference_bridge.__all__) == {
        "INFERENCE_SERVICE",
        "GatewayInference",
        "gateway_extension",
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
        "models",
        "render_consult",
    }
    for name in inference_bridge.__all__:
        assert getattr(inference_bridge, name) is not None


def test_shipped_catalog():
    catalog = Catalog.load()
    assert catalog.get(BREAST).key == f"{BREAST}@1"
    assert catalog.get(f"{DIABETES}@1").fhir.output_type == "Observation"
    assert catalog.get(GENERALIST).fhir.output_type == "DiagnosticReport"
    assert [e.name for e in catalog.find(task="classification")] == [BREAST]
    with pytest.raises(inference_bridge.ModelNotFoundError):
        catalog.get(BREAST, "7")
    with pytest.raises(inference_bridge.ModelNotFoundError):
        catalog.with_placements({"nope": []})


def test_highest_version_wins():
    entry = Catalog.load().get(BREAST)
    catalog = Catalog([entry, entry.model_copy(update={"version": "10"})])
    assert catalog.get(BREAST).version == "10"
    with pytest.raises(ValueError, match="twice"):
        Catalog([entry, entry])


def test_catalog_validation(tmp_path):
    raw = Catalog.load().get(BREAST).model_dump(mode="json")
    with pytest.raises(ValidationError, match="prediction_output"):
        inference_bridge.ModelEntry.model_validate({**raw, "prediction_output": "nope"})
    with pytest.raises(ValidationError, match="endpoint"):
        Placement(backend="triton")
    with pytest.raises(ValidationError, match="letters"):
        inference_bridge.ModelEntry.model_validate({**raw, "name": "../etc"})
    broken = tmp_path / "catalog.yaml"
    broken.write_text(json.dumps({"models": [{**raw, "case_library": "missing.npz"}]}))
    with pytest.raises(FileNotFoundError):
        Catalog.load(broken)


def test_tensors_round_trip_raw_and_typed():
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    encoded = encode_inputs(arrays, {"x": "FP32"})
    assert encoded.nbytes == 24
    assert encoded.sha256 == encode_inputs({"x": arrays["x"].copy()}, {"x": "FP32"}).sha256
    assert encoded.sha256 != encode_inputs({"x": arrays["x"].reshape(3, 2)}, {"x": "FP32"}).sha256
    raw = service_pb2.ModelInferResponse()
    out = raw.outputs.add(name="y", datatype="FP32", shape=[2, 3])
    raw.raw_output_contents.append(arrays["x"].tobytes())
    np.testing.assert_array_equal(decode_outputs(raw, {"y": "FP32"})["y"], arrays["x"])
    typed = service_pb2.ModelInferResponse()
    out = typed.outputs.add(name="y", datatype="INT64", shape=[3])
    out.contents.int64_contents.extend([1, 2, 3])
    np.testing.assert_array_equal(decode_outputs(typed, {"y": "INT64"})["y"], [1, 2, 3])
    with pytest.raises(inference_bridge.BackendRejectedError, match="lacks"):
        decode_outputs(typed, {"z": "INT64"})
    with pytest.raises(inference_bridge.BackendRejectedError, match="came as"):
        decode_outputs(typed, {"y": "FP32"})
    short = service_pb2.ModelInferResponse()
    short.outputs.add(name="y", datatype="FP32", shape=[4])
    short.raw_output_contents.append(b"\0" * 8)
    with pytest.raises(inference_bridge.BackendRejectedError, match="bytes"):
        decode_outputs(short, {"y": "FP32"})
    with pytest.raises(ValueError, match="missing"):
        encode_inputs({}, {"x": "FP32"})


def test_case_library_ranks_and_validates(tmp_path):
    library = inference_bridge.CaseLibrary(
        ["a", "b", "c"],
        np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32),
        ["x", "y", "z"],
        np.array([1.0, 0.0, 1.0]),
    )
    found = library.nearest(np.array([1.0, 0.2]), 2)
    assert [n.case_id for n in found] == ["a", "c"]
    assert math.isclose(found[0].similarity, 1 / math.sqrt(1.04), rel_tol=1e-6)
    library.save(tmp_path / "cases.npz")
    assert [
        n.case_id
        for n in inference_bridge.CaseLibrary.load(tmp_path / "cases.npz").nearest(
            np.array([0.0, 1.0]), 3
        )
    ] == ["b", "c", "a"]
    with pytest.raises(ValueError, match="zeros"):
        library.nearest(np.zeros(2), 1)
    with pytest.raises(ValueError, match="dimensions"):
        library.nearest(np.ones(3), 1)
    with pytest.raises(ValueError, match="all-zero"):
        inference_bridge.CaseLibrary(["a"], np.zeros((1, 2)), ["x"], np.ones(1))


def test_committed_weights_reproduce_the_model_card(samples):
    catalog = Catalog.load()
    breast = build_torch_model(catalog.get(BREAST))
    with torch.inference_mode():
        p, _ = breast(torch.tensor(samples.breast_x, dtype=torch.float32))
    auroc = roc_auc_score(samples.breast_y, p.numpy()[:, 0])
    assert round(float(auroc), 4) == catalog.get(BREAST).card.metrics["auroc"]
    diabetes = build_torch_model(catalog.get(DIABETES))
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    data = load_diabetes(scaled=False)
    _, x_test, _, y_test = train_test_split(data.data, data.target, test_size=0.2, random_state=7)
    with torch.inference_mode():
        q, _ = diabetes(torch.tensor(x_test, dtype=torch.float32))
    assert (
        round(float(r2_score(y_test, q.numpy()[:, 0])), 4)
        == catalog.get(DIABETES).card.metrics["r2"]
    )
    # Reference cases come from the training split only.
    library = inference_bridge.CaseLibrary.load(catalog.get(BREAST).case_library)
    assert len(library) == 455
