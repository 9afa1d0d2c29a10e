"""Serve catalog models on MLServer or KServe ModelServer (KServe v2 peers of Triton)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._catalog import Catalog
from ._export import ExportedModel, export_triton_repository

__all__ = [
    "KSERVE_RUNTIME",
    "MLSERVER_RUNTIME",
    "kserve_arguments",
    "write_mlserver_repository",
]

_RUNTIMES = Path(__file__).resolve().parent / "runtimes"
MLSERVER_RUNTIME = _RUNTIMES / "mlserver_torchscript.py"
"""The MLServer runtime module (copied into each model folder)."""
KSERVE_RUNTIME = _RUNTIMES / "kserve_torchscript.py"
"""The KServe ModelServer script."""


def write_mlserver_repository(
    catalog: Catalog,
    out: Path,
    *,
    models: Sequence[str] = (),
    delay_seconds: Mapping[str, float] | None = None,
) -> list[ExportedModel]:
    """Export models for NVIDIA (TorchScript) and add MLServer's model settings.

    The result is both a Triton model repository and an MLServer one: each model folder
    holds ``config.pbtxt``, ``<version>/model.pt``, ``model-settings.json`` and the runtime.

    Args:
        catalog: Where the models come from.
        out: The repository folder.
        models: Names to export; empty for every model with a torch section.
        delay_seconds: Added service time per model name (load and deadline tests).
    """
    exported = export_triton_repository(catalog, out, accelerator="nvidia-mlserver", models=models)
    delays = dict(delay_seconds or {})
    for item in exported:
        entry = catalog.get(item.key)
        extra: dict[str, object] = {"outputs": [o.name for o in entry.outputs]}
        if entry.name in delays:
            extra["delay_seconds"] = delays[entry.name]
        settings = {
            "name": entry.name,
            "implementation": f"{MLSERVER_RUNTIME.stem}.TorchScriptModel",
            "parameters": {
                "uri": str(item.model_file.relative_to(item.directory)),
                "version": entry.version,
                "extra": extra,
            },
        }
        (item.directory / "model-settings.json").write_text(json.dumps(settings, indent=2))
        shutil.copyfile(MLSERVER_RUNTIME, item.directory / MLSERVER_RUNTIME.name)
    return exported


def kserve_arguments(
    repository: Path,
    models: Sequence[str],
    *,
    grpc_port: int,
    http_port: int,
    typed_contents: bool = False,
) -> list[str]:
    """Command-line arguments of :data:`KSERVE_RUNTIME` for models exported to ``repository``."""
    return [
        str(KSERVE_RUNTIME),
        "--repository",
        str(repository),
        "--models",
        ",".join(models),
        "--grpc_port",
        str(grpc_port),
        "--http_port",
        str(http_port),
        "--contents",
        "typed" if typed_contents else "raw",
    ]
