"""Helpers for the REST facade tests: gateways on their own event loop, a faulty adapter."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import his_sdk.errors
from fhir.resources.R4B.resource import Resource
from his_sdk.adapter import Adapter
from his_sdk.config import GatewaySettings
from his_sdk.server import Gateway
from tests.fixtures import MemoryAdapter

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread, so blocking clients can call its servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LoopThread:
        self.thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def running_gateway(
    loop: LoopThread, settings: GatewaySettings, adapters: list[tuple[str, Adapter]]
) -> Iterator[Gateway]:
    """A started gateway on ``loop``; stopped on exit."""
    gateway = Gateway(settings, adapters=adapters)
    loop.run(gateway.start())
    try:
        yield gateway
    finally:
        loop.run(gateway.stop(grace=0))


FAULTS: dict[str, type[Exception]] = {
    "gone": his_sdk.errors.GoneError,
    "busy": his_sdk.errors.ResourceExhaustedError,
    "down": his_sdk.errors.UpstreamUnavailableError,
    "bad-rule": his_sdk.errors.PreconditionFailedError,
    "boom": RuntimeError,
}


class FaultyMemoryAdapter(MemoryAdapter):
    """The in-memory adapter, failing reads of ``Observation/<fault>`` with that fault."""

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        fault = FAULTS.get(resource_id)
        if fault is not None:
            raise fault(f"injected {resource_id} fault")
        return await super().read(resource_type, resource_id)
