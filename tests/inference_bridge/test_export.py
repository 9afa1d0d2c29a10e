"""Triton repositories per accelerator: configs parsed with tritonclient's model-config proto."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime
import pytest
import torch
from click.testing import CliRunner
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

import inference_bridge
from inference_bridge._export import export_triton_repository
from inference_bridge._torch import build_torch_model
from tests.inference_bridge.ib_helpers import BREAST, DIABETES, GENERALIST


def parse(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def reference(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = build_torch_model(inference_bridge.Catalog.load().get(name))
    with torch.inference_mode():
        prediction, embedding = model(torch.tensor(x))
    return prediction.numpy(), embedding.numpy()


@pytest.mark.parametrize(
    ("accelerator", "platform", "kind", "file"),
    [
        ("nvidia-h100", "pytorch_libtorch", "KIND_GPU", "model.pt"),
        ("amd-mi300x", "onnxruntime_onnx", "KIND_GPU", "model.onnx"),
        ("ascend-910b", "onnxruntime_onnx", "KIND_MODEL", "model.onnx"),
        ("cpu", "onnxruntime_onnx", "KIND_CPU", "model.onnx"),
    ],
)
def test_repository_per_accelerator(tmp_path, samples, accelerator, platform, kind, file):
    catalog = inference_bridge.Catalog.load()
    exported = export_triton_repository(catalog, tmp_path, accelerator=accelerator)
    assert sorted(e.key for e in exported) == sorted(
        f"{n}@1" for n in (BREAST, DIABETES, GENERALIST)
    )
    config = parse(tmp_path / BREAST / "config.pbtxt")
    assert config.name == BREAST
    assert config.platform == platform
    assert config.max_batch_size == 64
    assert [(i.name, list(i.dims)) for i in config.input] == [("features__0", [30])]
    assert [(o.name, list(o.dims)) for o in config.output] == [
        ("prediction__0", [1]),
        ("embedding__1", [16]),
    ]
    assert model_config_pb2.DataType.Name(config.input[0].data_type) == "TYPE_FP32"
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == kind
    assert list(config.version_policy.specific.versions) == [1]
    batching = config.dynamic_batching
    assert (batching.priority_levels, batching.default_priority_level) == (2, 2)
    assert batching.default_queue_policy.allow_timeout_override
    if accelerator.startswith("amd"):
        accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
        assert [a.name for a in accelerators] == ["migraphx"]
    if accelerator.startswith("ascend"):
        assert config.parameters["execution_provider"].string_value == "CANNExecutionProvider"
    model_file = tmp_path / BREAST / "1" / file
    x = samples.breast_x[:4].astype(np.float32)
    want_prediction, want_embedding = reference(BREAST, x)
    if file == "model.pt":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated")
            module = torch.jit.load(str(model_file))
        with torch.inference_mode():
            prediction, embedding = (t.numpy() for t in module(torch.tensor(x)))
    else:
        session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["features__0"]
        prediction, embedding = session.run(["prediction__0", "embedding__1"], {"features__0": x})
    np.testing.assert_allclose(prediction, want_prediction, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(embedding, want_embedding, rtol=1e-4, atol=1e-5)


def test_export_refuses_non_integer_versions(tmp_path):
    entry = inference_bridge.Catalog.load().get(BREAST).model_copy(update={"version": "1.2"})
    with pytest.raises(ValueError, match="integer"):
        export_triton_repository(inference_bridge.Catalog([entry]), tmp_path, accelerator="cpu")


def test_cli_lists_and_exports(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(inference_bridge.models, ["list"])
    assert listed.exit_code == 0, listed.output
    assert f"{BREAST}@1\tclassification\tRiskAssessment\tresearch\ttorch:cpu@local" in listed.output
    exported = runner.invoke(
        inference_bridge.models,
        [
            "export",
            "--target",
            "triton",
            "--accelerator",
            "amd-mi300x",
            "--accelerator",
            "cpu",
            "--model",
            DIABETES,
            "--out",
            str(tmp_path),
        ],
    )
    assert exported.exit_code == 0, exported.output
    assert parse(tmp_path / "amd-mi300x" / DIABETES / "config.pbtxt").platform == "onnxruntime_onnx"
    assert (tmp_path / "cpu" / DIABETES / "1" / "model.onnx").is_file()
    missing = runner.invoke(
        inference_bridge.models,
        ["export", "--accelerator", "cpu", "--model", "nope", "--out", str(tmp_path)],
    )
    assert missing.exit_code == 1 and "no model nope" in missing.output
