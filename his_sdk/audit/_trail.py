"""The audit trail the gateway calls: record reads cheaply, append writes in their transaction."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

import his_sdk.testing

from ._balp import PendingEvent, build_audit_events
from ._chain import ChainedEvent
from ._context import AuditContext, AuditObserver
from ._errors import AuditUnavailableError
from ._outbox import Outbox
from ._publisher import Publisher
from ._schema import make_engine
from ._settings import AuditSettings

__all__ = ["AuditHealth", "AuditTrail"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuditHealth:
    """The audit trail's state, for health checks and metrics.

    Attributes:
        status: ``serving``; ``degraded`` (Kafka unreachable: events pile up in the outbox,
            nothing is lost); ``failing`` (the outbox cannot be written: audited calls fail).
        backlog: Outbox rows not yet acknowledged by Kafka.
        oldest_unpublished_at: When the oldest of them was appended.
        last_published_at: When Kafka last acknowledged a row (this process).
        queued: Read events waiting for the background writer.
        publisher_error: The publisher's last failure, if it has not recovered.
        writer_error: The background writer's (or the database's) last failure, if any.
    """

    status: Literal["serving", "degraded", "failing"]
    backlog: int
    oldest_unpublished_at: datetime.datetime | None
    last_published_at: datetime.datetime | None
    queued: int
    publisher_error: str | None
    writer_error: str | None


@dataclass(slots=True)
class _Batch:
    events: list[PendingEvent]
    done: concurrent.futures.Future[None] | None


class AuditTrail:
    """Records FHIR AuditEvents for gateway calls: outbox first, then Kafka.

    Reads go through :meth:`record`, which queues the call's events for a background writer
    that commits them in batches (cheap on the hot path). In ``buffered`` read mode a read
    returns before its event is committed, so a crash can lose the events still queued (at
    most ``queue_size`` calls, normally a few milliseconds' worth); ``committed`` mode makes
    each read wait for its batch to commit. Writes go through :meth:`append`, inside the
    transaction of the change they describe, so neither commits without the other.

    Start with :meth:`start` (or ``async with``), stop with :meth:`close`.

    Args:
        settings: The audit settings.
        engine: The outbox database; default: an engine for ``settings.outbox_url``. Pass the
            engine of the state database so writes and their events share transactions; for
            SQLite build it with :func:`make_engine` (WAL and a busy timeout), since the
            writer, the publisher and the callers write concurrently.
        observer: The recording system; default: from ``settings``.
        bootstrap_servers: Kafka brokers, overriding ``settings.kafka.bootstrap_servers``.
        publish: Run a publisher in this process (turn off where a separate process
            publishes the outbox).
    """

    def __init__(
        self,
        settings: AuditSettings,
        *,
        engine: Engine | None = None,
        observer: AuditObserver | None = None,
        bootstrap_servers: list[str] | None = None,
        publish: bool = True,
    ) -> None:
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(settings.outbox_url)
        self.observer = observer or AuditObserver(
            instance_id=settings.instance_id,
            site=settings.site,
            address=settings.server_address or socket.gethostname(),
        )
        self.outbox = Outbox(self.engine, chain_id=settings.effective_chain_id)
        self._bootstrap = list(bootstrap_servers or settings.kafka.bootstrap_servers)
        self._publish = publish
        self.publisher: Publisher | None = None
        self.broker: his_sdk.testing.TansuBroker | None = None
        """The embedded broker, when no bootstrap servers were configured."""
        self._queue: queue.Queue[_Batch] = queue.Queue(maxsize=settings.queue_size)
        self._unwritten = 0
        self._unwritten_changed = threading.Condition()
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_error: str | None = None
        self._lost = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Create the outbox tables, then start the writer and (if enabled) the publisher.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The outbox database cannot be prepared.
            his_sdk.testing.TansuUnavailableError: No brokers were configured and the
                embedded broker did not start.
        """
        if self._writer is not None:
            raise RuntimeError("the audit trail is already started")
        if not self.settings.enabled:
            return
        self.outbox.create()
        if self._publish:
            if not self._bootstrap:
                self.broker = his_sdk.testing.TansuBroker.start()
                self._bootstrap = [self.broker.bootstrap_servers]
                _log.warning(
                    "no Kafka configured: audit events go to an embedded in-memory broker on %s",
                    self.broker.bootstrap_servers,
                )
            self.publisher = Publisher(
                self.outbox,
                self.settings.kafka,
                bootstrap_servers=self._bootstrap,
                batch_size=self.settings.publish_batch_size,
                interval=self.settings.publish_interval_seconds,
                retry_max=self.settings.publish_retry_max_seconds,
                retention=self.settings.retention,
                purge_interval=self.settings.purge_interval_seconds,
            )
            self.publisher.start()
        self._stopping.clear()
        self._abandon.clear()
        self._writer = threading.Thread(
            target=self._run_writer, name="his-audit-writer", daemon=True
        )
        self._writer.start()

    @property
    def bootstrap_servers(self) -> list[str]:
        """The Kafka brokers in use (the embedded one's address once started)."""
        return list(self._bootstrap)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the threads, release the embedded broker.

        Unpublished rows stay in the outbox for the next start.

        Raises:
            AuditUnavailableError: Queued read events could not be written within
                ``timeout`` seconds (they are counted in the message and logged).
        """
        writer = self._writer
        if writer is not None:
            self._stopping.set()
            writer.join(timeout)
            if writer.is_alive():
                self._abandon.set()
                writer.join(5.0)
            self._writer = None
            # A read that passed the running check just before the writer stopped.
            self._abandon.set()
            leftovers = []
            while True:
                try:
                    leftovers.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if leftovers:
                self._write(leftovers, sum(len(b.events) for b in leftovers))
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
            self._bootstrap = list(self.settings.kafka.bootstrap_servers)
        if self._own_engine:
            self.engine.dispose()
        if self._lost:
            lost, self._lost = self._lost, 0
            raise AuditUnavailableError(
                f"{lost} queued audit events could not be written before shutdown"
            )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    # -- recording -------------------------------------------------------------------------

    def build(self, ctx: AuditContext) -> list[PendingEvent]:
        """The AuditEvents for ``ctx`` (one per patient), not yet chained or stored."""
        return build_audit_events(ctx, observer=self.observer)

    async def record(self, ctx: AuditContext) -> None:
        """Record a read (or any call that changed nothing) from async code.

        Returns once the events are queued (``buffered``) or committed (``committed``).

        Raises:
            AuditUnavailableError: The queue stayed full for ``enqueue_timeout_seconds``, the
                trail is not running, or (``committed``) the commit failed. The caller must
                not serve the call.
        """
        if not self.settings.enabled:
            return
        batch = self._batch(ctx)
        deadline = time.monotonic() + self.settings.enqueue_timeout_seconds
        pause = 0.001
        while True:
            try:
                self._enqueue(batch)
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    raise AuditUnavailableError(
                        "the audit queue is full; the call was not served"
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
        if batch.done is not None:
            await asyncio.wrap_future(batch.done)

    def record_sync(self, ctx: AuditContext) -> None:
        """Record a read from synchronous code; blocks as :meth:`record` waits.

        Raises:
            AuditUnavailableError: As for :meth:`record`.
        """
        if not self.settings.enabled:
            return
        batch = self._batch(ctx)
        deadline = time.monotonic() + self.settings.enqueue_timeout_seconds
        while True:
            try:
                self._enqueue(batch)
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    raise AuditUnavailableError(
                        "the audit queue is full; the call was not served"
                    ) from None
                time.sleep(0.005)
        if batch.done is not None:
            batch.done.result()

    def append(self, conn: Connection, ctx: AuditContext) -> list[ChainedEvent]:
        """Append a write's events inside the caller's transaction (fail closed).

        Call it in the transaction that makes the change; if it raises, let the exception
        leave the transaction so both roll back::

            with engine.begin() as conn:
                conn.execute(...)  # the change
                trail.append(conn, ctx)

        Args:
            conn: A connection with an open transaction on the outbox database.
            ctx: The write.

        Returns:
            The chained events (durable once the caller commits).

        Raises:
            AuditUnavailableError: The events could not be inserted; the transaction must
                roll back.
        """
        if not self.settings.enabled:
            return []
        events = self.build(ctx)
        try:
            chained = self.outbox.append(conn, events)
        except SQLAlchemyError as exc:
            _log.error("audit outbox insert failed; the audited write must roll back: %s", exc)
            raise AuditUnavailableError(
                "the audit record could not be written, so the change was not committed"
            ) from exc
        if self.publisher is not None:
            self.publisher.wake()
        return chained

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued read event is committed to the outbox.

        Raises:
            TimeoutError: Events were still queued after ``timeout`` seconds.
        """
        with self._unwritten_changed:
            if not self._unwritten_changed.wait_for(lambda: self._unwritten == 0, timeout):
                raise TimeoutError(f"{self._unwritten} audit events still queued")

    def republish(self, since: datetime.datetime, until: datetime.datetime | None = None) -> int:
        """Queue retained outbox rows created in ``[since, until)`` to be published again.

        Returns:
            How many rows were queued again.
        """
        if self.publisher is not None:
            return self.publisher.republish(since, until)
        return self.outbox.mark_unpublished(since, until)

    def health(self) -> AuditHealth:
        """The backlog, the last publication and any failure (queries the outbox)."""
        publisher_error = None if self.publisher is None else self.publisher.last_error
        last_published = None if self.publisher is None else self.publisher.last_published_at
        writer_error = self._writer_error
        try:
            backlog = self.outbox.backlog()
            oldest = self.outbox.oldest_unpublished()
        except SQLAlchemyError as exc:
            _log.error("audit health: the outbox cannot be read: %s", exc)
            backlog, oldest = -1, None
            writer_error = f"outbox unreadable: {type(exc).__name__}"
        status: Literal["serving", "degraded", "failing"] = "serving"
        if writer_error is not None:
            status = "failing"
        elif publisher_error is not None:
            status = "degraded"
        return AuditHealth(
            status=status,
            backlog=backlog,
            oldest_unpublished_at=oldest,
            last_published_at=last_published,
            queued=self._unwritten,
            publisher_error=publisher_error,
            writer_error=writer_error,
        )

    # -- background writer -----------------------------------------------------------------

    def _batch(self, ctx: AuditContext) -> _Batch:
        if self._writer is None or self._stopping.is_set():
            raise AuditUnavailableError("the audit trail is not running; the call was not served")
        done: concurrent.futures.Future[None] | None = None
        if self.settings.read_mode == "committed":
            done = concurrent.futures.Future()
        return _Batch(self.build(ctx), done)

    def _enqueue(self, batch: _Batch) -> None:
        with self._unwritten_changed:
            self._unwritten += len(batch.events)
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self._written(len(batch.events))
            raise

    def _written(self, count: int) -> None:
        with self._unwritten_changed:
            self._unwritten -= count
            self._unwritten_changed.notify_all()

    def _run_writer(self) -> None:
        limit = self.settings.write_batch_size
        while True:
            try:
                first = self._queue.get(timeout=self.settings.write_interval_seconds)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            batches = [first]
            count = len(first.events)
            # Gather for one interval (unless a committed read waits): one transaction per
            # interval instead of one per call keeps the writer off the gateway's hot path.
            gather_until = time.monotonic() + (
                0.0 if first.done is not None else self.settings.write_interval_seconds
            )
            while count < limit:
                remaining = gather_until - time.monotonic()
                try:
                    more = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                batches.append(more)
                count += len(more.events)
                if more.done is not None:
                    gather_until = 0.0
            self._write(batches, count)

    def _write(self, batches: list[_Batch], count: int) -> None:
        events = [event for batch in batches for event in batch.events]
        pause = 0.05
        failures = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    self.outbox.append(conn, events)
            except Exception as exc:
                failures += 1
                self._writer_error = f"{type(exc).__name__}: {exc}"
                if failures == 1:
                    _log.exception("writing %d audit events to the outbox failed", count)
                if self.settings.read_mode == "committed":
                    self._written(count)
                    error = AuditUnavailableError("the audit record could not be committed")
                    for batch in batches:
                        if batch.done is not None:
                            batch.done.set_exception(error)
                    return
                if self._abandon.is_set():
                    self._lost += count
                    _log.error("%d queued audit events were lost at shutdown", count)
                    self._written(count)
                    return
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            break
        if failures:
            _log.info("the audit outbox accepts writes again after %d failures", failures)
        self._writer_error = None
        self._written(count)
        for batch in batches:
            if batch.done is not None:
                batch.done.set_result(None)
        # Reads wait for the publisher's interval so each Kafka round trip carries a batch;
        # waking it per write costs the gateway about half its read throughput.
