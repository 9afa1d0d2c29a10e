"""MLServer runtime serving TorchScript models exported by ``his models export`` over KServe v2.

MLServer imports this file from each model folder that ``write_mlserver_repository`` writes;
it needs only ``mlserver``, ``numpy`` and ``torch`` (not this project). Model settings
``parameters.extra``: ``outputs`` (output tensor names in the order the module returns them)
and optionally ``delay_seconds`` (added service time, to stand in for a slower accelerator in
load and deadline tests).
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import numpy as np
import torch
from mlserver import MLModel  # type: ignore[import-not-found, unused-ignore]
from mlserver.codecs import NumpyCodec  # type: ignore[import-not-found, unused-ignore]
from mlserver.types import InferenceResponse  # type: ignore[import-not-found, unused-ignore]
from mlserver.utils import get_model_uri  # type: ignore[import-not-found, unused-ignore]

# One thread per server process: tests run several peers on small machines.
torch.set_num_threads(1)


class TorchScriptModel(MLModel):  # type: ignore[misc, unused-ignore]
    """Runs a TorchScript module; inputs in request order, outputs named by the settings."""

    async def load(self) -> bool:
        """Load the module named by the model settings' ``uri``."""
        uri = await get_model_uri(self._settings)
        extra: dict[str, Any] = dict(self._settings.parameters.extra or {})
        self._outputs = [str(name) for name in extra["outputs"]]
        self._delay = float(extra.get("delay_seconds", 0.0))
        # TorchScript is what Triton's libtorch backend serves; torch marks the API deprecated.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
            )
            self._module = torch.jit.load(uri, map_location="cpu")  # type: ignore[no-untyped-call]
        self._module.eval()
        return True

    async def predict(self, payload: Any) -> Any:
        """Run the module on the request's inputs."""
        arrays = [torch.from_numpy(np.array(NumpyCodec.decode_input(i))) for i in payload.inputs]
        if self._delay > 0:
            await asyncio.sleep(self._delay)
        with torch.inference_mode():
            result = self._module(*arrays)
        if isinstance(result, torch.Tensor):
            result = (result,)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output(name, tensor.numpy())
                for name, tensor in zip(self._outputs, result, strict=True)
            ],
        )
