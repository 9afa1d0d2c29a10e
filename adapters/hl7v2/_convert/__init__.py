"""HL7 v2 messages to validated FHIR R4 resources, per message type.

Every converter walks the segments in order, keeping the current patient, visit and order as
it goes, so repeated groups (several patients in one ORU, several orders in one ORM) convert
without a full grammar of each message structure.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from .._parser import Message, Segment, parse_datetime
from .._store import ConversionFailure, ConversionOutput
from . import _resources as r
from ._datatypes import JSON, Context, fhir_datetime

__all__ = ["SUPPORTED_EVENTS", "Context", "convert_message", "is_supported"]

_log = logging.getLogger(__name__)


class _Walk:
    """The state shared by one conversion: resources so far and the current patient/visit."""

    def __init__(self, msg: Message, ctx: Context) -> None:
        self.msg = msg
        self.ctx = ctx
        self.resources: list[JSON] = []
        self.patient_id: str | None = None
        self.first_patient_id: str | None = None
        self.encounter_id: str | None = None
        self.default_time = fhir_datetime(msg.msh.get(7), ctx)

    def add(self, resource: JSON | None) -> str | None:
        if resource is None:
            return None
        for i, existing in enumerate(self.resources):
            if (existing["resourceType"], existing["id"]) == (
                resource["resourceType"],
                resource["id"],
            ):
                self.resources[i] = resource
                return str(resource["id"])
        self.resources.append(resource)
        return str(resource["id"])

    def patient(self, pid: Segment, pd1: Segment | None) -> None:
        resource = r.patient(pid, pd1, self.ctx)
        if resource is None:
            raise ConversionFailure("PID-3 has no patient identifier")
        self.patient_id = self.add(resource)
        self.encounter_id = None
        if self.first_patient_id is None:
            self.first_patient_id = self.patient_id

    def visit(self, pv1: Segment, pv2: Segment | None, event: str | None) -> None:
        if self.patient_id is None:
            return
        self.encounter_id = self.add(
            r.encounter(pv1, pv2, self.msg, self.patient_id, self.ctx, event=event)
        )

    def require_patient(self) -> str:
        if self.patient_id is None:
            raise ConversionFailure("message has no PID segment before its clinical data")
        return self.patient_id


def _next(segments: list[Segment], i: int, name: str) -> Segment | None:
    return segments[i + 1] if i + 1 < len(segments) and segments[i + 1].name == name else None


def _header(w: _Walk, seg: Segment, i: int, segments: list[Segment], event: str | None) -> bool:
    """Handle PID/PV1; True when ``seg`` was one of them."""
    if seg.name == "PID":
        pd1 = next((s for s in segments[i + 1 : i + 3] if s.name == "PD1"), None)
        w.patient(seg, pd1)
        return True
    if seg.name == "PV1":
        w.visit(seg, _next(segments, i, "PV2"), event)
        return True
    return False


def _adt(w: _Walk) -> None:
    segments = w.msg.segments
    event = w.msg.trigger_event
    obx_index = 0
    for i, seg in enumerate(segments):
        if _header(w, seg, i, segments, event):
            if seg.name == "PV1" and event in ("A28", "A31", "A40") and w.encounter_id:
                # Person-level events carry a dummy visit: do not invent an encounter.
                w.resources = [x for x in w.resources if x["id"] != w.encounter_id]
                w.encounter_id = None
            continue
        if seg.name == "MRG" and w.patient_id:
            w.add(r.merged_patient(seg, w.patient_id, w.ctx))
            survivor = next(x for x in w.resources if x["id"] == w.patient_id)
            old = w.resources[-1]
            if old["id"] != w.patient_id and old["resourceType"] == "Patient":
                survivor.setdefault("link", []).append(
                    {"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"}
                )
        elif seg.name == "AL1":
            w.add(r.allergy(seg, w.require_patient(), w.ctx))
        elif seg.name == "DG1":
            w.add(r.condition(seg, w.require_patient(), w.encounter_id, w.ctx))
        elif seg.name == "OBX":
            obx_index += 1
            w.add(
                r.observation(
                    seg,
                    r.notes_after(segments, i),
                    w.require_patient(),
                    w.encounter_id,
                    w.ctx,
                    parent_key=("adt", w.encounter_id or w.require_patient()),
                    default_time=None,
                )
            )
    if w.first_patient_id is None:
        raise ConversionFailure("ADT message has no PID segment")


def _oru(w: _Walk) -> None:
    segments = w.msg.segments
    orc: Segment | None = None
    obr: Segment | None = None
    obr_index = 0
    results: list[str] = []
    sr_id: str | None = None

    def flush() -> None:
        if obr is None:
            return
        w.add(
            r.diagnostic_report(
                orc, obr, w.msg, w.patient_id, w.encounter_id, results, sr_id, w.ctx, obr_index
            )
        )

    for i, seg in enumerate(segments):
        if seg.name in ("PID", "PV1"):
            flush()
            obr, orc, results = None, None, []
            _header(w, seg, i, segments, None)
        elif seg.name == "ORC":
            flush()
            obr, results = None, []
            orc = seg
        elif seg.name == "OBR":
            flush()
            obr_index += 1
            obr, results = seg, []
            tq1 = _next(segments, i, "TQ1")
            sr_id = w.add(
                r.service_request(
                    orc, seg, tq1, [], w.msg, w.patient_id, w.encounter_id, w.ctx, obr_index
                )
            )
            if sr_id is not None:
                sr = w.resources[-1]
                sr["status"] = (
                    "completed" if (seg.get(25) or "").upper() in ("F", "C") else "active"
                )
        elif seg.name == "OBX":
            key = r.order_key(orc, obr, w.msg, obr_index)
            based_on = {"reference": f"ServiceRequest/{sr_id}"} if sr_id else None
            time = fhir_datetime(obr.get(7), w.ctx) if obr is not None else None
            oid = w.add(
                r.observation(
                    seg,
                    r.notes_after(segments, i),
                    w.patient_id,
                    w.encounter_id,
                    w.ctx,
                    parent_key=key,
                    default_time=time,
                    based_on=based_on,
                )
            )
            if oid is not None and obr is not None:
                results.append(oid)
    flush()
    if w.first_patient_id is None:
        raise ConversionFailure("ORU message has no PID segment")


def _orders(w: _Walk) -> None:
    """ORM^O01, OML^O21 and RDE^O11/O01: ServiceRequests and MedicationRequests."""
    segments = w.msg.segments
    orc: Segment | None = None
    index = 0
    med_done_for_orc = False
    for i, seg in enumerate(segments):
        if _header(w, seg, i, segments, None):
            continue
        if seg.name == "ORC":
            orc = seg
            index += 1
            med_done_for_orc = False
        elif seg.name == "OBR":
            tq1 = _next(segments, i, "TQ1")
            w.add(
                r.service_request(
                    orc,
                    seg,
                    tq1,
                    r.notes_after(segments, i),
                    w.msg,
                    w.patient_id,
                    w.encounter_id,
                    w.ctx,
                    index,
                )
            )
        elif seg.name in ("RXE", "RXO"):
            has_rxe = any(s.name == "RXE" for s in _order_group(segments, i))
            if seg.name == "RXO" and has_rxe:
                continue  # RDE carries both; RXE is the pharmacy's encoded order.
            if med_done_for_orc:
                index += 1
            group = _order_group(segments, i)
            rxrs = [s for s in group if s.name == "RXR"]
            tq1 = next((s for s in segments[max(0, i - 3) : i + 3] if s.name == "TQ1"), None)
            w.add(
                r.medication_request(
                    orc,
                    seg,
                    rxrs,
                    tq1,
                    r.notes_after(segments, i),
                    w.msg,
                    w.patient_id,
                    w.encounter_id,
                    w.ctx,
                    index,
                )
            )
            med_done_for_orc = True
        elif seg.name == "DG1" and w.patient_id:
            w.add(r.condition(seg, w.patient_id, w.encounter_id, w.ctx))
        elif seg.name == "AL1" and w.patient_id:
            w.add(r.allergy(seg, w.patient_id, w.ctx))
    if w.first_patient_id is None:
        raise ConversionFailure("order message has no PID segment")


def _order_group(segments: list[Segment], i: int) -> list[Segment]:
    """Segments of the order ``segments[i]`` belongs to, up to the next ORC."""
    start = i
    while start > 0 and segments[start - 1].name not in ("ORC", "PID", "PV1", "PV2"):
        start -= 1
    end = i + 1
    while end < len(segments) and segments[end].name != "ORC":
        end += 1
    return segments[start:end]


def _vxu(w: _Walk) -> None:
    segments = w.msg.segments
    orc: Segment | None = None
    index = 0
    imm_key: tuple[str, ...] = ("vxu",)
    for i, seg in enumerate(segments):
        if _header(w, seg, i, segments, None):
            continue
        if seg.name == "ORC":
            orc = seg
        elif seg.name == "RXA":
            index += 1
            rxr = _next(segments, i, "RXR")
            imm_id = w.add(r.immunization(orc, seg, rxr, w.msg, w.require_patient(), w.ctx, index))
            imm_key = ("immunization", imm_id or str(index))
        elif seg.name == "OBX":
            w.add(
                r.observation(
                    seg,
                    r.notes_after(segments, i),
                    w.require_patient(),
                    w.encounter_id,
                    w.ctx,
                    parent_key=imm_key,
                    default_time=None,
                )
            )
        elif seg.name == "AL1":
            w.add(r.allergy(seg, w.require_patient(), w.ctx))
    if w.first_patient_id is None:
        raise ConversionFailure("VXU message has no PID segment")


def _siu(w: _Walk) -> None:
    segments = w.msg.segments
    sch = w.msg.first("SCH")
    if sch is None:
        raise ConversionFailure("SIU message has no SCH segment")
    for i, seg in enumerate(segments):
        _header(w, seg, i, segments, None)
    sch_index = segments.index(sch)
    tq1 = _next(segments, sch_index, "TQ1")
    notes = r.notes_after(segments, sch_index if tq1 is None else sch_index + 1)
    resources = [s for s in segments if s.name in ("AIS", "AIG", "AIL", "AIP")]
    w.add(r.appointment(sch, tq1, resources, notes, w.msg, w.first_patient_id, w.ctx))


def _mdm(w: _Walk) -> None:
    segments = w.msg.segments
    for i, seg in enumerate(segments):
        _header(w, seg, i, segments, None)
    txa = w.msg.first("TXA")
    if txa is None:
        raise ConversionFailure("MDM message has no TXA segment")
    obxs = w.msg.all("OBX")
    w.add(r.document_reference(txa, obxs, w.msg, w.first_patient_id, w.encounter_id, w.ctx))
    if w.first_patient_id is None:
        raise ConversionFailure("MDM message has no PID segment")


_ADT_EVENTS = (
    "A01",
    "A02",
    "A03",
    "A04",
    "A05",
    "A06",
    "A07",
    "A08",
    "A11",
    "A13",
    "A14",
    "A28",
    "A31",
    "A40",
)
SUPPORTED_EVENTS: dict[tuple[str, str], Callable[[_Walk], None]] = {
    **{("ADT", e): _adt for e in _ADT_EVENTS},
    ("ORU", "R01"): _oru,
    ("ORM", "O01"): _orders,
    ("OML", "O21"): _orders,
    ("RDE", "O11"): _orders,
    ("RDE", "O01"): _orders,
    ("VXU", "V04"): _vxu,
    **{("SIU", e): _siu for e in ("S12", "S13", "S14", "S15", "S16", "S17", "S26")},
    **{("MDM", e): _mdm for e in ("T01", "T02", "T05", "T06", "T09", "T10", "T11")},
}
"""(message code, trigger event) pairs this adapter converts."""


def is_supported(message_code: str, trigger_event: str) -> bool:
    """Whether ``message_code^trigger_event`` converts to FHIR."""
    return (message_code.upper(), trigger_event.upper()) in SUPPORTED_EVENTS


_VALIDATED_MAX = 8192
_validated: dict[str, None] = {}
"""JSON of resources that passed validation recently (insertion order, oldest first)."""
_validated_lock = threading.Lock()


def _validate(resource: JSON) -> None:
    """Validate one resource with its ``fhir.resources`` R4B model.

    Validation depends only on the content, so content that validated before (a patient
    resent with every message, an unchanged order) is not validated again: the compact JSON
    of each valid resource is remembered, the most recent ``_VALIDATED_MAX`` of them.
    """
    body = {k: v for k, v in resource.items() if k != "_merge"}
    try:
        key: str | None = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        key = None  # not plain JSON: always validated, never remembered
    if key is not None and key in _validated:
        return
    model = get_fhir_model_class(resource["resourceType"])
    try:
        model.model_validate(body)
    except pydantic.ValidationError as exc:
        # Only locations and error kinds: the input values are patient data.
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])} ({err['type']})" for err in exc.errors()[:5]
        )
        raise ConversionFailure(
            f"{resource['resourceType']} failed FHIR validation at {where}"
        ) from exc
    if key is None:
        return
    with _validated_lock:
        _validated[key] = None
        while len(_validated) > _VALIDATED_MAX:
            del _validated[next(iter(_validated))]


def convert_message(msg: Message, ctx: Context) -> ConversionOutput:
    """Convert one parsed message into validated FHIR resources.

    Raises:
        ConversionFailure: The type is not supported, the message lacks what the mapping
            needs, or a produced resource does not validate. The reason names segments and
            elements, never values.
    """
    handler = SUPPORTED_EVENTS.get((msg.message_code, msg.trigger_event))
    if handler is None:
        raise ConversionFailure(f"no mapping for {msg.message_code}^{msg.trigger_event}")
    walk = _Walk(msg, ctx)
    try:
        handler(walk)
    except ConversionFailure:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        _log.exception("conversion of %s^%s failed", msg.message_code, msg.trigger_event)
        raise ConversionFailure(
            f"conversion error in {msg.message_code}^{msg.trigger_event}: {type(exc).__name__}"
        ) from exc
    for resource in walk.resources:
        _validate(resource)
    return ConversionOutput(walk.resources, walk.first_patient_id, _source_time(msg))


def _source_time(msg: Message) -> datetime | None:
    parsed, _ = parse_datetime(msg.msh.get(7))
    if isinstance(parsed, datetime):
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed
    return None


def model_for(resource: dict[str, Any]) -> Any:
    """The ``fhir.resources`` R4B model instance of a stored resource dict."""
    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)
