"""Export catalog models as a Triton model repository for one accelerator kind."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2  # type: ignore[import-untyped]

from ._catalog import Catalog, ModelEntry
from ._torch import build_torch_model

__all__ = ["ExportedModel", "export_torchscript", "export_triton_repository", "model_format"]

_DATA_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}


@dataclass(frozen=True, slots=True)
class ExportedModel:
    """One model written into a repository.

    Attributes:
        key: ``name@version``.
        directory: The model's folder (holding ``config.pbtxt`` and the version folder).
        model_file: The weights file inside the version folder.
        format: ``torchscript`` or ``onnx``.
        accelerator: The accelerator kind it was configured for.
    """

    key: str
    directory: Path
    model_file: Path
    format: str
    accelerator: str


def model_format(accelerator: str) -> str:
    """The weights format Triton runs on an accelerator kind.

    NVIDIA GPUs run TorchScript on the libtorch backend; AMD GPUs (ONNX Runtime with
    MIGraphX), Ascend NPUs (ONNX Runtime with the CANN provider) and CPUs run ONNX.
    """
    return "torchscript" if accelerator.split("-", 1)[0] == "nvidia" else "onnx"


def export_torchscript(entry: ModelEntry, path: Path) -> None:
    """Trace the entry's torch model on CPU and save it as TorchScript."""
    model = build_torch_model(entry, "cpu")
    example = torch.zeros([2 if d == -1 else d for d in entry.inputs[0].shape], dtype=torch.float32)
    # Triton's libtorch backend loads TorchScript only; torch 2.9+ marks the jit API
    # deprecated, which is about new projects, not about this file format.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        traced = torch.jit.trace(model, (example,), check_trace=True)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))


def _config(
    entry: ModelEntry,
    accelerator: str,
    *,
    max_batch_size: int,
    priority_levels: int,
    instance_count: int,
) -> model_config_pb2.ModelConfig:
    vendor = accelerator.split("-", 1)[0]
    fmt = model_format(accelerator)
    config = model_config_pb2.ModelConfig(name=entry.name, max_batch_size=max_batch_size)
    config.platform = "pytorch_libtorch" if fmt == "torchscript" else "onnxruntime_onnx"
    config.default_model_filename = "model.pt" if fmt == "torchscript" else "model.onnx"
    config.version_policy.specific.versions.append(int(entry.version))
    for specs, target in ((entry.inputs, config.input), (entry.outputs, config.output)):
        for spec in specs:
            tensor = target.add()
            tensor.name = spec.name
            tensor.data_type = model_config_pb2.DataType.Value(_DATA_TYPES[spec.datatype])
            # With max_batch_size > 0 Triton adds the batch dimension itself.
            tensor.dims.extend(spec.shape[1:] if max_batch_size > 0 else spec.shape)
    if max_batch_size > 0:
        batching = config.dynamic_batching
        batching.max_queue_delay_microseconds = 100
        batching.priority_levels = priority_levels
        batching.default_priority_level = priority_levels
        # Honour each request's timeout parameter (the bridge's remaining deadline).
        batching.default_queue_policy.timeout_action = model_config_pb2.ModelQueuePolicy.REJECT
        batching.default_queue_policy.allow_timeout_override = True
    group = config.instance_group.add()
    group.count = instance_count
    if vendor == "cpu":
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_CPU
    elif vendor == "ascend":
        # Triton has no NPU instance kind; the backend places the model itself.
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_MODEL
        config.parameters["execution_provider"].string_value = "CANNExecutionProvider"
    else:
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_GPU
    if vendor == "amd":
        accelerator_config = (
            config.optimization.execution_accelerators.gpu_execution_accelerator.add()
        )
        accelerator_config.name = "migraphx"
    return config


def export_triton_repository(
    catalog: Catalog,
    out: Path,
    *,
    accelerator: str,
    models: Sequence[str] = (),
    max_batch_size: int = 64,
    priority_levels: int = 2,
    instance_count: int = 1,
) -> list[ExportedModel]:
    """Write ``<out>/<name>/config.pbtxt`` and ``<out>/<name>/<version>/model.*`` per model.

    Args:
        catalog: Where the models come from.
        out: The repository folder (created; existing model folders are replaced).
        accelerator: Accelerator kind (``nvidia-h100``, ``amd-mi300x``, ``ascend-910b``,
            ``cpu``).
        models: Names (or ``name@version``) to export; empty exports every model with a
            torch section.
        max_batch_size: Triton's dynamic batching limit (0 disables batching).
        priority_levels: Priority levels of the dynamic batcher (STAT and routine).
        instance_count: Model instances per device.

    Raises:
        ValueError: A version is not an integer (Triton versions are), or an ONNX export
            lacks the entry's ONNX file.
        inference_bridge.ModelNotFoundError: A named model is not in the catalog.
    """
    entries = (
        [catalog.get(m) for m in models]
        if models
        else [e for e in catalog.entries() if e.torch is not None]
    )
    fmt = model_format(accelerator)
    out.mkdir(parents=True, exist_ok=True)
    exported = []
    for entry in entries:
        if not entry.version.isdigit():
            raise ValueError(f"{entry.key}: Triton needs integer versions")
        if entry.torch is None:
            raise ValueError(f"{entry.key} has no torch section to export from")
        directory = out / entry.name
        if directory.exists():
            shutil.rmtree(directory)
        version_dir = directory / entry.version
        version_dir.mkdir(parents=True)
        if fmt == "torchscript":
            model_file = version_dir / "model.pt"
            export_torchscript(entry, model_file)
        else:
            if entry.torch.onnx is None or not entry.torch.onnx.is_file():
                raise ValueError(f"{entry.key} has no ONNX copy; run the training script")
            model_file = version_dir / "model.onnx"
            shutil.copyfile(entry.torch.onnx, model_file)
        config = _config(
            entry,
            accelerator,
            max_batch_size=max_batch_size,
            priority_levels=priority_levels,
            instance_count=instance_count,
        )
        (directory / "config.pbtxt").write_text(text_format.MessageToString(config))
        exported.append(ExportedModel(entry.key, directory, model_file, fmt, accelerator))
    return exported
