"""Building and reading HL7 v2 acknowledgments (ACK with MSA and ERR segments)."""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ._parser import (
    DEFAULT_ENCODING,
    SUPPORTED_VERSIONS,
    Hl7ParseError,
    Message,
    escape,
    parse_message,
)

__all__ = ["AckInfo", "build_ack", "read_ack"]

_counter = itertools.count(1)
_PREFIX = f"{os.getpid() % 100000:05d}"


def _control_id() -> str:
    return f"A{int(time.time() * 1000) % 10**13:013d}{_PREFIX}{next(_counter) % 10**6:06d}"


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (2, 5, 1)


def build_ack(
    code: str,
    original: Message | None,
    *,
    control_id: str = "",
    text: str = "",
    error_code: str = "",
    error_location: str = "",
    application: str = "HIS-SDK",
    facility: str = "",
) -> Message:
    """An ACK for ``original`` (or for an unreadable message when it is None).

    Args:
        code: MSA-1: AA, AE, AR (original mode) or CA, CE, CR (enhanced mode commit).
        original: The parsed message acknowledged, when it could be parsed.
        control_id: MSH-10 of the original when ``original`` is None (read from raw bytes).
        text: MSA-3 and ERR text (no patient data).
        error_code: HL7 table 0357 code for the ERR segment; no ERR segment when empty.
        error_location: ``SEG^sequence^field`` of the error.
        application: MSH-3 of the ACK (this receiver).
        facility: MSH-4 of the ACK.
    """
    enc = original.enc if original is not None else DEFAULT_ENCODING
    msh = original.msh if original is not None else None
    version = (original.version if original is not None else "") or "2.5.1"
    if version not in SUPPORTED_VERSIONS:
        version = "2.5.1"
    trigger = original.trigger_event if original is not None else ""
    acked_id = original.control_id if original is not None else control_id
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")

    def raw(n: int) -> str:
        return msh.raw(n) if msh is not None else ""

    rows: list[list[str]] = [
        [
            "MSH",
            "",
            "",
            escape(application, enc) if application else raw(5),
            escape(facility, enc) if facility else raw(6),
            raw(3),
            raw(4),
            now,
            "",
            enc.component.join(p for p in ("ACK", trigger, "ACK") if p) if trigger else "ACK",
            _control_id(),
            raw(11) or "P",
            version,
        ]
    ]
    if msh is not None and msh.raw(18):
        rows[0] += ["", "", "", "", "", msh.raw(18)]
    msa = ["MSA", code, escape(acked_id, enc)]
    if text:
        msa.append(escape(text[:80], enc))
    rows.append(msa)
    if error_code:
        severity = "E"
        if _version_tuple(version) >= (2, 5):
            rows.append(
                [
                    "ERR",
                    "",
                    error_location,
                    enc.component.join([error_code, escape(text, enc), "HL70357"]),
                    severity,
                ]
            )
        else:
            location = error_location or ""
            sub = enc.subcomponent
            rows.append(
                [
                    "ERR",
                    enc.component.join(
                        [
                            location.replace("^", enc.component),
                            sub.join([error_code, escape(text, enc), "HL70357"]),
                        ]
                    ),
                ]
            )
    return Message.build(rows, enc)


@dataclass(frozen=True)
class AckInfo:
    """What an acknowledgment says."""

    code: str
    """MSA-1."""
    control_id: str
    """MSA-2: the control id acknowledged."""
    text: str
    """MSA-3 and ERR texts, joined."""

    @property
    def accepted(self) -> bool:
        """True for AA and CA."""
        return self.code in ("AA", "CA")

    @property
    def retryable(self) -> bool:
        """True for AE/CE: the receiver had an error; AR/CR mean do not resend as is."""
        return self.code in ("AE", "CE")


def read_ack(data: bytes) -> AckInfo:
    """Parse an ACK's MSA (and ERR) segments.

    Raises:
        Hl7ParseError: Not an HL7 message, or no MSA segment.
    """
    msg = parse_message(data)
    msa = msg.first("MSA")
    if msa is None:
        raise Hl7ParseError("acknowledgment has no MSA segment", location="MSA")
    texts = [t for t in (msa.get(3),) if t]
    for err in msg.all("ERR"):
        detail = err.get(3, 2) or err.get(1, 4, 2) or err.get(8)
        code = err.get(3, 1) or err.get(1, 4, 1)
        if detail or code:
            texts.append(f"{code or ''} {detail or ''}".strip())
    return AckInfo((msa.get(1) or "").upper(), msa.get(2) or "", "; ".join(texts))
