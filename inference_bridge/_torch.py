"""The local torch backend: the catalog's models in process, on CPU or a local CUDA device."""

from __future__ import annotations

import asyncio
import importlib
import threading
from typing import Any

import grpc
import numpy as np
import torch

from ._backend import BackendCall, BackendCallError, PlacementHealth
from ._catalog import ModelEntry, Placement
from ._settings import TorchSettings
from ._tensors import DATATYPES, Tensors

__all__ = ["TorchBackend", "build_torch_model", "torch_device"]


def torch_device(placement: Placement) -> torch.device:
    """The torch device of a placement: its ``device``, else CUDA for GPU vendors.

    ROCm builds of torch address AMD GPUs as ``cuda`` too.
    """
    if placement.device:
        return torch.device(placement.device)
    if placement.vendor in ("nvidia", "amd"):
        return torch.device("cuda")
    return torch.device("cpu")


def build_torch_model(entry: ModelEntry, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Instantiate the entry's architecture and load its weights, in eval mode.

    Raises:
        ValueError: The entry has no torch section, or its architecture is not a Module.
    """
    spec = entry.torch
    if spec is None:
        raise ValueError(f"{entry.key} has no torch section")
    module_name, _, attribute = spec.architecture.partition(":")
    cls = getattr(importlib.import_module(module_name), attribute)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ValueError(f"{spec.architecture} is not a torch.nn.Module class")
    model = cls(**spec.config)
    state = torch.load(spec.weights, map_location=device, weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


class TorchBackend:
    """Runs models in worker threads of the gateway process.

    Models load on first use (or probe) per device and stay loaded. At most
    ``max_concurrency`` calls run at once; a call whose deadline passes while it runs is
    answered DEADLINE_EXCEEDED (the thread finishes its batch in the background).

    Args:
        settings: Backend settings.
    """

    def __init__(self, settings: TorchSettings) -> None:
        self._settings = settings
        self._models: dict[tuple[str, str], torch.nn.Module] = {}
        self._load_lock = threading.Lock()
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        if settings.intra_op_threads is not None:
            torch.set_num_threads(settings.intra_op_threads)

    def _model(self, entry: ModelEntry, device: torch.device) -> torch.nn.Module:
        key = (entry.key, str(device))
        model = self._models.get(key)
        if model is None:
            with self._load_lock:
                model = self._models.get(key)
                if model is None:
                    model = self._models[key] = build_torch_model(entry, device)
        return model

    def _run(self, entry: ModelEntry, device: torch.device, arrays: Tensors) -> Tensors:
        model = self._model(entry, device)
        # Copies: the encoded inputs are read-only views, which torch refuses to wrap.
        args = [torch.from_numpy(np.array(arrays[spec.name])).to(device) for spec in entry.inputs]
        with torch.inference_mode():
            result: Any = model(*args)
        if isinstance(result, torch.Tensor):
            result = (result,)
        if len(result) != len(entry.outputs):
            raise BackendCallError(
                grpc.StatusCode.INTERNAL,
                f"{entry.key} returned {len(result)} tensors for {len(entry.outputs)} outputs",
            )
        return {
            spec.name: tensor.detach().cpu().numpy().astype(DATATYPES[spec.datatype], copy=False)
            for spec, tensor in zip(entry.outputs, result, strict=True)
        }

    async def infer(self, call: BackendCall) -> Tensors:
        """Run the model in a worker thread within the call's time."""
        device = torch_device(call.placement)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendCallError(grpc.StatusCode.UNAVAILABLE, "no CUDA device in this process")
        arrays = call.inputs.arrays()
        try:
            async with asyncio.timeout(call.timeout):
                async with self._slots:
                    return await asyncio.to_thread(self._run, call.entry, device, arrays)
        except TimeoutError as exc:
            raise BackendCallError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the local torch backend ran out of time"
            ) from exc

    async def probe(self, entry: ModelEntry, placement: Placement, limit: float) -> PlacementHealth:
        """Ready when the device exists and the weights load."""
        device = torch_device(placement)
        if device.type == "cuda" and not torch.cuda.is_available():
            return PlacementHealth(False, "no CUDA device in this process")
        await asyncio.to_thread(self._model, entry, device)
        return PlacementHealth(True)

    async def close(self) -> None:
        """Drop the loaded models."""
        with self._load_lock:
            self._models.clear()
