"""The publisher: drains the outbox to Kafka and marks rows published once acknowledged."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

from ._errors import AuditPublishError
from ._kafka import KafkaError, ensure_topic, make_producer
from ._outbox import Outbox, OutboxRow
from ._settings import KafkaSettings

__all__ = ["Publisher"]

_log = logging.getLogger(__name__)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _close_producer(producer: Any) -> None:
    """Close a producer, abandoning records it can no longer deliver."""
    try:
        producer.close(timeout=0)
        return
    except KafkaError as exc:
        _log.info("audit producer still had undelivered records at close: %s", exc)
    # kafka-python's close() flushes first and gives up when records are stuck (a broker that
    # vanished mid-request), leaving its sender thread running; force_close() is the only way
    # to abandon them. The rows are still unpublished in the outbox and will be sent again.
    sender = producer._sender
    sender.force_close()
    sender.join(5.0)
    producer.close(timeout=0)


class Publisher:
    """Sends outbox rows to the audit topic, keyed by patient, in chain order.

    A row is marked published only after the broker acknowledged it (``acks=all``). When the
    broker is unreachable the rows stay in the outbox, the backlog grows, and the publisher
    retries with growing pauses; after any failure it builds a fresh producer, because an
    idempotent producer's state does not survive a broker that lost its data. A row sent but
    not yet marked when the process dies is sent again later: consumers de-duplicate by event
    id (the archive does).

    Published rows stay in the outbox for ``retention`` and are then purged, so
    :meth:`republish` can refill a broker that lost data.

    Args:
        outbox: The outbox to drain.
        kafka: Topic and client settings.
        bootstrap_servers: The brokers (overrides ``kafka.bootstrap_servers``).
        batch_size: Most rows per batch.
        interval: Pause when the outbox is empty, in seconds.
        retry_max: Longest pause between attempts while the broker fails, in seconds.
        retention: How long published rows are kept.
        purge_interval: How often old published rows are purged, in seconds.
    """

    def __init__(
        self,
        outbox: Outbox,
        kafka: KafkaSettings,
        *,
        bootstrap_servers: list[str] | None = None,
        batch_size: int = 2000,
        interval: float = 0.2,
        retry_max: float = 10.0,
        retention: datetime.timedelta = datetime.timedelta(days=7),
        purge_interval: float = 3600.0,
    ) -> None:
        self.outbox = outbox
        self.kafka = kafka
        self.bootstrap_servers = list(bootstrap_servers or kafka.bootstrap_servers)
        if not self.bootstrap_servers:
            raise ValueError("the publisher needs Kafka bootstrap servers")
        self.batch_size = batch_size
        self.interval = interval
        self.retry_max = retry_max
        self.retention = retention
        self.purge_interval = purge_interval
        self._producer: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_purge = time.monotonic() + purge_interval
        self.last_published_at: datetime.datetime | None = None
        """When the broker last acknowledged a row."""
        self.last_error: str | None = None
        """The last failure, cleared by the next successful batch."""
        self.published_total = 0
        """Rows acknowledged since this publisher was created."""

    # -- one batch -------------------------------------------------------------------------

    def _get_producer(self) -> Any:
        if self._producer is None:
            if self.kafka.create_topic:
                ensure_topic(self.kafka, self.bootstrap_servers)
            self._producer = make_producer(self.kafka, self.bootstrap_servers)
        return self._producer

    def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            _close_producer(producer)

    def publish_batch(self) -> int:
        """Send one batch of unpublished rows and mark those the broker acknowledged.

        Returns:
            How many rows were published (0 when the outbox was empty).

        Raises:
            AuditPublishError: The broker did not acknowledge some rows; they stay queued.
        """
        with self._lock:
            rows = self.outbox.fetch_unpublished(self.batch_size)
            if not rows:
                return 0
            sent: list[tuple[OutboxRow, Any]] = []
            failure: BaseException | None = None
            try:
                producer = self._get_producer()
                for row in rows:
                    key = None if row.patient_key is None else row.patient_key.encode()
                    future = producer.send(self.kafka.topic, key=key, value=row.envelope.encode())
                    sent.append((row, future))
                producer.flush(timeout=self.kafka.delivery_timeout_seconds + 1.0)
            except KafkaError as exc:
                failure = exc
            acked = [row for row, future in sent if future.succeeded()]
            if failure is None and len(acked) < len(rows):
                failure = next(
                    (future.exception for _, future in sent if future.failed()),
                    AuditPublishError("records were neither acknowledged nor failed"),
                )
            if acked:
                self.outbox.mark_published(acked)
                self.last_published_at = _now()
                self.published_total += len(acked)
            if failure is not None:
                self._reset_producer()
                text = str(failure)
                name = type(failure).__name__
                self.last_error = text if text.startswith(name) else f"{name}: {text}"
                raise AuditPublishError(
                    f"{len(rows) - len(acked)} of {len(rows)} audit events not acknowledged "
                    f"by Kafka ({self.last_error}); they stay in the outbox"
                ) from failure
            self.last_error = None
            return len(acked)

    def drain(self, timeout: float = 60.0) -> int:
        """Publish until the outbox is empty, retrying failures until ``timeout``.

        Returns:
            How many rows were published.

        Raises:
            AuditPublishError: Rows were still unpublished when the time ran out.
        """
        deadline = time.monotonic() + timeout
        total = 0
        pause = 0.1
        while True:
            try:
                published = self.publish_batch()
            except AuditPublishError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, self.retry_max)
                continue
            total += published
            if published == 0:
                return total

    def republish(self, since: datetime.datetime, until: datetime.datetime | None = None) -> int:
        """Queue retained rows created in ``[since, until)`` to be sent again.

        Use after a broker or topic lost data. Consumers see duplicates of anything they
        already had, and recognise them by event id.

        Returns:
            How many rows were queued again.
        """
        with self._lock:
            count = self.outbox.mark_unpublished(since, until)
        self._wake.set()
        return count

    def purge(self) -> int:
        """Delete published rows older than the retention."""
        return self.outbox.purge(_now() - self.retention)

    # -- background thread -----------------------------------------------------------------

    def start(self) -> None:
        """Publish continuously in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("the publisher is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="his-audit-publisher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Skip the current pause (new rows are waiting)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (after its current batch) and close the producer."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.error("the audit publisher did not stop within %.1f s", timeout)
            self._thread = None
        with self._lock:
            self._reset_producer()

    @property
    def running(self) -> bool:
        """Whether the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        pause = self.interval
        while not self._stop.is_set():
            try:
                published = self.publish_batch()
            except AuditPublishError as exc:
                if pause <= self.interval:
                    _log.warning("audit publishing failed, retrying: %s", exc)
                pause = min(max(pause * 2, 0.1), self.retry_max)
                self._sleep(pause)
                continue
            except Exception:
                # A database error: logged with its traceback, shown in health, and retried;
                # the rows are safe in the outbox.
                _log.exception("audit publisher failed")
                self.last_error = "database error while publishing; see the log"
                pause = min(max(pause * 2, 0.1), self.retry_max)
                self._sleep(pause)
                continue
            if pause > self.interval:
                _log.info("audit publishing recovered")
            pause = self.interval
            if time.monotonic() >= self._next_purge:
                self._purge_logged()
            if published < self.batch_size:
                self._sleep(self.interval)

    def _purge_logged(self) -> None:
        self._next_purge = time.monotonic() + self.purge_interval
        try:
            purged = self.purge()
        except Exception:
            _log.exception("purging published audit events failed; retrying next interval")
            return
        if purged:
            _log.info("purged %d published audit events older than %s", purged, self.retention)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()
