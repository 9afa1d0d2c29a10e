"""The HL7 v2 adapter: an MLLP feed in, a FHIR store out, orders written back over MLLP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import sqlalchemy.exc
from fhir.resources.R4B.resource import Resource

import his_sdk.errors
import his_sdk.search
from his_sdk.adapter import (
    AdapterCapabilities,
    ApprovedWrite,
    HealthState,
    HealthStatus,
    Interaction,
    SearchPage,
    TypeCapability,
    WriteOutcome,
)

from ._conceptmap import load_concept_maps
from ._convert import Context, model_for
from ._inbound import InboundOptions, InboundProcessor
from ._index import PARAMS
from ._mllp import MllpListener
from ._search import conditions_for, definitions_for
from ._sender import (
    AckRejectedError,
    DeliveryFailedError,
    Hl7Sender,
    build_order_message,
    control_id_for_key,
)
from ._settings import Hl7v2Settings
from ._store import (
    ConversionOutput,
    Hl7Store,
    MessageFilter,
    MessageStatus,
    OutboundRecord,
    OutboundStatus,
    StoredMessage,
)
from ._workers import ConversionPool, convert_raw_message

__all__ = ["Hl7v2Adapter"]

_log = logging.getLogger(__name__)
_WRITABLE = ("MedicationRequest", "ServiceRequest")


@contextlib.contextmanager
def _db_errors() -> Iterator[None]:
    """Translate database driver errors at the adapter's edge."""
    try:
        yield
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise his_sdk.errors.UpstreamUnavailableError(
            "the HL7 v2 message store is unavailable", diagnostics=type(exc).__name__
        ) from exc


class Hl7v2Adapter:
    """Serves FHIR reads and searches from messages received over MLLP.

    Inbound messages are acknowledged after they are durably stored, converted to FHIR R4
    (ADT, ORU, ORM, OML, RDE, VXU, SIU, MDM) and upserted into the adapter's FHIR store.
    Approved MedicationRequest and ServiceRequest writes are sent back as HL7 v2 orders.

    Build it with :meth:`from_settings`; call :meth:`start` before use and :meth:`close` at
    shutdown.
    """

    def __init__(self, settings: Hl7v2Settings) -> None:
        self.settings = settings
        concept_maps, fingerprint = load_concept_maps(settings.concept_maps)
        self._ctx = Context(
            namespace=settings.id_namespace,
            authority_prefix=settings.authority_prefix,
            concept_maps=concept_maps,
            patient_authority=settings.patient_authority,
            default_timezone=settings.default_timezone,
        )
        self.mapping_version = fingerprint
        self.store = Hl7Store(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        self._processor: InboundProcessor | None = None
        self._pool: ConversionPool | None = None
        self._listener: MllpListener | None = None
        self._sender: Hl7Sender | None = None
        self._send_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build the adapter from its config entry's ``settings`` mapping.

        Raises:
            pydantic.ValidationError: Unknown keys or bad values.
            ValueError: A ConceptMap file cannot be loaded.
        """
        return cls(Hl7v2Settings.model_validate(dict(settings)))

    # ---- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Create the schema, start the store workers, the listener and the sender."""
        s = self.settings
        if s.database_url.startswith("sqlite:///") and ":memory:" not in s.database_url:
            Path(s.database_url.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        if s.create_schema:
            with _db_errors():
                await asyncio.to_thread(self.store.create_schema)
        if s.conversion_processes and self._pool is None:
            self._pool = ConversionPool(s.conversion_processes, self._ctx, s.fallback_charset)
            await asyncio.to_thread(self._pool.warm_up)
        self._processor = InboundProcessor(
            self.store,
            self.convert_raw,
            InboundOptions(
                channel=s.channel,
                application=s.application,
                facility=s.facility,
                convert_before_ack=s.convert_before_ack,
                store_unsupported=s.store_unsupported,
                honor_enhanced_mode=s.honor_enhanced_mode,
                processing_ids=frozenset(s.processing_ids),
                fallback_charset=s.fallback_charset,
                max_batch=s.max_batch,
            ),
            self.mapping_version,
            convert_many=self._pool.convert_many if self._pool is not None else None,
        )
        await self._processor.start()
        if s.listen is not None:
            listen = s.listen
            self._listener = MllpListener(
                self._processor,
                host=listen.host,
                port=listen.port,
                ssl_context=listen.tls.server_context() if listen.tls else None,
                max_message_bytes=listen.max_message_bytes,
                idle_timeout=listen.idle_timeout_seconds,
                allowed_peers=listen.allowed_peers,
                max_in_flight=listen.max_in_flight,
            )
            await self._listener.start()
        if s.outbound is not None:
            out = s.outbound
            self._sender = Hl7Sender(
                out.host,
                out.port,
                ssl_context=out.tls.client_context() if out.tls else None,
                server_hostname=out.tls.server_hostname if out.tls else None,
                ack_timeout=out.ack_timeout_seconds,
                max_attempts=out.max_attempts,
                backoff_initial=out.backoff_initial_seconds,
                backoff_max=out.backoff_max_seconds,
                retry_on_application_error=out.retry_on_application_error,
            )

    async def close(self) -> None:
        """Stop the listener (in-flight messages are answered), workers and connections."""
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._processor is not None:
            await self._processor.close()
            self._processor = None
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)
            self._pool = None
        if self._sender is not None:
            await self._sender.close()
            self._sender = None
        await asyncio.to_thread(self.store.dispose)

    @property
    def listener_port(self) -> int | None:
        """The port the MLLP listener is bound to, or None without a listener."""
        return self._listener.port if self._listener is not None else None

    # ---- conversion, replay, message store -----------------------------------------

    def convert_raw(self, raw: bytes) -> ConversionOutput:
        """Parse and convert one raw message with the current mappings.

        Raises:
            ConversionFailure: The message cannot be parsed or converted.
        """
        return convert_raw_message(raw, self._ctx, self.settings.fallback_charset)

    async def replay(self, message_ids: Sequence[int]) -> dict[int, MessageStatus]:
        """Convert stored messages again through the current mappings (dead letters too).

        Returns each message's new status; failures stay in the dead-letter state with the
        new reason and never stop the messages after them.
        """
        with _db_errors():
            return await asyncio.to_thread(
                self.store.convert_stored, list(message_ids), self.convert_raw, self.mapping_version
            )

    async def find_messages(
        self, flt: MessageFilter | None = None, *, limit: int = 100, with_raw: bool = False
    ) -> list[StoredMessage]:
        """Stored messages by type, trigger, patient, control id, time or status."""
        with _db_errors():
            return await asyncio.to_thread(
                self.store.find_messages, flt or MessageFilter(), limit=limit, with_raw=with_raw
            )

    async def dead_letters(self, limit: int = 100) -> list[StoredMessage]:
        """Messages whose conversion failed, with the reason in ``error``."""
        return await self.find_messages(MessageFilter(status=MessageStatus.FAILED), limit=limit)

    async def outbound_messages(
        self, status: OutboundStatus | None = None, limit: int = 100
    ) -> list[OutboundRecord]:
        """Write-back messages, optionally of one status (``dead`` for the dead letters)."""
        with _db_errors():
            return await asyncio.to_thread(self.store.outbound_list, status, limit)

    async def metrics(self) -> dict[str, float]:
        """Counters of this channel (since start) and stored messages per status."""
        out: dict[str, float] = {}
        if self._processor is not None:
            out.update(self._processor.metrics.snapshot())
        if self._listener is not None:
            out["hl7v2_connections_refused_total"] = float(self._listener.connections_refused)
        with _db_errors():
            counts = await asyncio.to_thread(self.store.status_counts)
        for (channel, status), n in counts.items():
            if channel == self.settings.channel:
                out[f"hl7v2_stored_{status}"] = float(n)
        return out

    # ---- Adapter protocol ----------------------------------------------------------

    def capabilities(self) -> AdapterCapabilities:
        """Read and search on every converted type; create on orders when write-back is on."""
        types = {}
        for rtype in PARAMS:
            interactions = {Interaction.READ, Interaction.SEARCH}
            if self.settings.outbound is not None and rtype in _WRITABLE:
                interactions.add(Interaction.CREATE)
            types[rtype] = TypeCapability(
                rtype,
                frozenset(interactions),
                definitions_for(rtype),
                documentation="Converted from HL7 v2 messages received over MLLP.",
            )
        return AdapterCapabilities(types)

    def _check_type(self, resource_type: str) -> None:
        if resource_type not in PARAMS:
            raise his_sdk.errors.UnsupportedError(
                f"the HL7 v2 adapter does not serve {resource_type}"
            )

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        """One stored resource as a validated R4B model.

        Raises:
            his_sdk.errors.UnsupportedError: A type this adapter does not serve.
            his_sdk.errors.NotFoundError: No such resource.
            his_sdk.errors.UpstreamUnavailableError: The store cannot be reached.
            his_sdk.errors.UpstreamDataError: The stored content is no longer valid FHIR.
        """
        self._check_type(resource_type)
        with _db_errors():
            stored = await asyncio.to_thread(self.store.get_resource, resource_type, resource_id)
        if stored is None:
            raise his_sdk.errors.NotFoundError(f"{resource_type}/{resource_id} not found")
        return self._model(stored.content)

    @staticmethod
    def _model(content: dict[str, Any]) -> Resource:
        try:
            model = model_for(content)
        except ValueError as exc:
            raise his_sdk.errors.UpstreamDataError(
                f"stored {content.get('resourceType')}/{content.get('id')} is not valid FHIR R4"
            ) from exc
        assert isinstance(model, Resource)
        return model

    async def search(self, query: his_sdk.search.SearchQuery) -> SearchPage:
        """One page of matches in id order; ``next_position`` is the last id returned.

        Raises:
            his_sdk.errors.UnsupportedError: A type this adapter does not serve.
            his_sdk.errors.UnsupportedParameterError: A parameter it cannot evaluate.
            his_sdk.errors.UpstreamUnavailableError: The store cannot be reached.
        """
        self._check_type(query.resource_type)
        conditions = conditions_for(query.resource_type, query.criteria)
        limit = max(0, query.count)
        with _db_errors():
            rows, total = await asyncio.to_thread(
                self.store.search_resources,
                query.resource_type,
                conditions,
                after_id=query.position,
                limit=limit + 1,
                include_total=query.include_total,
            )
        page = rows[:limit]
        next_position = page[-1].resource_id if len(rows) > limit and page else None
        return SearchPage([self._model(r.content) for r in page], next_position, total)

    async def execute(self, write: ApprovedWrite) -> WriteOutcome:
        """Send an approved MedicationRequest or ServiceRequest to the EHR as an order.

        Executing the same ``write.key`` again returns the first outcome without sending;
        after a delivery failure it resends with the same MSH-10.

        Raises:
            his_sdk.errors.UnsupportedError: Write-back is off, or not a CREATE of an order.
            his_sdk.errors.InvalidRequestError: The resource cannot become an HL7 order.
            his_sdk.errors.PreconditionFailedError: The EHR answered AE or AR (its text is
                in ``diagnostics``).
            his_sdk.errors.UpstreamUnavailableError: No acknowledgment after every retry.
        """
        out = self.settings.outbound
        if self._sender is None or out is None:
            raise his_sdk.errors.UnsupportedError("HL7 v2 write-back is not configured")
        if write.interaction is not Interaction.CREATE or write.resource_type not in _WRITABLE:
            raise his_sdk.errors.UnsupportedError(
                "the HL7 v2 adapter executes only CREATE of MedicationRequest or ServiceRequest"
            )
        if write.resource is None:
            raise his_sdk.errors.InvalidRequestError("approved write has no resource body")
        async with self._send_lock:
            return await self._execute(
                write,
                out.medication_request_message
                if write.resource_type == "MedicationRequest"
                else out.service_request_message,
            )

    async def _execute(self, write: ApprovedWrite, message_type: str) -> WriteOutcome:
        assert self._sender is not None and write.resource is not None
        out = self.settings.outbound
        assert out is not None
        with _db_errors():
            record = await asyncio.to_thread(self.store.outbound_get, write.key)
        if record is not None and record.status is OutboundStatus.SENT:
            stored = await asyncio.to_thread(
                self.store.get_resource, record.resource_type, record.resource_id
            )
            return WriteOutcome(
                record.resource_type,
                record.resource_id,
                str(stored.version_id) if stored else None,
                f"already sent ({record.ack_code})",
            )
        if record is not None and record.status is OutboundStatus.REJECTED:
            raise his_sdk.errors.PreconditionFailedError(
                f"the EHR rejected this order ({record.ack_code})", diagnostics=record.last_error
            )
        body = write.resource.model_dump(mode="json", exclude_none=True)
        resource_id = body.get("id") or self._ctx.make_id(write.resource_type, "write", write.key)
        body["id"] = resource_id
        control_id = control_id_for_key(write.key)
        placer = control_id
        body.setdefault("identifier", []).append(
            {
                "system": f"{self.settings.authority_prefix}{self.settings.application}",
                "value": placer,
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}
                    ]
                },
            }
        )
        if record is None:
            patient = None
            subject = str((body.get("subject") or {}).get("reference", ""))
            if subject.startswith("Patient/"):
                with _db_errors():
                    found = await asyncio.to_thread(self.store.get_resource, "Patient", subject[8:])
                patient = found.content if found else None
            try:
                message = build_order_message(
                    body,
                    patient,
                    message_type=message_type,
                    control_id=control_id,
                    placer_number=placer,
                    sending_application=self.settings.application,
                    sending_facility=self.settings.facility,
                    receiving_application=out.receiving_application,
                    receiving_facility=out.receiving_facility,
                    version=out.version,
                    processing_id=out.processing_id,
                )
            except ValueError as exc:
                raise his_sdk.errors.InvalidRequestError(str(exc)) from exc
            record = OutboundRecord(
                id=0,
                key=write.key,
                channel=self.settings.channel,
                control_id=control_id,
                message_type=message_type,
                resource_type=write.resource_type,
                resource_id=resource_id,
                status=OutboundStatus.PENDING,
                attempts=0,
                ack_code="",
                last_error=None,
                payload=message.to_er7(),
            )
            with _db_errors():
                record = await asyncio.to_thread(self.store.outbound_create, record)
        payload = record.payload.encode("utf-8")
        try:
            ack, attempts = await self._sender.send(payload, record.control_id)
        except AckRejectedError as exc:
            await asyncio.to_thread(
                self.store.outbound_update,
                record.id,
                status=OutboundStatus.REJECTED,
                attempts=record.attempts + exc.attempts,
                ack_code=exc.ack.code,
                last_error=exc.ack.text,
            )
            raise his_sdk.errors.PreconditionFailedError(
                f"the EHR rejected this order ({exc.ack.code})", diagnostics=exc.ack.text or None
            ) from exc
        except DeliveryFailedError as exc:
            await asyncio.to_thread(
                self.store.outbound_update,
                record.id,
                status=OutboundStatus.DEAD,
                attempts=record.attempts + exc.attempts,
                last_error=exc.reason,
            )
            raise his_sdk.errors.UpstreamUnavailableError(
                "the EHR did not acknowledge the order", diagnostics=exc.reason
            ) from exc
        with _db_errors():
            await asyncio.to_thread(
                self.store.outbound_update,
                record.id,
                status=OutboundStatus.SENT,
                attempts=record.attempts + attempts,
                ack_code=ack.code,
            )
            version = await asyncio.to_thread(self.store.put_resource, body)
        return WriteOutcome(
            write.resource_type,
            resource_id,
            str(version),
            f"sent as {message_type}, acknowledged {ack.code}",
        )

    async def health(self) -> HealthStatus:
        """SERVING when the store answers and the listener is up; no patient data."""
        try:
            await asyncio.to_thread(self.store.ping)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            return HealthStatus(
                HealthState.NOT_SERVING, f"message store unreachable: {type(exc).__name__}"
            )
        if self.settings.listen is not None and self._listener is None:
            return HealthStatus(HealthState.DEGRADED, "MLLP listener not started")
        return HealthStatus(HealthState.SERVING, "")
