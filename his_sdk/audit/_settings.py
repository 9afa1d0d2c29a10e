"""Audit settings: the outbox database, the Kafka topic, the publisher and the hash chain."""

from __future__ import annotations

import datetime
import socket
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AuditSettings", "KafkaSettings"]


class KafkaSettings(BaseModel):
    """Where audit events are published.

    In production point ``bootstrap_servers`` at the Kafka cluster and create the topic ahead of
    time with ``partitions`` >= the number of archive consumers you plan, ``replication_factor``
    3, ``min.insync.replicas`` 2 and a ``retention.ms`` longer than the longest broker outage you
    want ``republish`` to cover from the broker's side (the outbox keeps its own copy for
    ``AuditSettings.retention``).
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    bootstrap_servers: list[str] = Field(default_factory=list)
    """``host:port`` of Kafka brokers; empty starts an embedded tansu broker (demo only)."""
    topic: str = "his.audit.v1"
    """Topic receiving one message per AuditEvent, keyed by patient id."""
    partitions: int = 6
    """Partitions used when the publisher has to create the topic."""
    replication_factor: int = 1
    """Replication factor used when the publisher has to create the topic (3 in production)."""
    topic_config: dict[str, str] = Field(default_factory=dict)
    """Topic configs used when creating the topic (``retention.ms``, ``min.insync.replicas``)."""
    create_topic: bool = True
    """Create the topic if it is missing; turn off where topics are provisioned separately."""
    client_id: str = "his-audit"
    """Kafka client id of the producer and consumers."""
    compression_type: Literal["gzip", "none"] = "gzip"
    """Record compression; gzip needs no extra package and multiplies throughput on JSON."""
    delivery_timeout_seconds: float = 30.0
    """How long the producer retries one record before the publisher gives up on the batch."""
    request_timeout_seconds: float = 10.0
    """Timeout of one broker request."""
    client_config: dict[str, Any] = Field(default_factory=dict)
    """Extra kafka-python settings for every client (TLS and SASL: ``security_protocol``,
    ``ssl_cafile``, ``sasl_mechanism``, ...)."""


class AuditSettings(BaseModel):
    """The audit trail: FHIR AuditEvents in an outbox table, published to Kafka."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    enabled: bool = True
    """Record audit events. Turning this off is meant for benchmarks, never for production."""
    outbox_url: str = "sqlite:///.his/gateway.db"
    """SQLAlchemy URL of the outbox. Use the database of the state it audits (``state.url``),
    so a write and its audit event commit in one transaction."""
    archive_url: str = "sqlite:///.his/audit-archive.db"
    """SQLAlchemy URL of the audit store that ``his audit archive`` fills (compliance side)."""
    instance_id: str = Field(default_factory=socket.gethostname)
    """This gateway instance: the AuditEvent source observer."""
    chain_id: str | None = None
    """The hash chain this instance appends to; defaults to ``instance_id``. Instances sharing
    one outbox database must use different chains, or share one chain (serialised by a lock)."""
    site: str = "his-gateway"
    """``AuditEvent.source.site``: the hospital or deployment name."""
    server_address: str | None = None
    """Network address recorded for the server agent; defaults to the host name."""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    """The Kafka topic and clients."""
    retention: datetime.timedelta = datetime.timedelta(days=7)
    """How long published rows stay in the outbox so ``republish`` can send them again."""
    read_mode: Literal["buffered", "committed"] = "buffered"
    """``buffered``: a read's audit event is queued in memory and committed by a background
    writer within ``write_interval_seconds`` (a crash can lose what is queued). ``committed``:
    the read waits until its event is committed (group commit; costs latency, loses nothing)."""
    queue_size: int = 20_000
    """Most calls whose events wait for the background writer; beyond it reads fail with
    ``AuditUnavailableError`` after ``enqueue_timeout_seconds``."""
    enqueue_timeout_seconds: float = 2.0
    """How long a read waits for room in a full queue before failing."""
    write_batch_size: int = 500
    """Most events the background writer commits in one transaction."""
    write_interval_seconds: float = 0.05
    """How long the background writer waits to fill a batch."""
    publish_batch_size: int = 2_000
    """Most outbox rows sent to Kafka per batch."""
    publish_interval_seconds: float = 0.2
    """Pause of the publisher when the outbox is empty."""
    publish_retry_max_seconds: float = 10.0
    """Longest pause between publish attempts while the broker is down."""
    purge_interval_seconds: float = 3600.0
    """How often published rows older than ``retention`` are deleted."""

    @property
    def effective_chain_id(self) -> str:
        """The chain id in use: ``chain_id`` or, when empty, ``instance_id``."""
        return self.chain_id or self.instance_id
