"""Settings of the inference bridge: the ``inference`` section of the gateway configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ._catalog import Placement

__all__ = [
    "BreakerSettings",
    "ConsultSettings",
    "InferenceSettings",
    "RoutingSettings",
    "TorchSettings",
    "TritonSettings",
]


class _Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never falls back to a default."""

    model_config = ConfigDict(extra="forbid")


class RoutingSettings(_Section):
    """How a placement is chosen and how failures are retried."""

    prefer_vendors: list[str] = Field(default_factory=list)
    """Accelerator vendors in order of preference (``nvidia``, ``amd``, ``ascend``, ``cpu``);
    unlisted vendors come after listed ones."""
    prefer_sites: list[str] = Field(default_factory=list)
    """Sites in order of preference; unlisted sites come after listed ones."""
    allowed_regions: list[str] = Field(default_factory=list)
    """Data residency: when set, only placements whose ``region`` is listed are used (a
    placement without a region is then excluded)."""
    health_interval_seconds: float = 5.0
    """How often every placement is probed (server live, model ready, statistics)."""
    probe_timeout_seconds: float = 1.0
    """Deadline of one health probe."""
    max_attempts: int = Field(default=3, ge=1)
    """Attempts per call, across placements (failover) and on the same one (retry)."""
    retry_backoff_seconds: float = 0.05
    """Pause before retrying the same placement (failover to another one does not wait)."""
    retry_codes: list[str] = Field(default_factory=lambda: ["UNAVAILABLE"])
    """gRPC status names on which a call is retried: codes that say the request was not
    processed. Inference is a pure function, so a resend cannot duplicate an effect."""


class BreakerSettings(_Section):
    """Circuit breaker per placement."""

    failure_threshold: int = Field(default=3, ge=1)
    """Consecutive failures that open the circuit (no calls are routed there)."""
    open_seconds: float = 10.0
    """How long the circuit stays open before a probe may close it again."""


class TritonSettings(_Section):
    """KServe v2 gRPC clients (``tritonclient.grpc.aio``)."""

    channels_per_endpoint: int = Field(default=2, ge=1)
    """gRPC channels per server, used in turn (each channel is one HTTP/2 connection)."""
    max_message_bytes: int = 64 * 1024 * 1024
    """The receive cap assumed for servers whose placement sets none (Triton and MLServer
    accept their configured ``grpc_max_message_length``; gRPC's own default is 4 MiB)."""
    envelope_bytes: int = 4096
    """Bytes added to the tensor payload for names, shapes and parameters when checking a
    message against a cap."""


class TorchSettings(_Section):
    """The in-process torch backend."""

    max_concurrency: int = Field(default=2, ge=1)
    """Inference calls running at once in worker threads."""
    intra_op_threads: int | None = None
    """``torch.set_num_threads`` for the process; None leaves torch's default."""


class ConsultSettings(_Section):
    """Specialist consults."""

    default_top_k: int = Field(default=5, ge=1)
    """Reference cases retrieved per specialist when the request does not say."""
    max_top_k: int = Field(default=50, ge=1)
    """Most reference cases a request may ask for."""
    generalist: str | None = None
    """Catalog name (or ``name@version``) of the generalist model that consults call when
    asked to; None offers no generalist."""


class InferenceSettings(_Section):
    """The inference bridge: catalog, routing, backends and consults."""

    enabled: bool = True
    """Serve ``InferenceService`` on the gateway."""
    catalog_files: list[Path] = Field(default_factory=list)
    """YAML catalogs; empty loads the shipped catalog (local torch placements only)."""
    placements: dict[str, list[Placement]] = Field(default_factory=dict)
    """Placements replacing a model's catalog placements, keyed by ``name`` or
    ``name@version``: where a deployment adds its Triton servers."""
    default_timeout_seconds: float = 10.0
    """End-to-end deadline of a call whose caller set none."""
    max_timeout_seconds: float = 60.0
    """Longest deadline honoured; longer caller deadlines are cut to this."""
    priority_levels: dict[str, int] = Field(default_factory=lambda: {"stat": 1, "routine": 2})
    """Triton priority level per request priority (1 is served first); the exported model
    configurations declare as many levels as the highest value here."""
    max_input_bytes: int = 16 * 1024 * 1024
    """Largest encoded input a call may send, whatever the placements accept."""
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    """Placement choice, failover and retries."""
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    """Circuit breaker per placement."""
    triton: TritonSettings = Field(default_factory=TritonSettings)
    """KServe v2 gRPC clients."""
    torch: TorchSettings = Field(default_factory=TorchSettings)
    """The local torch backend."""
    consult: ConsultSettings = Field(default_factory=ConsultSettings)
    """Specialist consults."""
