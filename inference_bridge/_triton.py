"""The Triton backend: KServe v2 gRPC through ``tritonclient.grpc.aio`` with channel pools."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import tritonclient.grpc as triton_grpc  # type: ignore[import-untyped]
import tritonclient.grpc.aio as triton_aio  # type: ignore[import-untyped]
from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]

from ._backend import BackendCall, BackendCallError, PlacementHealth
from ._catalog import ModelEntry, Placement
from ._settings import TritonSettings
from ._tensors import Tensors, decode_outputs

__all__ = ["TritonBackend"]

_log = logging.getLogger(__name__)


def _status(exc: InferenceServerException) -> grpc.StatusCode:
    # tritonclient reports the gRPC code as the text "StatusCode.UNAVAILABLE"; client-side
    # failures carry none.
    text = exc.status() or ""
    name = text.rsplit(".", 1)[-1]
    return grpc.StatusCode.__members__.get(name, grpc.StatusCode.UNKNOWN)


def _call_error(exc: InferenceServerException) -> BackendCallError:
    return BackendCallError(_status(exc), str(exc.message() or exc))


@dataclass
class _Stats:
    queue_ns: int = 0
    compute_ns: int = 0


@dataclass
class _Pool:
    clients: list[Any]
    turn: Iterator[int] = field(init=False)

    def __post_init__(self) -> None:
        self.turn = itertools.cycle(range(len(self.clients)))

    def next(self) -> Any:
        return self.clients[next(self.turn)]


class TritonBackend:
    """Calls KServe v2 gRPC servers: Triton, MLServer, KServe ModelServer.

    One pool of ``channels_per_endpoint`` clients (each one gRPC channel) per endpoint, used
    in turn. Inputs are sent as raw contents; answers are decoded whether the server sends
    raw or typed contents. Statistics are read where the server implements them and skipped
    for good where it answers UNIMPLEMENTED (MLServer, KServe ModelServer).

    Args:
        settings: Client settings.
    """

    def __init__(self, settings: TritonSettings) -> None:
        self._settings = settings
        self._pools: dict[str, _Pool] = {}
        self._no_statistics: set[str] = set()
        self._stats: dict[tuple[str, str], _Stats] = {}

    def _pool(self, endpoint: str) -> _Pool:
        pool = self._pools.get(endpoint)
        if pool is None:
            cap = self._settings.max_message_bytes + self._settings.envelope_bytes
            options = [
                ("grpc.max_send_message_length", cap),
                ("grpc.max_receive_message_length", cap),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                # Fail fast on a dead server instead of waiting out the deadline, so the
                # router can fail over while time is left.
                ("grpc.enable_retries", 0),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2_000),
            ]
            clients = [
                triton_aio.InferenceServerClient(endpoint, channel_args=options)
                for _ in range(self._settings.channels_per_endpoint)
            ]
            pool = self._pools[endpoint] = _Pool(clients)
        return pool

    @staticmethod
    def _server_model(entry: ModelEntry, placement: Placement) -> tuple[str, str]:
        name = placement.server_model_name or entry.name
        version = (
            entry.version
            if placement.server_model_version is None
            else placement.server_model_version
        )
        return name, version

    async def infer(self, call: BackendCall) -> Tensors:
        """Send the encoded inputs once to the placement's server."""
        client = self._pool(call.placement.endpoint).next()
        name, version = self._server_model(call.entry, call.placement)
        inputs = []
        for tensor in call.inputs.tensors:
            item = triton_grpc.InferInput(tensor.name, list(tensor.shape), tensor.datatype)
            item.set_data_from_numpy(tensor.array())
            inputs.append(item)
        outputs = [triton_grpc.InferRequestedOutput(o.name) for o in call.entry.outputs]
        try:
            result = await client.infer(
                name,
                inputs,
                model_version=version,
                outputs=outputs,
                request_id=call.request_id,
                priority=call.priority,
                timeout=max(1, int(call.timeout * 1_000_000)),
                client_timeout=call.timeout,
            )
        except InferenceServerException as exc:
            raise _call_error(exc) from exc
        wanted = {o.name: o.datatype for o in call.entry.outputs}
        return decode_outputs(result.get_response(), wanted)

    async def probe(self, entry: ModelEntry, placement: Placement, limit: float) -> PlacementHealth:
        """Server live, model ready, and the queue ratio where statistics exist."""
        client = self._pool(placement.endpoint).next()
        name, version = self._server_model(entry, placement)
        try:
            if not await client.is_server_live(client_timeout=limit):
                return PlacementHealth(False, "server not live")
            if not await client.is_model_ready(name, version, client_timeout=limit):
                return PlacementHealth(False, "model not ready")
        except InferenceServerException as exc:
            error = _call_error(exc)
            return PlacementHealth(False, f"{error.code.name}: {error.detail}")
        return PlacementHealth(
            True, queue_ratio=await self._queue_ratio(client, placement, name, version, limit)
        )

    async def _queue_ratio(
        self, client: Any, placement: Placement, name: str, version: str, limit: float
    ) -> float | None:
        if placement.endpoint in self._no_statistics:
            return None
        try:
            response = await client.get_inference_statistics(name, version, client_timeout=limit)
        except InferenceServerException as exc:
            if _status(exc) is grpc.StatusCode.UNIMPLEMENTED:
                self._no_statistics.add(placement.endpoint)
                return None
            _log.warning("statistics of %s at %s failed: %s", name, placement.label, exc)
            return None
        if not response.model_stats:
            return None
        stats = response.model_stats[0].inference_stats
        now = _Stats(queue_ns=int(stats.queue.ns), compute_ns=int(stats.compute_infer.ns))
        previous = self._stats.get((placement.endpoint, name), _Stats())
        self._stats[(placement.endpoint, name)] = now
        compute = now.compute_ns - previous.compute_ns
        if compute <= 0:
            return 0.0
        return max(0.0, (now.queue_ns - previous.queue_ns) / compute)

    async def close(self) -> None:
        """Close every channel."""
        pools, self._pools = self._pools, {}
        await asyncio.gather(
            *(client.close() for pool in pools.values() for client in pool.clients)
        )
