"""The backend seam: one call to one placement, and the health of a placement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

from ._catalog import ModelEntry, Placement
from ._tensors import EncodedInputs, Tensors

__all__ = ["BackendCall", "BackendCallError", "InferenceBackend", "PlacementHealth"]


@dataclass(frozen=True, slots=True)
class BackendCall:
    """One attempt to run a model at one placement.

    Attributes:
        entry: The model.
        placement: Where to run it.
        inputs: The encoded inputs; every attempt of a call sends these same bytes.
        request_id: The bridge's request id, sent as the KServe v2 request id.
        timeout: Seconds left of the call's deadline: the gRPC deadline and Triton's
            queue timeout.
        priority: Triton priority level (1 is served first; 0 is the server default).
    """

    entry: ModelEntry
    placement: Placement
    inputs: EncodedInputs
    request_id: str
    timeout: float
    priority: int = 0


class BackendCallError(Exception):
    """A backend call failed with a gRPC status; the router decides whether to retry.

    Attributes:
        code: The gRPC status code.
        detail: The server's or transport's message (no patient data: only tensors left).
    """

    def __init__(self, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(f"{code.name}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PlacementHealth:
    """The answer of a health probe.

    Attributes:
        ready: Server live and model ready.
        detail: Why not, when not ready.
        queue_ratio: Queue time per unit of compute time since the previous probe, from the
            server's statistics; None when the server offers none.
    """

    ready: bool
    detail: str = ""
    queue_ratio: float | None = None


class InferenceBackend(Protocol):
    """A kind of backend (``triton``, ``torch``); one instance serves all its placements."""

    async def infer(self, call: BackendCall) -> Tensors:
        """Run the model once and return its outputs by name.

        Raises:
            BackendCallError: The call failed with a gRPC status (unreachable server,
                deadline, rejected request).
            inference_bridge.BackendRejectedError: The answer does not match the schema.
        """
        ...

    async def probe(self, entry: ModelEntry, placement: Placement, limit: float) -> PlacementHealth:
        """Whether the placement can serve the model now, answered within ``limit`` seconds."""
        ...

    async def close(self) -> None:
        """Release channels, threads and models."""
        ...
