"""Inbound processing: validate, store durably (group commit), convert, acknowledge."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from ._ack import build_ack
from ._convert import SUPPORTED_EVENTS, is_supported
from ._mllp import PeerInfo
from ._parser import (
    SUPPORTED_VERSIONS,
    Hl7ParseError,
    Message,
    charset_codec,
    parse_datetime,
    parse_message,
)
from ._store import (
    BatchConverter,
    ConversionOutput,
    Hl7Store,
    IngestItem,
    IngestResult,
    MessageStatus,
)

__all__ = ["ChannelMetrics", "InboundOptions", "InboundProcessor"]

SUPPORTED_CODES = frozenset(code for code, _ in SUPPORTED_EVENTS)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundOptions:
    """How one inbound channel acknowledges and converts."""

    channel: str = "default"
    application: str = "HIS-SDK"
    facility: str = ""
    convert_before_ack: bool = True
    store_unsupported: bool = False
    honor_enhanced_mode: bool = True
    processing_ids: frozenset[str] = frozenset()
    fallback_charset: str = "cp1252"
    max_batch: int = 256


@dataclass
class ChannelMetrics:
    """Counters of one channel since start, plus recent acknowledgment latencies."""

    channel: str
    counters: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=20000)
    )

    def snapshot(self) -> dict[str, float]:
        """Counters and p50/p99 ACK latency (seconds), as flat metric names."""
        out: dict[str, float] = {f"hl7v2_{k}_total": float(v) for k, v in self.counters.items()}
        if self.latencies:
            ordered = sorted(self.latencies)
            out["hl7v2_ack_latency_p50_seconds"] = ordered[len(ordered) // 2]
            out["hl7v2_ack_latency_p99_seconds"] = ordered[
                min(len(ordered) - 1, int(len(ordered) * 0.99))
            ]
        return out


class _BatchWriter:
    """Queues messages and stores them in batches on one database thread (group commit)."""

    def __init__(
        self,
        store: Hl7Store,
        converter: Callable[[bytes], ConversionOutput],
        mapping_version: str,
        max_batch: int,
        on_batch: Callable[[], None],
    ) -> None:
        self._store = store
        self._converter = converter
        self._mapping_version = mapping_version
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._queue: asyncio.Queue[tuple[IngestItem, asyncio.Future[IngestResult]]] = (
            asyncio.Queue()
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hl7v2-store")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(ConnectionAbortedError("listener shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, item: IngestItem) -> IngestResult:
        fut: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            items = [item for item, _ in batch]
            try:
                results = await loop.run_in_executor(
                    self._executor,
                    self._store.ingest,
                    items,
                    self._converter,
                    self._mapping_version,
                )
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(ConnectionAbortedError("listener shutting down"))
                raise
            except Exception as exc:
                # The whole batch rolled back: every sender gets an error ACK and resends.
                _log.error("message store write failed: %s", type(exc).__name__)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
            if any(r.status is MessageStatus.RECEIVED for r in results):
                self._on_batch()


class InboundProcessor:
    """The :class:`~adapters.hl7v2._mllp.FrameHandler` of the listener.

    Args:
        store: Where messages and resources go.
        converter: Raw bytes to validated resources (raises ``ConversionFailure``).
        options: Channel behaviour.
        mapping_version: Recorded on each converted message (changes with ConceptMaps).
    """

    def __init__(
        self,
        store: Hl7Store,
        converter: Callable[[bytes], ConversionOutput],
        options: InboundOptions,
        mapping_version: str,
        convert_many: BatchConverter | None = None,
    ) -> None:
        self.store = store
        self._convert_many = convert_many
        self.options = options
        self.metrics = ChannelMetrics(options.channel)
        self._converter = converter
        self._mapping_version = mapping_version
        self._pending_event = asyncio.Event()
        self._writer = _BatchWriter(
            store, converter, mapping_version, options.max_batch, self._pending_event.set
        )
        self._convert_executor = ThreadPoolExecutor(1, thread_name_prefix="hl7v2-convert")
        self._deferred: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the store writer and the deferred-conversion worker."""
        self._writer.start()
        self._deferred = asyncio.create_task(self._convert_pending_loop())
        self._pending_event.set()

    async def close(self) -> None:
        """Stop the workers (in-flight batches finish or fail with an error ACK)."""
        if self._deferred is not None:
            self._deferred.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._deferred
            self._deferred = None
        await self._writer.close()
        self._convert_executor.shutdown(wait=True)

    async def _convert_pending_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._pending_event.wait()
            self._pending_event.clear()
            while True:
                try:
                    ids = await loop.run_in_executor(
                        self._convert_executor, self.store.pending_ids, 200
                    )
                    if not ids:
                        break
                    outcome = await loop.run_in_executor(
                        self._convert_executor,
                        functools.partial(
                            self.store.convert_stored,
                            ids,
                            self._converter,
                            self._mapping_version,
                            convert_many=self._convert_many,
                        ),
                    )
                except Exception as exc:
                    _log.error(
                        "deferred conversion failed: %s; retrying in 5 s", type(exc).__name__
                    )
                    await asyncio.sleep(5)
                    continue
                for status in outcome.values():
                    self.metrics.counters[f"conversion_{status.value}"] += 1

    # ---- FrameHandler --------------------------------------------------------------

    def too_large(self, head: bytes, size: int, peer: PeerInfo) -> bytes:
        """AR for a frame over ``max_message_bytes``, echoing MSH-10 read from its head."""
        self.metrics.counters["messages_oversized"] += 1
        self.metrics.counters["acks_AR"] += 1
        original = self._parse_head(head)
        code = "CR" if original is not None and original.enhanced_mode else "AR"
        return self._encode(
            build_ack(
                code,
                original,
                control_id=_peek_control_id(head),
                text=f"message of {size} bytes exceeds the limit",
                error_code="207",
                application=self.options.application,
                facility=self.options.facility,
            ),
            original,
        )

    def failed(self, data: bytes, error: Exception, peer: PeerInfo) -> bytes:
        """AE for a frame whose processing raised unexpectedly."""
        self.metrics.counters["acks_AE"] += 1
        original = self._parse_head(data)
        return self._encode(
            build_ack(
                "AE",
                original,
                control_id=_peek_control_id(data),
                text="internal error while processing the message",
                error_code="207",
                application=self.options.application,
                facility=self.options.facility,
            ),
            original,
        )

    async def handle(self, data: bytes, peer: PeerInfo) -> bytes | None:
        """Process one message and return its acknowledgment (or None where MSH-15 says so)."""
        started = time.perf_counter()
        counters = self.metrics.counters
        counters["messages_received"] += 1
        counters["bytes_received"] += len(data)
        ack, send = await self._process(data, peer)
        counters[f"acks_{ack[0]}"] += 1
        self.metrics.latencies.append(time.perf_counter() - started)
        return self._encode(ack[1], ack[2]) if send else None

    async def _process(
        self, data: bytes, peer: PeerInfo
    ) -> tuple[tuple[str, Message, Message | None], bool]:
        opts = self.options
        try:
            msg = parse_message(data, fallback_charset=opts.fallback_charset)
        except Hl7ParseError as exc:
            return await self._reject(
                data,
                None,
                peer,
                str(exc),
                exc.code,
                exc.location,
                control_id=exc.control_id or _peek_control_id(data),
            )
        enhanced = opts.honor_enhanced_mode and msg.enhanced_mode
        if msg.version not in SUPPORTED_VERSIONS:
            return await self._reject(data, msg, peer, "unsupported version id", "203", "MSH^1^12")
        if not msg.control_id:
            return await self._reject(
                data, msg, peer, "MSH-10 message control id is empty", "101", "MSH^1^10"
            )
        if not msg.message_code or not msg.trigger_event:
            return await self._reject(
                data, msg, peer, "MSH-9 message type is incomplete", "101", "MSH^1^9"
            )
        if opts.processing_ids and msg.processing_id not in opts.processing_ids:
            return await self._reject(
                data, msg, peer, "unsupported processing id", "202", "MSH^1^11"
            )
        supported = is_supported(msg.message_code, msg.trigger_event)
        if not supported and not opts.store_unsupported:
            known_code = msg.message_code in SUPPORTED_CODES
            return await self._reject(
                data,
                msg,
                peer,
                f"unsupported {'event' if known_code else 'message type'} "
                f"{msg.message_code}^{msg.trigger_event}",
                "201" if known_code else "200",
                "MSH^1^9",
            )
        convert_now = opts.convert_before_ack and not enhanced and supported
        ok_code = "CA" if enhanced else "AA"
        item = self._item(
            data,
            msg,
            peer,
            status=MessageStatus.RECEIVED if supported else MessageStatus.SKIPPED,
            convert=convert_now,
            ack_code=ok_code,
        )
        try:
            result = await self._writer.submit(item)
        except Exception as exc:
            self.metrics.counters["store_failures"] += 1
            code = "CE" if enhanced else "AE"
            _log.warning("message not stored (%s); answered %s", type(exc).__name__, code)
            ack = build_ack(
                code,
                msg,
                text="message store unavailable; resend later",
                error_code="207",
                application=opts.application,
                facility=opts.facility,
            )
            return (code, ack, msg), self._should_send(msg, enhanced, accepted=False)
        return self._ack_for(result, msg, enhanced)

    def _ack_for(
        self, result: IngestResult, msg: Message, enhanced: bool
    ) -> tuple[tuple[str, Message, Message | None], bool]:
        opts = self.options
        counters = self.metrics.counters
        text = ""
        error_code = ""
        if result.status is MessageStatus.DUPLICATE:
            counters["messages_duplicate"] += 1
            original = result.original_ack_code or "AA"
            accepted = original in ("AA", "CA")
            code = ("CA" if accepted else "CE") if enhanced else ("AA" if accepted else "AE")
            text = "duplicate of an earlier message; not applied again"
            if not accepted:
                error_code = "205"
        elif result.status is MessageStatus.FAILED:
            counters["messages_failed"] += 1
            code = "CE" if enhanced else "AE"
            text = result.error or "conversion failed"
            error_code = "207"
        else:
            if result.status is MessageStatus.CONVERTED:
                counters["messages_converted"] += 1
            code = "CA" if enhanced else "AA"
        ack = build_ack(
            code,
            msg,
            text=text,
            error_code=error_code,
            application=opts.application,
            facility=opts.facility,
        )
        accepted = code in ("AA", "CA")
        return (code, ack, msg), self._should_send(msg, enhanced, accepted=accepted)

    @staticmethod
    def _should_send(msg: Message | None, enhanced: bool, *, accepted: bool) -> bool:
        if not enhanced or msg is None:
            return True
        condition = msg.accept_ack_type or "AL"
        if condition == "NE":
            return False
        if condition == "ER":
            return not accepted
        if condition == "SU":
            return accepted
        return True

    async def _reject(
        self,
        data: bytes,
        msg: Message | None,
        peer: PeerInfo,
        text: str,
        error_code: str,
        location: str,
        control_id: str = "",
    ) -> tuple[tuple[str, Message, Message | None], bool]:
        opts = self.options
        enhanced = opts.honor_enhanced_mode and msg is not None and msg.enhanced_mode
        code = "CR" if enhanced else "AR"
        self.metrics.counters["messages_rejected"] += 1
        item = self._item(
            data,
            msg,
            peer,
            status=MessageStatus.REJECTED,
            convert=False,
            ack_code=code,
            error=text,
            control_id=control_id,
        )
        try:
            await self._writer.submit(item)
        except Exception as exc:
            # A reject does not depend on storage; it is still sent.
            self.metrics.counters["store_failures"] += 1
            _log.warning("rejected message not recorded: %s", type(exc).__name__)
        ack = build_ack(
            code,
            msg,
            control_id=control_id,
            text=text,
            error_code=error_code,
            error_location=location,
            application=opts.application,
            facility=opts.facility,
        )
        return (code, ack, msg), self._should_send(msg, enhanced, accepted=False)

    def _item(
        self,
        data: bytes,
        msg: Message | None,
        peer: PeerInfo,
        *,
        status: MessageStatus,
        convert: bool,
        ack_code: str,
        error: str | None = None,
        control_id: str = "",
    ) -> IngestItem:
        message_time: datetime | None = None
        patient = None
        if msg is not None:
            parsed, _ = parse_datetime(msg.msh.get(7))
            if isinstance(parsed, datetime):
                message_time = parsed
            pid = msg.first("PID")
            if pid is not None:
                patient = pid.get(3)
        return IngestItem(
            raw=data,
            channel=self.options.channel,
            peer=f"{peer.host}:{peer.port}",
            sending_application=msg.sending_application if msg else "",
            sending_facility=msg.sending_facility if msg else "",
            control_id=(msg.control_id if msg else control_id),
            message_code=msg.message_code if msg else "",
            trigger_event=msg.trigger_event if msg else "",
            structure=msg.structure if msg else "",
            version=msg.version if msg else "",
            processing_id=msg.processing_id if msg else "",
            message_time=message_time,
            patient_id=patient,
            status=status,
            error=error,
            ack_code=ack_code,
            convert=convert,
        )

    def _parse_head(self, data: bytes) -> Message | None:
        end = data.find(b"\r")
        if end < 0:
            end = data.find(b"\n")
        head = data if end < 0 else data[:end]
        try:
            return parse_message(head, fallback_charset=self.options.fallback_charset)
        except Hl7ParseError:
            return None

    @staticmethod
    def _encode(ack: Message, original: Message | None) -> bytes:
        text = ack.to_er7()
        codec = "utf-8"
        if original is not None and original.msh.get(18):
            try:
                codec = charset_codec(original.msh.get(18) or "")
            except Hl7ParseError:
                codec = "utf-8"
        return text.encode(codec, errors="replace")


def _peek_control_id(data: bytes) -> str:
    text = data[:4096].decode("latin-1")
    if text.startswith("\ufeff") or text.startswith("\xef\xbb\xbf"):
        text = text[3:] if text.startswith("\xef\xbb\xbf") else text[1:]
    if not text.startswith("MSH") or len(text) < 4:
        return ""
    header = text.replace("\n", "\r").split("\r", 1)[0]
    parts = header.split(text[3])
    return parts[9].split("^", 1)[0][:199] if len(parts) > 9 else ""
