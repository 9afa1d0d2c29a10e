"""The audit hook: one record per inference call, for the gateway's audit pipeline."""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    # Annotations only. The gateway's config imports this package's settings, and
    # his_sdk.auth, his_sdk.policy and his_sdk.server import that config, so nothing here
    # imports them when the package loads.
    import his_sdk.auth

__all__ = ["InferenceAuditRecord", "InferenceAuditSink", "InferenceOutcome"]


class InferenceOutcome(enum.StrEnum):
    """How an inference call ended."""

    SUCCESS = "success"
    DENIED = "denied"
    """Authentication or authorization refused it."""
    INVALID = "invalid"
    """The request was malformed, too large or named an unknown model."""
    FAILED = "failed"
    """Backends failed or the deadline passed."""


@dataclass(frozen=True, slots=True)
class InferenceAuditRecord:
    """What happened in one inference call (one model run; a consult makes one per model).

    Placement fields are None when the call ended before a placement answered.

    Attributes:
        request_id: The gateway call's request id.
        inference_id: This model run's id: the KServe v2 request id and the results'
            identifier (the request id itself, or ``<request id>:<model>`` in a consult).
        operation: ``infer`` or ``consult``.
        model: Model name; empty when the call failed before naming a known model (one
            record then stands for the whole call).
        version: Model version; empty likewise.
        output_type: FHIR type of the results; empty likewise.
        backend: ``triton`` or ``torch``.
        endpoint: ``host:port`` of the server, empty for torch.
        accelerator: Accelerator kind of the placement.
        input_sha256: Hash of the encoded input tensors (None before encoding).
        principal: The verified caller.
        patient_id: The patient the call names, if any.
        outcome: How it ended.
        error: The error that ended it; None on success. Messages of ``HisError`` hold no
            patient data.
        attempts: Attempts made across placements.
        failed_placements: Placements that failed before the answering one.
        result_ids: ``Type/id`` of the results (Device and Provenance excluded).
        started_at: When the call started (UTC).
        duration_ms: Wall time of the call.
    """

    request_id: str
    inference_id: str
    operation: str
    model: str
    version: str
    output_type: str
    backend: str | None
    endpoint: str | None
    accelerator: str | None
    input_sha256: str | None
    principal: his_sdk.auth.Principal | None
    patient_id: str | None
    outcome: InferenceOutcome
    error: BaseException | None
    attempts: int
    failed_placements: tuple[str, ...]
    result_ids: tuple[str, ...]
    started_at: datetime.datetime
    duration_ms: float


class InferenceAuditSink(Protocol):
    """Receives every :class:`InferenceAuditRecord`; the gateway connects its audit trail.

    The bridge awaits the sink before it answers: an exception raised here fails the call,
    so no result leaves without its audit record.
    """

    async def __call__(self, record: InferenceAuditRecord) -> None:
        """Record one inference call."""
        ...
