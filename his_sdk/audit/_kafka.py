"""kafka-python clients for the audit topic: producer, assign/seek consumer, topic creation."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from typing import Any

from ._chain import ChainedEvent
from ._settings import KafkaSettings

with warnings.catch_warnings():
    # kafka-python 3.0 loads its protocol schemas at import time through
    # importlib.resources.read_text/open_text, which Python 3.11 and 3.12 deprecate; the
    # warnings say nothing about our use and would fail every `-W error` run.
    warnings.filterwarnings(
        "ignore", message=r"(read|open)_text is deprecated", category=DeprecationWarning
    )
    import kafka  # type: ignore[import-untyped]
    import kafka.admin  # type: ignore[import-untyped]
    import kafka.errors  # type: ignore[import-untyped]
    import kafka.structs  # type: ignore[import-untyped]

__all__ = [
    "KafkaError",
    "TopicPartition",
    "client_config",
    "describe_topic",
    "ensure_topic",
    "make_consumer",
    "make_producer",
    "read_topic",
]

_log = logging.getLogger(__name__)

KafkaError: type[Exception] = kafka.errors.KafkaError
"""Root of kafka-python's errors."""
TopicPartition: Any = kafka.structs.TopicPartition
"""kafka-python's ``(topic, partition)`` tuple."""


def client_config(settings: KafkaSettings, bootstrap_servers: list[str]) -> dict[str, Any]:
    """Settings shared by every kafka-python client."""
    request_ms = int(settings.request_timeout_seconds * 1000)
    return {
        "bootstrap_servers": list(bootstrap_servers),
        "client_id": settings.client_id,
        "request_timeout_ms": request_ms,
        "bootstrap_timeout_ms": request_ms,
        # Reconnect within a second once a broker is back (the default backs off to 30 s).
        "reconnect_backoff_max_ms": 1000,
        **settings.client_config,
    }


def make_producer(settings: KafkaSettings, bootstrap_servers: list[str]) -> Any:
    """An idempotent producer (where the broker supports it) with ``acks=all``.

    Raises:
        KafkaError: No broker answered.
    """
    request_ms = int(settings.request_timeout_seconds * 1000)
    linger_ms = 5
    config = client_config(settings, bootstrap_servers)
    config.update(
        acks="all",
        linger_ms=linger_ms,
        batch_size=256 * 1024,
        max_block_ms=request_ms,
        delivery_timeout_ms=max(
            int(settings.delivery_timeout_seconds * 1000), request_ms + linger_ms
        ),
        compression_type=None if settings.compression_type == "none" else "gzip",
        allow_auto_create_topics=not settings.create_topic,
    )
    return kafka.KafkaProducer(**config)


def make_consumer(settings: KafkaSettings, bootstrap_servers: list[str], **overrides: Any) -> Any:
    """A consumer without a group, for ``assign``/``seek`` reading (no offsets committed).

    Raises:
        KafkaError: No broker answered.
    """
    config = client_config(settings, bootstrap_servers)
    config.update(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        allow_auto_create_topics=False,
        fetch_max_wait_ms=200,
    )
    config.update(overrides)
    return kafka.KafkaConsumer(**config)


def make_admin(settings: KafkaSettings, bootstrap_servers: list[str]) -> Any:
    """An admin client.

    Raises:
        KafkaError: No broker answered.
    """
    return kafka.admin.KafkaAdminClient(**client_config(settings, bootstrap_servers))


def ensure_topic(settings: KafkaSettings, bootstrap_servers: list[str]) -> bool:
    """Create the audit topic unless it exists.

    Returns:
        True when it was created now.

    Raises:
        KafkaError: The broker refused or could not be reached.
    """
    admin = make_admin(settings, bootstrap_servers)
    try:
        if settings.topic in admin.list_topics():
            return False
        topic = kafka.admin.NewTopic(
            settings.topic,
            settings.partitions,
            settings.replication_factor,
            topic_configs=dict(settings.topic_config),
        )
        try:
            admin.create_topics([topic])
        except kafka.errors.TopicAlreadyExistsError:
            # Another publisher created it between the listing and the request.
            return False
        _log.info("created audit topic %s (%d partitions)", settings.topic, settings.partitions)
        return True
    finally:
        admin.close()


def describe_topic(admin: Any, topic: str) -> tuple[str | None, set[int]]:
    """The broker's id of ``topic`` (it changes when the topic is recreated) and its partitions.

    Returns:
        ``(None, set())`` when the topic does not exist; the id is None on brokers that do not
        report topic ids.

    Raises:
        KafkaError: The broker could not be asked.
    """
    try:
        described = admin.describe_topics([topic])
    except kafka.errors.UnknownTopicOrPartitionError:
        return None, set()
    for entry in described:
        if entry.get("name") == topic and entry.get("error_code", 0) == 0:
            value = entry.get("topic_id")
            partitions = {int(p["partition_index"]) for p in entry.get("partitions", [])}
            return (None if value is None else str(value)), partitions
    return None, set()


def read_topic(
    settings: KafkaSettings,
    bootstrap_servers: list[str],
    *,
    from_beginning: bool = True,
    follow: bool = False,
    idle_timeout: float = 2.0,
    stop_after: float | None = None,
) -> Iterator[ChainedEvent]:
    """Read audit envelopes from every partition with assign/seek.

    Args:
        settings: The topic and client settings.
        bootstrap_servers: The brokers.
        from_beginning: Start at the oldest retained message; otherwise only new ones.
        follow: Keep waiting for new messages; otherwise stop at the end offsets seen at start.
        idle_timeout: Without ``follow``, also stop after this long without a message.
        stop_after: Stop after this many seconds in any case.

    Yields:
        Events with their partition and offset. Messages that are not envelopes are logged
        and skipped.

    Raises:
        KafkaError: The broker could not be reached.
    """
    consumer = make_consumer(settings, bootstrap_servers)
    try:
        partitions = consumer.partitions_for_topic(settings.topic)
        if not partitions:
            return
        tps = [TopicPartition(settings.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        else:
            consumer.seek_to_end(*tps)
        end = consumer.end_offsets(tps)
        deadline = None if stop_after is None else time.monotonic() + stop_after
        last_message = time.monotonic()
        while deadline is None or time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for tp, messages in batch.items():
                for message in messages:
                    last_message = time.monotonic()
                    try:
                        yield ChainedEvent.from_json(
                            message.value, partition=tp.partition, offset=message.offset
                        )
                    except ValueError as exc:
                        _log.warning(
                            "skipping a message that is not an audit envelope at %s/%d@%d: %s",
                            tp.topic,
                            tp.partition,
                            message.offset,
                            exc,
                        )
            if follow or batch:
                continue
            # Stop after an empty poll at (or past) the end offsets seen at the start: some
            # Kafka-protocol brokers report the end offset of the last batch's start, so an
            # empty poll, not the offset alone, says the partition is drained.
            at_end = all(consumer.position(tp) >= end[tp] for tp in tps)
            if at_end or time.monotonic() - last_message > idle_timeout:
                return
    finally:
        consumer.close()
