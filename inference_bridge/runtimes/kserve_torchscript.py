"""KServe ModelServer serving TorchScript models exported by ``his models export``.

Run with the Python of an environment holding ``kserve`` and ``torch``::

    python kserve_torchscript.py --repository REPO --models a,b --grpc_port P --http_port Q

Each model is ``REPO/<name>/<version>/model.pt``; ``--outputs`` names the output tensors in
the order the modules return them. ``--contents typed`` answers in the typed
``InferTensorContents`` fields instead of raw bytes, as several KServe servers do.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from kserve import (  # type: ignore[import-not-found, unused-ignore]
    InferOutput,
    InferResponse,
    Model,
    ModelServer,
    model_server,
)

torch.set_num_threads(1)


class TorchScriptModel(Model):  # type: ignore[misc, unused-ignore]
    """Runs one TorchScript module."""

    def __init__(self, name: str, path: Path, outputs: list[str], typed: bool) -> None:
        super().__init__(name)
        self._path = path
        self._outputs = outputs
        self._typed = typed
        self.load()

    def load(self) -> bool:
        """Load the module."""
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
            )
            self._module = torch.jit.load(str(self._path), map_location="cpu")  # type: ignore[no-untyped-call]
        self._module.eval()
        self.ready = True
        return True

    async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        """Run the module on the request's inputs."""
        arrays = [torch.from_numpy(np.array(item.as_numpy())) for item in payload.inputs]
        with torch.inference_mode():
            result = self._module(*arrays)
        if isinstance(result, torch.Tensor):
            result = (result,)
        outputs = []
        for name, tensor in zip(self._outputs, result, strict=True):
            array = tensor.numpy()
            if self._typed:
                output = InferOutput(
                    name=name,
                    shape=list(array.shape),
                    datatype="FP32",
                    data=array.reshape(-1).tolist(),
                )
            else:
                output = InferOutput(name=name, shape=list(array.shape), datatype="FP32")
                output.set_data_from_numpy(array)
            outputs.append(output)
        return InferResponse(model_name=self.name, infer_outputs=outputs, response_id=payload.id)


def main() -> None:
    """Serve the models named on the command line."""
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--models", required=True, help="comma-separated model names")
    parser.add_argument("--outputs", default="prediction__0,embedding__1")
    parser.add_argument("--contents", choices=["raw", "typed"], default="raw")
    args, _ = parser.parse_known_args()
    outputs = args.outputs.split(",")
    models = []
    for name in args.models.split(","):
        versions = sorted(p for p in (args.repository / name).iterdir() if p.name.isdigit())
        path = versions[-1] / "model.pt"
        models.append(TorchScriptModel(name, path, outputs, args.contents == "typed"))
    ModelServer(grpc_port=args.grpc_port, http_port=args.http_port).start(models)


if __name__ == "__main__":
    main()
