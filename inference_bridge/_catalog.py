"""The model catalog: what each model is, how FHIR maps onto its tensors, and where it runs."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._errors import ModelNotFoundError

__all__ = [
    "SHIPPED_CATALOG",
    "Backend",
    "Catalog",
    "Coding",
    "FeatureSpec",
    "FhirMapping",
    "ModelCard",
    "ModelEntry",
    "Placement",
    "TensorSpec",
    "TorchSpec",
]

SHIPPED_CATALOG = Path(__file__).resolve().parent / "models" / "catalog.yaml"
"""The catalog of the shipped specialists, with local torch placements only."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backend(enum.StrEnum):
    """Where a placement runs."""

    TRITON = "triton"
    """A KServe v2 gRPC server (Triton, MLServer, KServe ModelServer) via tritonclient."""
    TORCH = "torch"
    """The gateway process itself, on CPU or a local CUDA device."""


class TensorSpec(_Frozen):
    """One input or output tensor of a model."""

    name: str
    """Tensor name on the wire; ``<name>__<index>`` so Triton's libtorch backend accepts it."""
    datatype: str = "FP32"
    """KServe v2 datatype (``FP32``, ``INT64`` ...)."""
    shape: tuple[int, ...]
    """Dimensions with ``-1`` for variable ones; the first is the batch."""


class Coding(_Frozen):
    """A code from a code system."""

    system: str
    """The code system URI."""
    code: str
    """The code."""
    display: str | None = None
    """Human-readable text for the code."""


class FeatureSpec(_Frozen):
    """One coded input feature: which Observation supplies the value at one tensor position."""

    system: str
    """Code system of the Observation code that carries the value."""
    code: str
    """The Observation code."""
    display: str
    """What the feature measures."""
    unit: str | None = None
    """UCUM code the ``valueQuantity`` must carry; None accepts any unit or none."""

    @property
    def key(self) -> str:
        """``system|code``: the key of this feature in a request's ``features`` map."""
        return f"{self.system}|{self.code}"


class FhirMapping(_Frozen):
    """How FHIR inputs become tensors and outputs become FHIR resources."""

    input_types: tuple[str, ...] = ("Observation",)
    """Resource types a request may carry as input."""
    output_type: Literal["Observation", "RiskAssessment", "DiagnosticReport"]
    """The resource type of the result; also what the caller needs a scope to create."""
    preprocessor: str
    """Import string ``module:attribute`` of a :class:`inference_bridge.Preprocessor`."""
    postprocessor: str
    """Import string of a :class:`inference_bridge.Postprocessor`."""
    features: tuple[FeatureSpec, ...] = ()
    """Coded features in tensor order (for feature-based preprocessors)."""
    result_code: Coding
    """Code of the result (Observation/DiagnosticReport code, RiskAssessment outcome)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Processor options (units, thresholds, which outputs to read)."""


class ModelCard(_Frozen):
    """What a clinician or auditor needs to judge the model."""

    description: str
    """What the model does, in a sentence or two."""
    authors: tuple[str, ...]
    """Who built it."""
    training_data: str
    """The data set and its source."""
    intended_use: str
    """Who may use it for what, and what not."""
    validation_status: Literal["research", "internally-validated", "clinically-validated"]
    """How far it has been validated."""
    license: str
    """Licence of the weights (SPDX identifier)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Held-out metrics; filled from ``metrics_file`` when that is set."""
    metrics_file: Path | None = None
    """JSON file written by the training script whose ``held_out`` object holds the metrics."""


class TorchSpec(_Frozen):
    """How the local torch backend builds the model."""

    architecture: str
    """Import string of the ``torch.nn.Module`` class."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the class."""
    weights: Path
    """State dict file (loaded with ``weights_only=True``)."""
    onnx: Path | None = None
    """ONNX copy of the same network, for exports to ONNX Runtime."""


class Placement(_Frozen):
    """One place a model runs."""

    backend: Backend
    """``triton`` (any KServe v2 gRPC server) or ``torch`` (in process)."""
    endpoint: str = ""
    """``host:port`` of the KServe v2 gRPC server; empty for ``torch``."""
    accelerator: str = "cpu"
    """Accelerator kind, ``<vendor>-<model>``: ``nvidia-h100``, ``amd-mi300x``,
    ``ascend-910b``, ``cpu``."""
    priority: int = 0
    """Lower is preferred among placements that routing policy ranks equal."""
    site: str | None = None
    """Data centre or hospital site, for site preferences."""
    region: str | None = None
    """Jurisdiction the data stays in, for data-residency rules."""
    max_message_bytes: int | None = None
    """The server's gRPC receive cap; inputs larger than this are never sent there. None
    uses ``InferenceSettings.triton.max_message_bytes``."""
    server_model_name: str | None = None
    """The model's name on the server when it differs from the catalog name."""
    server_model_version: str | None = None
    """The version on the server; None sends the catalog version, ``""`` none (servers
    without versions, such as KServe ModelServer)."""
    device: str | None = None
    """torch device (``cpu``, ``cuda``, ``cuda:1``); None derives it from ``accelerator``."""

    @model_validator(mode="after")
    def _check(self) -> Placement:
        if self.backend is Backend.TRITON and not self.endpoint:
            raise ValueError("a triton placement needs an endpoint (host:port)")
        return self

    @property
    def vendor(self) -> str:
        """The accelerator vendor: the part of ``accelerator`` before the first dash."""
        return self.accelerator.split("-", 1)[0]

    @property
    def label(self) -> str:
        """``backend:accelerator@endpoint``, for logs and errors."""
        where = self.endpoint or "local"
        return f"{self.backend.value}:{self.accelerator}@{where}"


class ModelEntry(_Frozen):
    """One model version in the catalog."""

    name: str
    """Model name, unique with ``version``."""
    version: str
    """Model version (digits for Triton repositories)."""
    task: Literal["classification", "regression", "generalist"]
    """What the model predicts."""
    modality: str = "tabular"
    """Input modality (``tabular``, ``image``, ``signal``, ``text``)."""
    inputs: tuple[TensorSpec, ...]
    """Input tensors, in the order backends receive them."""
    outputs: tuple[TensorSpec, ...]
    """Output tensors."""
    prediction_output: str
    """Output holding the prediction the postprocessor reports."""
    embedding_output: str | None = None
    """Output holding the embedding that consults search the case library with."""
    fhir: FhirMapping
    """FHIR input and output mapping."""
    card: ModelCard
    """The model card."""
    torch: TorchSpec | None = None
    """How to run the model in process; required by ``torch`` placements and exports."""
    case_library: Path | None = None
    """Reference case library (``.npz``) of this model's embeddings."""
    allowed_roles: tuple[str, ...] = ()
    """When set, the caller needs one of these roles, beside the policy's decision."""
    risk: Literal["low", "medium", "high"] = "medium"
    """Risk of the model's ``infer_<model>`` tool in the gateway's tool registry."""
    placements: tuple[Placement, ...] = ()
    """Where it runs."""

    @field_validator("name", "version")
    @classmethod
    def _safe(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} must be 1-63 letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _check(self) -> ModelEntry:
        outputs = {o.name for o in self.outputs}
        if self.prediction_output not in outputs:
            raise ValueError(f"prediction_output {self.prediction_output!r} is not an output")
        if self.embedding_output is not None and self.embedding_output not in outputs:
            raise ValueError(f"embedding_output {self.embedding_output!r} is not an output")
        if self.case_library is not None and self.embedding_output is None:
            raise ValueError("a case library needs embedding_output")
        if any(p.backend is Backend.TORCH for p in self.placements) and self.torch is None:
            raise ValueError("a torch placement needs the torch section")
        return self

    @property
    def key(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


def _resolve(base: Path, path: Path | None) -> Path | None:
    if path is None:
        return None
    return path if path.is_absolute() else (base / path).resolve()


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    entry = ModelEntry.model_validate(raw)
    card = entry.card
    metrics = dict(card.metrics)
    metrics_file = _resolve(base, card.metrics_file)
    if metrics_file is not None:
        held_out = json.loads(metrics_file.read_text())["held_out"]
        metrics.update({str(k): float(v) for k, v in held_out.items()})
    updates: dict[str, Any] = {
        "card": card.model_copy(update={"metrics": metrics, "metrics_file": metrics_file}),
        "case_library": _resolve(base, entry.case_library),
    }
    if entry.torch is not None:
        updates["torch"] = entry.torch.model_copy(
            update={
                "weights": _resolve(base, entry.torch.weights),
                "onnx": _resolve(base, entry.torch.onnx),
            }
        )
    return entry.model_copy(update=updates).model_dump()


def _version_key(version: str) -> tuple[int, ...] | tuple[float, str]:
    parts = version.split(".")
    if all(p.isdigit() for p in parts):
        return tuple(int(p) for p in parts)
    return (float("-inf"), version)


class Catalog:
    """The models the bridge serves, by name and version.

    Args:
        entries: Model entries; ``name@version`` must be unique.

    Raises:
        ValueError: Two entries share a name and version.
    """

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._entries: dict[str, ModelEntry] = {}
        for entry in entries:
            if entry.key in self._entries:
                raise ValueError(f"model {entry.key} is listed twice")
            self._entries[entry.key] = entry

    @classmethod
    def load(cls, *paths: Path) -> Catalog:
        """Load YAML catalog files (``models:`` list); relative paths resolve per file.

        Raises:
            FileNotFoundError: A catalog, weights, metrics or case file is missing.
            pydantic.ValidationError: An entry does not match the schema.
        """
        entries: list[ModelEntry] = []
        for path in paths or (SHIPPED_CATALOG,):
            document = yaml.safe_load(Path(path).read_text()) or {}
            base = Path(path).resolve().parent
            for raw in document.get("models", []):
                entry = ModelEntry.model_validate(_resolve_paths(raw, base))
                files = [entry.case_library, entry.torch.weights if entry.torch else None]
                for file in files:
                    if file is not None and not file.is_file():
                        raise FileNotFoundError(f"{entry.key}: {file} does not exist")
                entries.append(entry)
        return cls(entries)

    def with_placements(self, placements: Mapping[str, Sequence[Placement]]) -> Catalog:
        """A copy whose entries named in ``placements`` (``name`` or ``name@version``) run there.

        Raises:
            ModelNotFoundError: A key names no model.
        """
        replaced = dict(self._entries)
        for key, where in placements.items():
            targets = [e for e in self._entries.values() if key in (e.name, e.key)]
            if not targets:
                raise ModelNotFoundError(f"placements are configured for unknown model {key}")
            for entry in targets:
                replaced[entry.key] = ModelEntry.model_validate(
                    entry.model_copy(update={"placements": tuple(where)}).model_dump()
                )
        return Catalog(replaced.values())

    def entries(self) -> list[ModelEntry]:
        """Every entry, by name then version."""
        return sorted(self._entries.values(), key=lambda e: (e.name, _version_key(e.version)))

    def find(self, *, task: str | None = None, modality: str | None = None) -> list[ModelEntry]:
        """Entries matching a task and modality (None matches any)."""
        return [
            e
            for e in self.entries()
            if (task is None or e.task == task) and (modality is None or e.modality == modality)
        ]

    def get(self, name: str, version: str | None = None) -> ModelEntry:
        """The entry ``name@version``, or the highest version of ``name``.

        ``name`` may itself be ``name@version``.

        Raises:
            ModelNotFoundError: No such model or version.
        """
        if version is None and "@" in name:
            name, version = name.split("@", 1)
        if version:
            entry = self._entries.get(f"{name}@{version}")
            if entry is None:
                raise ModelNotFoundError(f"no model {name} version {version} in the catalog")
            return entry
        versions = [e for e in self._entries.values() if e.name == name]
        if not versions:
            raise ModelNotFoundError(f"no model {name} in the catalog")
        return max(versions, key=lambda e: _version_key(e.version))
