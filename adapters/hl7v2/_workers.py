"""Conversion in worker processes, so background conversion does not compete for the GIL."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from ._convert import Context, convert_message
from ._parser import Hl7ParseError, parse_message
from ._store import ConversionFailure, ConversionOutput

__all__ = ["ConversionPool", "convert_raw_message"]


def convert_raw_message(raw: bytes, ctx: Context, fallback_charset: str) -> ConversionOutput:
    """Parse and convert one raw message.

    Raises:
        ConversionFailure: The message cannot be parsed or converted.
    """
    try:
        msg = parse_message(raw, fallback_charset=fallback_charset)
    except Hl7ParseError as exc:
        raise ConversionFailure(f"parse error: {exc}") from exc
    return convert_message(msg, ctx)


_worker_settings: tuple[Context, str] | None = None


def _init_worker(ctx: Context, fallback_charset: str) -> None:
    global _worker_settings
    _worker_settings = (ctx, fallback_charset)


def _ready() -> bool:
    return _worker_settings is not None


def _convert_in_worker(raws: Sequence[bytes]) -> list[ConversionOutput | str]:
    if _worker_settings is None:
        raise RuntimeError("conversion worker started without its settings")
    ctx, fallback_charset = _worker_settings
    out: list[ConversionOutput | str] = []
    for raw in raws:
        try:
            out.append(convert_raw_message(raw, ctx, fallback_charset))
        except ConversionFailure as exc:
            out.append(str(exc))
    return out


class ConversionPool:
    """Worker processes that convert raw messages with the adapter's mappings.

    Args:
        processes: Number of worker processes.
        ctx: The conversion context (ids, authorities, ConceptMaps).
        fallback_charset: Decoding of messages without MSH-18 that are not UTF-8.
    """

    def __init__(self, processes: int, ctx: Context, fallback_charset: str) -> None:
        if processes < 1:
            raise ValueError("a conversion pool needs at least one process")
        self._processes = processes
        self._executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(ctx, fallback_charset),
        )

    def warm_up(self) -> None:
        """Start the worker processes now rather than on the first conversion (blocks)."""
        futures = [self._executor.submit(_ready) for _ in range(self._processes)]
        for future in futures:
            if not future.result():
                raise RuntimeError("conversion worker started without its settings")

    def convert_many(self, raws: Sequence[bytes]) -> list[ConversionOutput | str]:
        """Convert messages in order: each result is the output or the failure reason.

        Blocks until done (call it from a worker thread). An unexpected error in a worker
        is raised here.
        """
        if not raws:
            return []
        size = -(-len(raws) // self._processes)
        futures = [
            self._executor.submit(_convert_in_worker, list(raws[i : i + size]))
            for i in range(0, len(raws), size)
        ]
        out: list[ConversionOutput | str] = []
        for future in futures:
            out.extend(future.result())
        return out

    def close(self) -> None:
        """Stop the worker processes (waiting for work in progress)."""
        self._executor.shutdown(wait=True)
