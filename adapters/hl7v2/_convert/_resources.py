"""Segment groups to FHIR resources (JSON dicts), following the v2-to-FHIR segment maps."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime, timedelta

from .._parser import Message, Segment, parse_datetime, unescape
from . import _tables as tables
from ._datatypes import (
    JSON,
    Context,
    addresses,
    codeable,
    contact_points,
    entity_identifier,
    fhir_date,
    fhir_datetime,
    fhir_instant,
    human_names,
    identifier,
    location_display,
    mapped_code,
    practitioner_ref,
    quantity,
    reference_range,
    sn_value,
    table_codeable,
)

__all__ = [
    "allergy",
    "appointment",
    "condition",
    "diagnostic_report",
    "document_reference",
    "encounter",
    "immunization",
    "medication_request",
    "observation",
    "patient",
    "patient_identity",
    "service_request",
]


def _ref(resource_type: str, resource_id: str) -> JSON:
    return {"reference": f"{resource_type}/{resource_id}"}


def patient_identity(seg: Segment, fields: Sequence[int], ctx: Context) -> tuple[str, str] | None:
    """``(authority, value)`` of the identifier that keys a patient, from CX fields in order."""
    candidates = [f for n in fields for f in seg.reps(n) if f.get(1)]
    if not candidates:
        return None
    chosen = None
    if ctx.patient_authority:
        chosen = next((f for f in candidates if f.get(4) == ctx.patient_authority), None)
    if chosen is None:
        chosen = next((f for f in candidates if (f.get(5) or "").upper() == "MR"), None)
    chosen = chosen or candidates[0]
    return chosen.raw_component(4), chosen.get(1) or ""


def patient_id_for(identity: tuple[str, str], ctx: Context) -> str:
    """The Patient id of an identity from :func:`patient_identity`."""
    return ctx.make_id("Patient", *identity)


def patient(pid: Segment, pd1: Segment | None, ctx: Context) -> JSON | None:
    """PID (and PD1) as a Patient, or None when PID has no identifier at all."""
    identity = patient_identity(pid, (3, 2, 4), ctx)
    if identity is None:
        return None
    res: JSON = {"resourceType": "Patient", "id": patient_id_for(identity, ctx)}
    idents = [i for n in (3, 2, 4) for f in pid.reps(n) if (i := identifier(f, ctx))]
    ssn = pid.get(19)
    if ssn:
        idents.append(
            {
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": ssn,
                "type": {
                    "coding": [{"system": tables.V2_TABLE_SYSTEM.format("0203"), "code": "SS"}]
                },
            }
        )
    res["identifier"] = _unique(idents)
    names = human_names(pid, 5)
    if names:
        res["name"] = names
    birth = fhir_date(pid.get(7))
    if birth:
        res["birthDate"] = birth
    gender = mapped_code(pid.get(8), "0001", tables.GENDER, ctx)
    if gender:
        res["gender"] = gender
    addr = addresses(pid, 11)
    if addr:
        res["address"] = addr
    telecom = contact_points(pid, 13, "home") + contact_points(pid, 14, "work")
    if telecom:
        res["telecom"] = telecom
    language = pid.field(15)
    if language is not None and (cc := codeable(language, ctx)):
        res["communication"] = [{"language": cc, "preferred": True}]
    marital = pid.field(16)
    if marital is not None and (cc := codeable(marital, ctx)):
        res["maritalStatus"] = cc
    multiple = pid.get(24)
    if multiple in ("Y", "N"):
        birth_order = pid.get(25)
        if multiple == "Y" and birth_order and birth_order.isdigit():
            res["multipleBirthInteger"] = int(birth_order)
        else:
            res["multipleBirthBoolean"] = multiple == "Y"
    death_time = fhir_datetime(pid.get(29), ctx)
    if death_time:
        res["deceasedDateTime"] = death_time
    elif pid.get(30) in ("Y", "N"):
        res["deceasedBoolean"] = pid.get(30) == "Y"
    if pd1 is not None:
        gp = [r for f in pd1.reps(4) if (r := practitioner_ref(f, ctx))]
        if gp:
            res["generalPractitioner"] = gp
    res["active"] = True
    return res


def _unique(items: list[JSON]) -> list[JSON]:
    out: list[JSON] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def encounter(
    pv1: Segment,
    pv2: Segment | None,
    msg: Message,
    patient_id: str,
    ctx: Context,
    *,
    event: str | None = None,
) -> JSON | None:
    """PV1 (and PV2) as an Encounter, or None when PV1 carries no visit."""
    visit = pv1.field(19)
    klass = (pv1.get(2) or "").upper()
    admit = pv1.get(44)
    if visit is None and klass in ("", "N") and not admit:
        return None
    key: tuple[str, ...]
    if visit is not None and visit.get(1):
        key = ("Encounter", "visit", visit.raw_component(4), visit.get(1) or "")
    elif admit:
        key = ("Encounter", "admit", patient_id, admit)
    else:
        key = (
            "Encounter",
            "message",
            msg.sending_application,
            msg.sending_facility,
            msg.control_id,
        )
    res: JSON = {"resourceType": "Encounter", "id": ctx.make_id(*key)}
    if visit is not None and (ident := identifier(visit, ctx, "VN")):
        res["identifier"] = [ident]
    system, code, display = tables.ENCOUNTER_CLASS.get(klass, (tables.ENCOUNTER_CLASS["U"]))
    mapped = ctx.concept_maps.get((tables.V2_TABLE_SYSTEM.format("0004"), klass))
    res["class"] = (
        dict(mapped[0]) if mapped else {"system": system, "code": code, "display": display}
    )
    discharge = fhir_datetime(pv1.get(45), ctx)
    status = tables.EVENT_ENCOUNTER_STATUS.get(event or "", "unknown")
    if event is None:
        status = "finished" if discharge else ("in-progress" if admit else "unknown")
    elif discharge and status in ("in-progress", "unknown") and event != "A13":
        status = "finished"
    res["status"] = status
    start = fhir_datetime(admit, ctx)
    period = {k: v for k, v in (("start", start), ("end", discharge)) if v}
    if event == "A13":
        period.pop("end", None)
    if period:
        res["period"] = period
    res["subject"] = _ref("Patient", patient_id)
    admission_type = pv1.get(4)
    if admission_type:
        res["type"] = [table_codeable(admission_type, "0007", ctx)]
    service = pv1.field(10)
    if service is not None and service.get(1):
        res["serviceType"] = table_codeable(service.get(1), "0069", ctx)
    participants = []
    for n, role, role_display in (
        (7, "ATND", "attender"),
        (8, "REF", "referrer"),
        (9, "CON", "consultant"),
        (17, "ADM", "admitter"),
    ):
        for f in pv1.reps(n):
            ref = practitioner_ref(f, ctx)
            if ref:
                participants.append(
                    {
                        "type": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": role,
                                        "display": role_display,
                                    }
                                ]
                            }
                        ],
                        "individual": ref,
                    }
                )
    if participants:
        res["participant"] = participants
    locations = []
    for n, loc_status in (
        (3, "active"),
        (6, "completed"),
        (11, "active"),
        (42, "planned"),
        (43, "completed"),
    ):
        loc = pv1.field(n)
        text = location_display(loc) if loc is not None else None
        if text:
            locations.append({"location": {"display": text}, "status": loc_status})
    if event == "A03":
        for entry in locations:
            entry["status"] = "completed"
    if locations:
        res["location"] = locations
    hospitalization: JSON = {}
    admit_source = pv1.get(14)
    if admit_source:
        hospitalization["admitSource"] = table_codeable(admit_source, "0023", ctx)
    readmission = pv1.get(13)
    if readmission:
        hospitalization["reAdmission"] = table_codeable(readmission, "0092", ctx)
    disposition = pv1.get(36)
    if disposition:
        hospitalization["dischargeDisposition"] = table_codeable(disposition, "0112", ctx)
    if hospitalization:
        res["hospitalization"] = hospitalization
    if pv2 is not None:
        reason = codeable(pv2.field(3), ctx)
        if reason:
            res["reasonCode"] = [reason]
    return res


def observation(
    obx: Segment,
    notes: list[str],
    patient_id: str | None,
    encounter_id: str | None,
    ctx: Context,
    *,
    parent_key: tuple[str, ...],
    default_time: str | None = None,
    based_on: JSON | None = None,
) -> JSON | None:
    """OBX as an Observation, or None when it has no code."""
    code = codeable(obx.field(3), ctx)
    if code is None:
        return None
    key = ("Observation", *parent_key, obx.get(1) or "", obx.raw(3), obx.get(4) or "")
    res: JSON = {"resourceType": "Observation", "id": ctx.make_id(*key)}
    status = mapped_code(obx.get(11), "0085", tables.OBSERVATION_STATUS, ctx)
    res["status"] = status or "unknown"
    res["code"] = code
    if patient_id:
        res["subject"] = _ref("Patient", patient_id)
    if encounter_id:
        res["encounter"] = _ref("Encounter", encounter_id)
    if based_on:
        res["basedOn"] = [based_on]
    res.update(_observation_value(obx, ctx))
    effective = fhir_datetime(obx.get(14), ctx) or default_time
    if effective:
        res["effectiveDateTime"] = effective
    interpretation = []
    for f in obx.reps(8):
        code_value = f.get(1)
        if code_value:
            interpretation.append(
                {"coding": [{"system": tables.INTERPRETATION_SYSTEM, "code": code_value}]}
            )
    if interpretation:
        res["interpretation"] = interpretation
    rng = reference_range(obx.get(7))
    if rng:
        res["referenceRange"] = [{k: v for k, v in rng.items() if v is not None}]
    performers = [r for f in obx.reps(16) if (r := practitioner_ref(f, ctx))]
    if performers:
        res["performer"] = performers
    method = codeable(obx.field(17), ctx)
    if method:
        res["method"] = method
    if notes:
        res["note"] = [{"text": n} for n in notes]
    return res


def _observation_value(obx: Segment, ctx: Context) -> JSON:
    vtype = (obx.get(2) or "").upper()
    reps = obx.reps(5)
    if not reps:
        return {}
    first = reps[0]
    if vtype in ("NM",):
        q = quantity(first.get(1), obx.field(6))
        if q is not None:
            return {"valueQuantity": q}
        return {"valueString": first.get(1) or ""} if first.get(1) else {}
    if vtype == "SN":
        sn = sn_value(first)
        if sn is not None:
            return sn
        text = "".join(x for x in (first.get(1), first.get(2), first.get(3), first.get(4)) if x)
        return {"valueString": text} if text else {}
    if vtype in ("CE", "CWE", "CNE", "CF"):
        cc = codeable(first, ctx)
        return {"valueCodeableConcept": cc} if cc else {}
    if vtype in ("DT", "TS", "DTM"):
        value = fhir_datetime(first.get(1), ctx)
        return {"valueDateTime": value} if value else {}
    if vtype == "TM":
        raw = first.get(1) or ""
        if len(raw) >= 4 and raw[:4].isdigit():
            seconds = raw[4:6] if len(raw) >= 6 and raw[4:6].isdigit() else "00"
            return {"valueTime": f"{raw[:2]}:{raw[2:4]}:{seconds}"}
        return {}
    if vtype == "NR":
        low, high = quantity(first.get(1), None), quantity(first.get(2), None)
        rng = {k: v for k, v in (("low", low), ("high", high)) if v}
        return {"valueRange": rng} if rng else {}
    if vtype == "CQ":
        q = quantity(first.get(1), None)
        if q is not None:
            units = first.get(2, 1)
            if units:
                q["unit"] = units
            return {"valueQuantity": q}
        return {}
    if vtype in ("ED", "RP", "HD"):
        # Encapsulated data and pointers are documents, not observation values.
        return {}
    # ST, TX, FT and anything else textual: keep every repetition, line by line.
    text = "\n".join(_full_text(f.raw, obx) for f in reps).strip("\n")
    return {"valueString": text} if text else {}


def _full_text(raw: str, seg: Segment) -> str:
    """Text data types may legally contain the component separator as text."""
    return unescape(raw, seg.enc) if raw != '""' else ""


def order_identifiers(orc: Segment | None, obr: Segment | None, ctx: Context) -> list[JSON]:
    """Placer and filler order numbers (ORC-2/3, else OBR-2/3) as Identifiers."""
    idents = []
    for n, type_code in ((2, "PLAC"), (3, "FILL")):
        f = (orc.field(n) if orc is not None else None) or (
            obr.field(n) if obr is not None else None
        )
        if f is not None and (ident := entity_identifier(f, ctx, type_code)):
            idents.append(ident)
    return idents


def order_key(
    orc: Segment | None, obr: Segment | None, msg: Message, index: int
) -> tuple[str, ...]:
    """What identifies one order across messages: its placer or filler number."""
    for seg in (orc, obr):
        if seg is None:
            continue
        for n in (2, 3):
            f = seg.field(n)
            if f is not None and f.get(1):
                return (("placer" if n == 2 else "filler"), f.get(1) or "", f.get(2) or "")
    return ("message", msg.sending_application, msg.sending_facility, msg.control_id, str(index))


def _order_status(orc: Segment | None, ctx: Context) -> str:
    if orc is None:
        return "active"
    status = mapped_code(orc.get(5), "0038", tables.ORDER_STATUS, ctx)
    if status:
        return status
    return mapped_code(orc.get(1), "0119", tables.ORDER_CONTROL_STATUS, ctx) or "unknown"


def _requester(orc: Segment | None, obr: Segment | None, ctx: Context) -> JSON | None:
    for seg, n in ((orc, 12), (obr, 16)):
        if seg is not None and (f := seg.field(n)) is not None:
            ref = practitioner_ref(f, ctx)
            if ref:
                return ref
    return None


def _priority(orc: Segment | None, obr: Segment | None, tq1: Segment | None) -> str | None:
    code = None
    if tq1 is not None:
        code = tq1.get(9)
    if not code and obr is not None:
        code = obr.get(27, 6)
    if not code and orc is not None:
        code = orc.get(7, 6)
    return tables.PRIORITY.get((code or "").upper())


def service_request(
    orc: Segment | None,
    obr: Segment,
    tq1: Segment | None,
    notes: list[str],
    msg: Message,
    patient_id: str | None,
    encounter_id: str | None,
    ctx: Context,
    index: int,
) -> JSON | None:
    """ORC/OBR as a ServiceRequest, or None when OBR-4 has no code."""
    code = codeable(obr.field(4), ctx)
    if code is None:
        return None
    res: JSON = {
        "resourceType": "ServiceRequest",
        "id": ctx.make_id("ServiceRequest", *order_key(orc, obr, msg, index)),
    }
    idents = order_identifiers(orc, obr, ctx)
    if idents:
        res["identifier"] = idents
    requisition = orc.field(4) if orc is not None else None
    if requisition is not None and (ident := entity_identifier(requisition, ctx, "PGN")):
        res["requisition"] = ident
    res["status"] = _order_status(orc, ctx)
    res["intent"] = "order"
    priority = _priority(orc, obr, tq1)
    if priority:
        res["priority"] = priority
    res["code"] = code
    if patient_id:
        res["subject"] = _ref("Patient", patient_id)
    if encounter_id:
        res["encounter"] = _ref("Encounter", encounter_id)
    occurrence = None
    if tq1 is not None:
        occurrence = fhir_datetime(tq1.get(7), ctx)
    occurrence = occurrence or fhir_datetime(obr.get(27, 4), ctx) or fhir_datetime(obr.get(6), ctx)
    if occurrence:
        res["occurrenceDateTime"] = occurrence
    authored = fhir_datetime(orc.get(9), ctx) if orc is not None else None
    if authored:
        res["authoredOn"] = authored
    requester = _requester(orc, obr, ctx)
    if requester:
        res["requester"] = requester
    reasons = [cc for f in obr.reps(31) if (cc := codeable(f, ctx))]
    if reasons:
        res["reasonCode"] = reasons
    if notes:
        res["note"] = [{"text": n} for n in notes]
    return res


def diagnostic_report(
    orc: Segment | None,
    obr: Segment,
    msg: Message,
    patient_id: str | None,
    encounter_id: str | None,
    result_ids: list[str],
    service_request_id: str | None,
    ctx: Context,
    index: int,
) -> JSON | None:
    """OBR (with its OBX results) as a DiagnosticReport, or None without OBR-4."""
    code = codeable(obr.field(4), ctx)
    if code is None:
        return None
    res: JSON = {
        "resourceType": "DiagnosticReport",
        "id": ctx.make_id("DiagnosticReport", *order_key(orc, obr, msg, index)),
    }
    idents = order_identifiers(orc, obr, ctx)
    if idents:
        res["identifier"] = idents
    if service_request_id:
        res["basedOn"] = [_ref("ServiceRequest", service_request_id)]
    res["status"] = mapped_code(obr.get(25), "0123", tables.REPORT_STATUS, ctx) or "unknown"
    section = obr.get(24)
    if section:
        res["category"] = [table_codeable(section, "0074", ctx)]
    res["code"] = code
    if patient_id:
        res["subject"] = _ref("Patient", patient_id)
    if encounter_id:
        res["encounter"] = _ref("Encounter", encounter_id)
    start, end = fhir_datetime(obr.get(7), ctx), fhir_datetime(obr.get(8), ctx)
    if start and end and end != start:
        res["effectivePeriod"] = {"start": start, "end": end}
    elif start:
        res["effectiveDateTime"] = start
    issued = fhir_instant(obr.get(22), ctx)
    if issued:
        res["issued"] = issued
    interpreter = obr.field(32)
    if interpreter is not None and interpreter.get(1, 2):
        res["resultsInterpreter"] = [{"display": interpreter.get(1, 2)}]
    if result_ids:
        res["result"] = [_ref("Observation", i) for i in result_ids]
    return res


def medication_request(
    orc: Segment | None,
    rx: Segment,
    rxrs: list[Segment],
    tq1: Segment | None,
    notes: list[str],
    msg: Message,
    patient_id: str | None,
    encounter_id: str | None,
    ctx: Context,
    index: int,
) -> JSON | None:
    """ORC with RXE or RXO (plus RXR, TQ1) as a MedicationRequest."""
    is_rxe = rx.name == "RXE"
    med = codeable(rx.field(2 if is_rxe else 1), ctx)
    if med is None:
        return None
    res: JSON = {
        "resourceType": "MedicationRequest",
        "id": ctx.make_id("MedicationRequest", *order_key(orc, None, msg, index)),
    }
    idents = order_identifiers(orc, None, ctx)
    if idents:
        res["identifier"] = idents
    res["status"] = _order_status(orc, ctx)
    res["intent"] = "order"
    res["medicationCodeableConcept"] = med
    if patient_id:
        res["subject"] = _ref("Patient", patient_id)
    if encounter_id:
        res["encounter"] = _ref("Encounter", encounter_id)
    authored = fhir_datetime(orc.get(9), ctx) if orc is not None else None
    if authored:
        res["authoredOn"] = authored
    requester = _requester(orc, None, ctx)
    if requester is None and not is_rxe:
        ordering = rx.field(14)
        requester = practitioner_ref(ordering, ctx) if ordering is not None else None
    if requester:
        res["requester"] = requester
    priority = _priority(orc, None, tq1)
    if priority:
        res["priority"] = priority
    dosage: JSON = {}
    instructions = [f.get(2) or f.get(1) for f in rx.reps(7) if f.get(2) or f.get(1)]
    if instructions:
        dosage["text"] = "; ".join(i for i in instructions if i)
    if tq1 is not None:
        timing: JSON = {}
        pattern = tq1.field(3)
        if pattern is not None and pattern.get(1):
            timing["code"] = {"text": pattern.get(1)}
        start, end = fhir_datetime(tq1.get(7), ctx), fhir_datetime(tq1.get(8), ctx)
        bounds = {k: v for k, v in (("start", start), ("end", end)) if v}
        if bounds:
            timing["repeat"] = {"boundsPeriod": bounds}
        if timing:
            dosage["timing"] = timing
    if rxrs:
        route = codeable(rxrs[0].field(1), ctx)
        if route:
            dosage["route"] = route
        site = codeable(rxrs[0].field(2), ctx)
        if site:
            dosage["site"] = site
    amount_field, units_field = (3, 5) if is_rxe else (2, 4)
    dose = quantity(rx.get(amount_field), rx.field(units_field))
    if dose:
        dosage["doseAndRate"] = [{"doseQuantity": dose}]
    if dosage:
        dosage["sequence"] = 1
        res["dosageInstruction"] = [dosage]
    dispense: JSON = {}
    amount = quantity(rx.get(10 if is_rxe else 11), rx.field(11 if is_rxe else 12))
    if amount:
        dispense["quantity"] = amount
    refills = rx.get(12 if is_rxe else 13)
    if refills and refills.isdigit():
        dispense["numberOfRepeatsAllowed"] = int(refills)
    if dispense:
        res["dispenseRequest"] = dispense
    substitution = rx.get(9)
    if substitution in ("N", "G", "T"):
        res["substitution"] = {"allowedBoolean": substitution != "N"}
    if notes:
        res["note"] = [{"text": n} for n in notes]
    return res


def immunization(
    orc: Segment | None,
    rxa: Segment,
    rxr: Segment | None,
    msg: Message,
    patient_id: str,
    ctx: Context,
    index: int,
) -> JSON | None:
    """RXA (with ORC, RXR) as an Immunization."""
    vaccine = codeable(rxa.field(5), ctx)
    if vaccine is None:
        return None
    if orc is not None and (orc.get(3) or orc.get(2)):
        key = order_key(orc, None, msg, index)
    else:
        key = ("patient", patient_id, rxa.raw(5), rxa.get(3) or "")
    res: JSON = {"resourceType": "Immunization", "id": ctx.make_id("Immunization", *key)}
    idents = order_identifiers(orc, None, ctx)
    if idents:
        res["identifier"] = idents
    completion = (rxa.get(20) or "CP").upper()
    status = mapped_code(completion, "0322", tables.IMMUNIZATION_STATUS, ctx) or "completed"
    if (rxa.get(21) or "").upper() == "D":
        status = "entered-in-error"
    res["status"] = status
    if status == "not-done":
        reason = codeable(rxa.field(18), ctx)
        if reason:
            res["statusReason"] = reason
    res["vaccineCode"] = vaccine
    res["patient"] = _ref("Patient", patient_id)
    occurrence = fhir_datetime(rxa.get(3), ctx)
    res["occurrenceDateTime"] = occurrence or fhir_datetime(msg.msh.get(7), ctx) or "1900"
    source = rxa.field(9)
    if source is not None and source.get(1):
        res["primarySource"] = source.get(1) == "00"
        if source.get(1) != "00":
            res["reportOrigin"] = codeable(source, ctx)
    amount = rxa.get(6)
    if amount and amount != "999":
        dose = quantity(amount, rxa.field(7))
        if dose:
            res["doseQuantity"] = dose
    lot = rxa.get(15)
    if lot:
        res["lotNumber"] = lot
    expiry = fhir_date(rxa.get(16))
    if expiry and len(expiry) == 10:
        res["expirationDate"] = expiry
    manufacturer = rxa.field(17)
    if manufacturer is not None and (manufacturer.get(2) or manufacturer.get(1)):
        res["manufacturer"] = {"display": manufacturer.get(2) or manufacturer.get(1)}
    if completion == "PA":
        res["isSubpotent"] = True
    if rxr is not None:
        route = codeable(rxr.field(1), ctx)
        if route:
            res["route"] = route
        site = codeable(rxr.field(2), ctx)
        if site:
            res["site"] = site
    performers = []
    for seg, n, role in ((rxa, 10, "AP"), (orc, 12, "OP")):
        if seg is None:
            continue
        for f in seg.reps(n):
            ref = practitioner_ref(f, ctx)
            if ref:
                performers.append(
                    {
                        "function": {
                            "coding": [
                                {"system": tables.V2_TABLE_SYSTEM.format("0443"), "code": role}
                            ]
                        },
                        "actor": ref,
                    }
                )
    if performers:
        res["performer"] = performers
    return res


def appointment(
    sch: Segment,
    tq1: Segment | None,
    resources: list[Segment],
    notes: list[str],
    msg: Message,
    patient_id: str | None,
    ctx: Context,
) -> JSON | None:
    """SCH (with TQ1, AIS/AIG/AIL/AIP) as an Appointment."""
    filler = sch.field(2)
    placer = sch.field(1)
    ident_field = filler if filler is not None and filler.get(1) else placer
    key: tuple[str, ...]
    if ident_field is None or not ident_field.get(1):
        key = ("message", msg.sending_application, msg.sending_facility, msg.control_id)
    else:
        key = ("appt", ident_field.get(1) or "", ident_field.get(2) or "")
    res: JSON = {"resourceType": "Appointment", "id": ctx.make_id("Appointment", *key)}
    idents = []
    for f, code in ((placer, "PLAC"), (filler, "FILL")):
        if f is not None and (ident := entity_identifier(f, ctx, code)):
            idents.append(ident)
    if idents:
        res["identifier"] = idents
    status = tables.APPOINTMENT_EVENT_STATUS.get(msg.trigger_event)
    if status is None:
        status = (
            mapped_code((sch.get(25) or "").upper(), "0278", tables.APPOINTMENT_STATUS, ctx)
            or "booked"
        )
    res["status"] = status
    reason = codeable(sch.field(7), ctx)
    if reason:
        res["reasonCode"] = [reason]
    appt_type = codeable(sch.field(8), ctx)
    if appt_type:
        res["appointmentType"] = appt_type
    service_types = [
        cc for seg in resources if seg.name == "AIS" if (cc := codeable(seg.field(3), ctx))
    ]
    if service_types:
        res["serviceType"] = service_types
    start_raw = sch.get(11, 4) or (tq1.get(7) if tq1 is not None else None)
    end_raw = sch.get(11, 5) or (tq1.get(8) if tq1 is not None else None)
    if not start_raw:
        start_raw = next(
            (
                s.get(4 if s.name == "AIS" else 6)
                for s in resources
                if s.get(4 if s.name == "AIS" else 6)
            ),
            None,
        )
    start = fhir_instant(start_raw, ctx)
    end = fhir_instant(end_raw, ctx)
    duration = sch.get(9)
    minutes = None
    if duration and duration.replace(".", "", 1).isdigit():
        unit = (sch.get(10) or "min").lower()
        factor = {"s": 1 / 60, "h": 60, "hr": 60, "d": 1440}.get(unit, 1)
        minutes = max(1, round(float(duration) * factor))
    if start and not end and minutes:
        parsed, _ = parse_datetime(start_raw)
        if isinstance(parsed, datetime):
            end = fhir_instant(
                (parsed + timedelta(minutes=minutes)).strftime("%Y%m%d%H%M%S%z"), ctx
            )
    if start:
        res["start"] = start
    if end:
        res["end"] = end
    if minutes:
        res["minutesDuration"] = minutes
    if notes:
        res["comment"] = "\n".join(notes)
    participants: list[JSON] = []
    if patient_id:
        participants.append({"actor": {**_ref("Patient", patient_id)}, "status": "accepted"})
    for seg in resources:
        display = None
        if seg.name == "AIP":
            person = seg.field(3)
            ref = practitioner_ref(person, ctx) if person is not None else None
            if ref:
                participants.append({"actor": ref, "status": "accepted"})
            continue
        if seg.name == "AIL":
            f = seg.field(3)
            display = location_display(f) if f is not None else None
        elif seg.name == "AIG":
            display = seg.get(3, 2) or seg.get(3, 1)
        if display:
            participants.append({"actor": {"display": display}, "status": "accepted"})
    if not participants:
        participants.append({"status": "needs-action", "actor": {"display": "unspecified"}})
    res["participant"] = participants
    return res


def document_reference(
    txa: Segment,
    obxs: list[Segment],
    msg: Message,
    patient_id: str | None,
    encounter_id: str | None,
    ctx: Context,
) -> JSON:
    """TXA (with OBX content) as a DocumentReference."""
    unique = txa.field(12)
    key: tuple[str, ...]
    if unique is not None and unique.get(1):
        key = ("doc", unique.get(1) or "", unique.get(2) or "")
    else:
        key = ("message", msg.sending_application, msg.sending_facility, msg.control_id)
    res: JSON = {"resourceType": "DocumentReference", "id": ctx.make_id("DocumentReference", *key)}
    if unique is not None and (ident := entity_identifier(unique, ctx)):
        res["masterIdentifier"] = ident
    idents = [i for n in (14, 15) for f in txa.reps(n) if (i := entity_identifier(f, ctx))]
    if idents:
        res["identifier"] = idents
    res["status"] = "entered-in-error" if msg.trigger_event == "T11" else "current"
    doc_status = mapped_code((txa.get(17) or "").upper(), "0271", tables.DOCUMENT_STATUS, ctx)
    if doc_status:
        res["docStatus"] = doc_status
    doc_type = txa.get(2)
    if doc_type:
        res["type"] = table_codeable(doc_type, "0270", ctx)
    if patient_id:
        res["subject"] = _ref("Patient", patient_id)
    when = fhir_instant(txa.get(4), ctx) or fhir_instant(txa.get(6), ctx)
    if when:
        res["date"] = when
    authors = [r for f in txa.reps(5) if (r := practitioner_ref(f, ctx))]
    if authors:
        res["author"] = authors
    authenticator = next((r for f in txa.reps(22) if (r := practitioner_ref(f, ctx))), None)
    if authenticator:
        res["authenticator"] = authenticator
    res["content"] = _document_content(txa, obxs)
    if encounter_id:
        res["context"] = {"encounter": [_ref("Encounter", encounter_id)]}
    return res


def _document_content(txa: Segment, obxs: list[Segment]) -> list[JSON]:
    content: list[JSON] = []
    text_lines: list[str] = []
    for obx in obxs:
        vtype = (obx.get(2) or "").upper()
        if vtype == "ED":
            f = obx.field(5)
            if f is None:
                continue
            mime = "/".join(x for x in (f.get(2), f.get(3)) if x) or "application/octet-stream"
            data = f.get(5)
            attachment: JSON = {"contentType": mime.lower()}
            if data and (f.get(4) or "").upper() == "BASE64":
                try:
                    base64.b64decode(data, validate=True)
                    attachment["data"] = data
                except (binascii.Error, ValueError):
                    attachment["title"] = "encapsulated data was not valid base64"
            content.append({"attachment": attachment})
        elif vtype in ("TX", "ST", "FT", "CE", "CWE"):
            text_lines.extend(_full_text(f.raw, obx) for f in obx.reps(5))
    if text_lines:
        text = "\n".join(text_lines)
        content.insert(
            0,
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                }
            },
        )
    if not content:
        title = txa.get(2) or "document"
        content.append({"attachment": {"contentType": "text/plain", "title": title}})
    return content


def allergy(al1: Segment, patient_id: str, ctx: Context) -> JSON | None:
    """AL1 as an AllergyIntolerance, keyed by patient and allergen."""
    code = codeable(al1.field(3), ctx)
    if code is None:
        return None
    res: JSON = {
        "resourceType": "AllergyIntolerance",
        "id": ctx.make_id("AllergyIntolerance", patient_id, al1.raw(3)),
    }
    res["clinicalStatus"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active",
            }
        ]
    }
    category = mapped_code((al1.get(2) or "").upper(), "0127", tables.ALLERGY_CATEGORY, ctx)
    if category:
        res["category"] = [category]
    criticality = mapped_code((al1.get(4) or "").upper(), "0128", tables.ALLERGY_CRITICALITY, ctx)
    if criticality:
        res["criticality"] = criticality
    res["code"] = code
    res["patient"] = _ref("Patient", patient_id)
    onset = fhir_datetime(al1.get(6), ctx)
    if onset:
        res["onsetDateTime"] = onset
    reactions = [{"text": f.get(1)} for f in al1.reps(5) if f.get(1)]
    if reactions:
        res["reaction"] = [{"manifestation": reactions}]
    return res


def condition(dg1: Segment, patient_id: str, encounter_id: str | None, ctx: Context) -> JSON | None:
    """DG1 as an encounter-diagnosis Condition."""
    code = codeable(dg1.field(3), ctx)
    if code is None and dg1.get(4):
        code = {"text": dg1.get(4)}
    if code is None:
        return None
    res: JSON = {
        "resourceType": "Condition",
        "id": ctx.make_id(
            "Condition", patient_id, encounter_id or "", dg1.raw(3), dg1.get(4) or ""
        ),
    }
    res["clinicalStatus"] = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
        ]
    }
    verification = mapped_code(
        (dg1.get(6) or "").upper(), "0052", tables.DIAGNOSIS_VERIFICATION, ctx
    )
    if verification:
        res["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": verification,
                }
            ]
        }
    res["category"] = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                    "code": "encounter-diagnosis",
                }
            ]
        }
    ]
    res["code"] = code
    res["subject"] = _ref("Patient", patient_id)
    if encounter_id:
        res["encounter"] = _ref("Encounter", encounter_id)
    onset = fhir_datetime(dg1.get(5), ctx)
    if onset:
        res["onsetDateTime"] = onset
    recorded = fhir_datetime(dg1.get(19), ctx)
    if recorded:
        res["recordedDate"] = recorded
    return res


def merged_patient(mrg: Segment, survivor_id: str, ctx: Context) -> JSON | None:
    """The non-surviving patient of a merge (MRG-1): inactive, linked to the survivor."""
    identity = patient_identity(mrg, (1, 4), ctx)
    if identity is None:
        return None
    old_id = patient_id_for(identity, ctx)
    if old_id == survivor_id:
        return None
    idents = [i for f in mrg.reps(1) if (i := identifier(f, ctx))]
    res: JSON = {
        "resourceType": "Patient",
        "id": old_id,
        "active": False,
        "link": [{"other": _ref("Patient", survivor_id), "type": "replaced-by"}],
        "_merge": ["active", "link"],
    }
    if idents:
        res["identifier"] = idents
    return res


def notes_after(segments: Sequence[Segment], index: int) -> list[str]:
    """Text of the NTE segments directly after ``segments[index]``."""
    out = []
    for seg in segments[index + 1 :]:
        if seg.name != "NTE":
            break
        text = "\n".join(_full_text(f.raw, seg) for f in seg.reps(3)).strip()
        if text:
            out.append(text)
    return out
