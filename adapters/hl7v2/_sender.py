"""Outbound write-back: approved orders as HL7 v2 messages, sent over MLLP with retries."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ._ack import AckInfo, read_ack
from ._mllp import MllpConnection
from ._parser import DEFAULT_ENCODING, Hl7ParseError, Message, escape

__all__ = [
    "AckRejectedError",
    "DeliveryFailedError",
    "Hl7Sender",
    "build_order_message",
    "control_id_for_key",
]

_log = logging.getLogger(__name__)


class AckRejectedError(Exception):
    """The receiver answered AE, AR, CE or CR; ``ack`` carries its MSA/ERR text."""

    def __init__(self, ack: AckInfo, attempts: int) -> None:
        super().__init__(f"receiver answered {ack.code}")
        self.ack = ack
        self.attempts = attempts


class DeliveryFailedError(Exception):
    """No acceptable answer after every attempt (timeouts, dropped connections)."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


class Hl7Sender:
    """Sends messages over one persistent MLLP connection and validates each ACK.

    Args:
        host: Receiver address.
        port: Receiver port.
        ssl_context: Client TLS context, or None for plain TCP.
        server_hostname: Name to verify in the server certificate.
        ack_timeout: Seconds to wait for each acknowledgment.
        max_attempts: Sends per message before it is dead-lettered.
        backoff_initial: Seconds before the first retry; doubles each time.
        backoff_max: Longest wait between retries.
        retry_on_application_error: Resend after AE/CE (the receiver's error may be
            transient); AR/CR are never resent.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        ack_timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        retry_on_application_error: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._conn = MllpConnection(
            host,
            port,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
            connect_timeout=connect_timeout,
        )
        self.ack_timeout = ack_timeout
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.retry_on_application_error = retry_on_application_error

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def send(self, message: bytes, control_id: str) -> tuple[AckInfo, int]:
        """Send ``message`` until it is accepted; returns the ACK and the attempts used.

        Every attempt sends the same bytes, so MSH-10 stays the same and the receiver can
        drop duplicates.

        Raises:
            AckRejectedError: AR/CR, or AE/CE when not retried (or on the last attempt).
            DeliveryFailedError: No valid acknowledgment after ``max_attempts``.
        """
        last_error = "not sent"
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                delay = min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 2))
                await asyncio.sleep(delay)
            try:
                reply = await self._conn.request(message, self.ack_timeout)
            except TimeoutError:
                last_error = f"no acknowledgment within {self.ack_timeout:g} s"
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ssl.SSLError,
            ) as exc:
                last_error = f"connection failed: {type(exc).__name__}"
            else:
                try:
                    ack = read_ack(reply)
                except Hl7ParseError:
                    last_error = "reply is not an HL7 acknowledgment"
                    await self._conn.close()
                else:
                    if ack.control_id != control_id:
                        # A late reply to an earlier attempt; the stream is out of step.
                        last_error = "acknowledgment names another message control id"
                        await self._conn.close()
                    elif ack.accepted:
                        return ack, attempt
                    elif (
                        ack.retryable
                        and self.retry_on_application_error
                        and (attempt < self.max_attempts)
                    ):
                        last_error = f"receiver answered {ack.code}: {ack.text}"
                    else:
                        raise AckRejectedError(ack, attempt)
            _log.warning(
                "outbound attempt %d/%d failed: %s", attempt, self.max_attempts, last_error
            )
        raise DeliveryFailedError(last_error, self.max_attempts)


def control_id_for_key(key: str) -> str:
    """A deterministic MSH-10 (20 characters) for an idempotency key."""
    return "HIS" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:17].upper()


def _cwe(concept: Mapping[str, Any] | None) -> str:
    if not concept:
        return ""
    enc = DEFAULT_ENCODING
    codings = concept.get("coding") or []
    if codings:
        c = codings[0]
        system = str(c.get("system", ""))
        name = {
            "http://loinc.org": "LN",
            "http://snomed.info/sct": "SCT",
            "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
            "http://hl7.org/fhir/sid/ndc": "NDC",
            "http://hl7.org/fhir/sid/cvx": "CVX",
        }.get(system, system.rsplit(":", 1)[-1] if system else "")
        parts = [
            escape(str(c.get("code", "")), enc),
            escape(str(c.get("display", concept.get("text", ""))), enc),
            escape(name, enc),
        ]
        return enc.component.join(parts).rstrip(enc.component)
    return enc.component.join(["", escape(str(concept.get("text", "")), enc)])


def _dtm(value: str | None) -> str:
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value.replace("-", "")[:8]
    if parsed.tzinfo is None:
        return parsed.strftime("%Y%m%d%H%M%S")
    return parsed.strftime("%Y%m%d%H%M%S%z")


def _person_name(ref: Mapping[str, Any] | None) -> str:
    if not ref:
        return ""
    enc = DEFAULT_ENCODING
    ident = (ref.get("identifier") or {}).get("value", "")
    return enc.component.join(
        [escape(str(ident), enc), escape(str(ref.get("display", "")), enc)]
    ).rstrip("^")


def build_order_message(
    resource: Mapping[str, Any],
    patient: Mapping[str, Any] | None,
    *,
    message_type: str,
    control_id: str,
    placer_number: str,
    sending_application: str,
    sending_facility: str,
    receiving_application: str,
    receiving_facility: str,
    version: str = "2.5.1",
    processing_id: str = "P",
) -> Message:
    """A MedicationRequest or ServiceRequest as RDE^O11, ORM^O01 or OML^O21.

    Raises:
        ValueError: The resource lacks what the message needs (code, patient).
    """
    enc = DEFAULT_ENCODING
    rtype = resource.get("resourceType")
    code, event = message_type.split("^", 1)
    structure = {"RDE": "RDE_O11", "ORM": "ORM_O01", "OML": "OML_O21"}[code]
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    rows: list[list[str]] = [
        [
            "MSH",
            "",
            "",
            escape(sending_application, enc),
            escape(sending_facility, enc),
            escape(receiving_application, enc),
            escape(receiving_facility, enc),
            now,
            "",
            enc.component.join([code, event, structure]),
            control_id,
            processing_id,
            version,
        ]
    ]
    if patient is None:
        raise ValueError("the order's subject Patient is not in the adapter's store")
    ids = []
    for ident in patient.get("identifier", []) or []:
        value = ident.get("value")
        if not value:
            continue
        type_code = ""
        for c in (ident.get("type") or {}).get("coding", []) or []:
            type_code = c.get("code", "")
        system = str(ident.get("system", ""))
        authority = system.rsplit(":", 1)[-1] if system else ""
        ids.append(
            enc.component.join(
                [escape(value, enc), "", "", escape(authority, enc), escape(type_code, enc)]
            ).rstrip("^")
        )
    if not ids:
        raise ValueError("the order's subject Patient has no identifier to send in PID-3")
    names = []
    for name in patient.get("name", []) or []:
        given = name.get("given") or []
        names.append(
            enc.component.join(
                [
                    escape(name.get("family", ""), enc),
                    escape(given[0] if given else "", enc),
                    escape(" ".join(given[1:]), enc),
                ]
            ).rstrip("^")
        )
    gender = {"male": "M", "female": "F", "other": "O", "unknown": "U"}.get(
        patient.get("gender", ""), ""
    )
    rows.append(
        [
            "PID",
            "1",
            "",
            enc.repetition.join(ids),
            "",
            enc.repetition.join(names),
            "",
            str(patient.get("birthDate", "")).replace("-", ""),
            gender,
        ]
    )
    requester = _person_name(resource.get("requester"))
    authored = _dtm(resource.get("authoredOn"))
    rows.append(
        [
            "ORC",
            "NW",
            escape(placer_number, enc) + enc.component + escape(sending_application, enc),
            "",
            "",
            "",
            "",
            "",
            "",
            authored,
            "",
            "",
            requester,
        ]
    )
    priority = {"stat": "S", "asap": "A", "routine": "R", "urgent": "P"}.get(
        str(resource.get("priority", "")), ""
    )
    if priority:
        rows.append(["TQ1", "1", "", "", "", "", "", "", "", priority])
    if rtype == "MedicationRequest":
        med = _cwe(resource.get("medicationCodeableConcept"))
        if not med:
            raise ValueError("MedicationRequest needs medicationCodeableConcept")
        dosage = (resource.get("dosageInstruction") or [{}])[0]
        dose = ((dosage.get("doseAndRate") or [{}])[0]).get("doseQuantity") or {}
        amount = str(dose.get("value", ""))
        units = escape(str(dose.get("code") or dose.get("unit") or ""), enc)
        instructions = escape(str(dosage.get("text", "")), enc)
        if code == "RDE":
            rows.append(["RXE", "", med, amount, "", units, "", enc.component + instructions])
        else:
            rows.append(["RXO", med, amount, "", units, "", "", enc.component + instructions])
        route = _cwe(dosage.get("route"))
        if route:
            rows.append(["RXR", route])
    elif rtype == "ServiceRequest":
        service = _cwe(resource.get("code"))
        if not service:
            raise ValueError("ServiceRequest needs code")
        occurrence = _dtm(resource.get("occurrenceDateTime"))
        rows.append(
            [
                "OBR",
                "1",
                escape(placer_number, enc) + enc.component + escape(sending_application, enc),
                "",
                service,
                "",
                occurrence,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                requester,
            ]
        )
    else:
        raise ValueError(f"{rtype} cannot be sent as an HL7 v2 order")
    for note in resource.get("note", []) or []:
        if note.get("text"):
            rows.append(["NTE", str(len(rows)), "", escape(note["text"], enc)])
    return Message.build(rows, enc)
