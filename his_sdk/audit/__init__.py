"""The audit trail: IHE BALP AuditEvents in a hash-chained SQL outbox, published to Kafka.

The gateway builds one :class:`AuditContext` per call and hands it to an :class:`AuditTrail`:
``await trail.record(ctx)`` for reads, ``trail.append(conn, ctx)`` inside the transaction of a
write. Consumers use :class:`Archiver`/:class:`AuditArchive`, :func:`tail`, :func:`export` and
:func:`verify`; ``his audit ...`` wraps them (:data:`audit`, a click group).
"""

from his_sdk.audit._archive import (
    Archiver,
    ArchiveStats,
    AuditArchive,
    AuditFilter,
    export,
    tail,
)
from his_sdk.audit._balp import PendingEvent, build_audit_events
from his_sdk.audit._chain import (
    GENESIS_HASH,
    ChainedEvent,
    ChainReport,
    VerifyReport,
    canonical_json,
    chain_hash,
    verify,
)
from his_sdk.audit._cli import audit
from his_sdk.audit._context import (
    AuditAction,
    AuditContext,
    AuditObserver,
    AuditOutcome,
    AuditPrincipal,
    AuditUser,
    outcome_for_error,
)
from his_sdk.audit._errors import AuditPublishError, AuditUnavailableError
from his_sdk.audit._kafka import read_topic
from his_sdk.audit._outbox import Outbox, OutboxRow
from his_sdk.audit._publisher import Publisher
from his_sdk.audit._schema import make_engine
from his_sdk.audit._settings import AuditSettings, KafkaSettings
from his_sdk.audit._trail import AuditHealth, AuditTrail

__all__ = [
    "GENESIS_HASH",
    "ArchiveStats",
    "Archiver",
    "AuditAction",
    "AuditArchive",
    "AuditContext",
    "AuditFilter",
    "AuditHealth",
    "AuditObserver",
    "AuditOutcome",
    "AuditPrincipal",
    "AuditPublishError",
    "AuditSettings",
    "AuditTrail",
    "AuditUnavailableError",
    "AuditUser",
    "ChainReport",
    "ChainedEvent",
    "KafkaSettings",
    "Outbox",
    "OutboxRow",
    "PendingEvent",
    "Publisher",
    "VerifyReport",
    "audit",
    "build_audit_events",
    "canonical_json",
    "chain_hash",
    "export",
    "make_engine",
    "outcome_for_error",
    "read_topic",
    "tail",
    "verify",
]
