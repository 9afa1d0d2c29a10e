"""Settings of the HL7 v2 adapter (the ``settings`` mapping of its config entry)."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Hl7v2Settings", "ListenerSettings", "OutboundSettings", "TlsSettings"]


class TlsSettings(BaseModel):
    """TLS for the listener (server side) or the sender (client side)."""

    model_config = ConfigDict(extra="forbid")

    cert: Path | None = None
    """PEM certificate chain presented to the peer."""
    key: Path | None = None
    """PEM private key of ``cert``."""
    ca: Path | None = None
    """PEM CA bundle: on the listener it turns on mutual TLS (client certificates required);
    on the sender it verifies the server (system CAs when unset)."""
    server_hostname: str | None = None
    """Sender only: the name to verify in the server certificate (default: the host)."""

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for a listener."""
        if self.cert is None:
            raise ValueError("listener TLS needs 'cert' (and 'key')")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        if self.ca is not None:
            ctx.load_verify_locations(self.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """An SSL context for a sender."""
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.ca) if self.ca else None
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert is not None:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx


class ListenerSettings(BaseModel):
    """The inbound MLLP listener."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = 2575
    """TCP port; 0 picks a free one."""
    tls: TlsSettings | None = None
    """TLS (and mutual TLS with ``tls.ca``); plain TCP when unset."""
    allowed_peers: list[str] = Field(default_factory=list)
    """Networks or addresses allowed to connect; empty allows any."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Larger messages are rejected with AR."""
    idle_timeout_seconds: float = 300.0
    """An idle connection is closed after this long."""
    max_in_flight: int = 64
    """Pipelined messages of one connection processed at once."""


class OutboundSettings(BaseModel):
    """Write-back of approved orders to the EHR's MLLP endpoint."""

    model_config = ConfigDict(extra="forbid")

    host: str
    """The EHR's MLLP host."""
    port: int
    """The EHR's MLLP port."""
    tls: TlsSettings | None = None
    """Client TLS; plain TCP when unset."""
    medication_request_message: Literal["RDE^O11", "ORM^O01", "OML^O21"] = "RDE^O11"
    """Message type for approved MedicationRequests."""
    service_request_message: Literal["ORM^O01", "OML^O21"] = "OML^O21"
    """Message type for approved ServiceRequests."""
    receiving_application: str = ""
    """MSH-5 of outbound messages."""
    receiving_facility: str = ""
    """MSH-6 of outbound messages."""
    version: str = "2.5.1"
    """MSH-12 of outbound messages."""
    processing_id: str = "P"
    """MSH-11 of outbound messages."""
    ack_timeout_seconds: float = 30.0
    """Wait for each ACK this long."""
    max_attempts: int = 5
    """Sends per message before it is dead-lettered."""
    backoff_initial_seconds: float = 1.0
    """First retry delay; doubles per attempt."""
    backoff_max_seconds: float = 60.0
    """Longest retry delay."""
    retry_on_application_error: bool = False
    """Resend after AE/CE answers (AR/CR are never resent)."""


class Hl7v2Settings(BaseModel):
    """Everything the adapter reads from its config entry."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = "sqlite:///.his/hl7v2.db"
    """Message and FHIR store (SQLAlchemy URL; ``postgresql+psycopg://...`` in production)."""
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    """SQLite durability; FULL survives power loss, as an AA promises."""
    create_schema: bool = True
    """Create missing tables at start."""
    channel: str = "default"
    """Name of this feed in the store and the metrics."""
    application: str = "HIS-SDK"
    """MSH-3 of ACKs and outbound messages."""
    facility: str = ""
    """MSH-4 of ACKs and outbound messages."""
    listen: ListenerSettings | None = Field(default_factory=ListenerSettings)
    """The inbound listener; null for a read-only store (replay, tests)."""
    convert_before_ack: bool = True
    """Original mode: convert before answering, so a mapping failure is answered AE.
    False answers AA once stored and converts in the background."""
    conversion_processes: int = Field(default=0, ge=0, le=64)
    """Worker processes for background conversion (``convert_before_ack: false``, enhanced
    mode); 0 converts in a thread of the adapter's process."""
    store_unsupported: bool = False
    """Store and accept message types without a mapping (status skipped) instead of AR."""
    honor_enhanced_mode: bool = True
    """Answer CA/CE/CR per MSH-15 when a sender asks for enhanced acknowledgment."""
    processing_ids: list[str] = Field(default_factory=list)
    """Accepted MSH-11 values (P, T, D); empty accepts any."""
    fallback_charset: str = "cp1252"
    """Character set for messages without MSH-18 that are not valid UTF-8."""
    max_batch: int = 256
    """Messages stored per transaction at most."""
    id_namespace: uuid.UUID = uuid.UUID("5b0d3f6e-1c53-4c77-9f1e-6c7c2e0f3a10")
    """Namespace of deterministic resource ids; give each site its own."""
    authority_prefix: str = "urn:hl7v2:authority:"
    """URI prefix of identifier systems known only by an assigning-authority name."""
    patient_authority: str = ""
    """PID-3 assigning authority whose identifier keys patients (default: first MR)."""
    default_timezone: str = ""
    """UTC offset (``+01:00``) for HL7 times without one; empty keeps only their date."""
    concept_maps: list[Path] = Field(default_factory=list)
    """FHIR ConceptMap JSON files mapping local codes; edited by the integrator."""
    outbound: OutboundSettings | None = None
    """Write-back of approved orders; None disables ``execute``."""
