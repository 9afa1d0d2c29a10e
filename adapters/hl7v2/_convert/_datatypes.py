"""HL7 v2 data types (CX, XPN, XAD, XTN, CWE, XCN, DTM, CQ, SN) as FHIR R4 elements."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .._parser import Field, Segment, parse_datetime
from ._tables import V2_TABLE_SYSTEM, code_system_uri

__all__ = [
    "Context",
    "addresses",
    "codeable",
    "contact_points",
    "fhir_date",
    "fhir_datetime",
    "fhir_instant",
    "human_names",
    "identifier",
    "practitioner_ref",
    "quantity",
]

JSON = dict[str, Any]

_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


@dataclass
class Context:
    """Settings and helpers one conversion uses.

    Attributes:
        namespace: UUID namespace for deterministic resource ids (one per site).
        authority_prefix: URI prefix for identifier systems named only by a namespace id.
        concept_maps: ``(source system, code)`` to extra codings, from ConceptMap files.
        patient_authority: Assigning authority whose PID-3 identifier keys the Patient id;
            empty picks the first MR identifier, then the first identifier.
        default_timezone: Offset (``+02:00``) assumed for HL7 times that carry none; empty
            keeps such times as dates or drops them where FHIR requires a zone.
    """

    namespace: uuid.UUID
    authority_prefix: str = "urn:hl7v2:authority:"
    concept_maps: dict[tuple[str, str], list[JSON]] = field(default_factory=dict)
    patient_authority: str = ""
    default_timezone: str = ""

    def make_id(self, *parts: str) -> str:
        """A deterministic FHIR id (a UUID) from the parts that identify a resource."""
        return str(uuid.uuid5(self.namespace, "\x1f".join(parts)))


def fhir_datetime(value: str | None, ctx: Context | None = None) -> str | None:
    """An HL7 DTM/TS as a FHIR dateTime (date-only or year-only values stay partial)."""
    parsed, precision = parse_datetime(value)
    if parsed is None:
        return None
    if isinstance(parsed, datetime):
        if parsed.tzinfo is None:
            tz = ctx.default_timezone if ctx else ""
            if not tz:
                # FHIR requires a zone on a dateTime with a time; keep the day we know.
                return parsed.date().isoformat()
            return parsed.isoformat(timespec="seconds") + tz
        spec = "seconds" if parsed.microsecond == 0 else "milliseconds"
        return parsed.isoformat(timespec=spec)
    if precision == "year":
        return f"{parsed.year:04d}"
    if precision == "month":
        return f"{parsed.year:04d}-{parsed.month:02d}"
    return parsed.isoformat()


def fhir_date(value: str | None) -> str | None:
    """An HL7 DT/DTM as a FHIR date (the time part, if any, is dropped)."""
    parsed, precision = parse_datetime(value)
    if parsed is None:
        return None
    if isinstance(parsed, datetime):
        return parsed.date().isoformat()
    if precision == "year":
        return f"{parsed.year:04d}"
    if precision == "month":
        return f"{parsed.year:04d}-{parsed.month:02d}"
    assert isinstance(parsed, date)
    return parsed.isoformat()


def fhir_instant(value: str | None, ctx: Context | None = None) -> str | None:
    """An HL7 DTM as a FHIR instant, or None when it has no seconds-level time and zone."""
    text = fhir_datetime(value, ctx)
    if text is None or "T" not in text:
        return None
    return text


def _authority_system(ctx: Context, f: Field, comp: int) -> str | None:
    """System URI of an HD (namespace^universal id^type) held in component ``comp``."""
    subs = f.subcomponents(comp)
    namespace = subs[0] if subs else None
    universal = subs[1] if len(subs) > 1 else None
    kind = (subs[2] or "").upper() if len(subs) > 2 and subs[2] else ""
    if universal:
        if kind == "ISO" or re.fullmatch(r"[0-2](\.\d+)+", universal):
            return f"urn:oid:{universal}"
        if kind == "UUID":
            return f"urn:uuid:{universal.lower()}"
        if kind in ("URI", "DNS", "URL") and ":" in universal:
            return universal
    if namespace:
        return ctx.authority_prefix + _uri_safe(namespace)
    return None


def _uri_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9\-._~]", lambda m: f"%{ord(m.group()):02X}", text.strip())


def identifier(f: Field, ctx: Context, type_code: str | None = None) -> JSON | None:
    """CX (or EI when ``type_code`` is given) as an Identifier."""
    value = f.get(1)
    if not value:
        return None
    ident: JSON = {"value": value}
    system = _authority_system(ctx, f, 4)
    if system:
        ident["system"] = system
    code = type_code or f.get(5)
    if code:
        ident["type"] = {"coding": [{"system": V2_TABLE_SYSTEM.format("0203"), "code": code}]}
    start, end = fhir_date(f.get(7)), fhir_date(f.get(8))
    if start or end:
        ident["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    return ident


def entity_identifier(f: Field, ctx: Context, type_code: str | None = None) -> JSON | None:
    """EI (entity id^namespace^universal id^type) as an Identifier."""
    value = f.get(1)
    if not value:
        return None
    ident: JSON = {"value": value}
    namespace, universal, kind = f.get(2), f.get(3), (f.get(4) or "").upper()
    if universal and (kind == "ISO" or re.fullmatch(r"[0-2](\.\d+)+", universal)):
        ident["system"] = f"urn:oid:{universal}"
    elif namespace:
        ident["system"] = ctx.authority_prefix + _uri_safe(namespace)
    if type_code:
        ident["type"] = {"coding": [{"system": V2_TABLE_SYSTEM.format("0203"), "code": type_code}]}
    return ident


_NAME_USE = {
    "L": "official",
    "D": "usual",
    "M": "maiden",
    "N": "nickname",
    "A": "anonymous",
    "B": "official",
    "C": "old",
    "S": "anonymous",
    "T": "temp",
    "U": "usual",
    "R": "official",
    "BAD": "old",
}


def human_names(seg: Segment, n: int) -> list[JSON]:
    """XPN repetitions of field ``n`` as HumanNames."""
    names = []
    for f in seg.reps(n):
        family = f.get(1, 1)
        given = [g for g in (f.get(2), f.get(3)) if g]
        name: JSON = {}
        if family:
            name["family"] = family
        if given:
            name["given"] = given
        suffix = [s for s in (f.get(4), f.get(6)) if s]
        if suffix:
            name["suffix"] = suffix
        if f.get(5):
            name["prefix"] = [f.get(5)]
        use = _NAME_USE.get((f.get(7) or "").upper())
        if use:
            name["use"] = use
        if name:
            names.append(name)
    return names


_ADDRESS_USE = {"H": "home", "B": "work", "O": "work", "C": "temp", "BA": "billing"}
_ADDRESS_TYPE = {"M": "postal", "SH": "physical", "P": "physical"}


def addresses(seg: Segment, n: int) -> list[JSON]:
    """XAD repetitions of field ``n`` as Addresses."""
    out = []
    for f in seg.reps(n):
        address: JSON = {}
        lines = [x for x in (f.get(1, 1), f.get(2)) if x]
        if lines:
            address["line"] = lines
        for comp, key in (
            (3, "city"),
            (4, "state"),
            (5, "postalCode"),
            (6, "country"),
            (9, "district"),
        ):
            value = f.get(comp)
            if value:
                address[key] = value.strip()
        kind = (f.get(7) or "").upper()
        if kind in _ADDRESS_USE:
            address["use"] = _ADDRESS_USE[kind]
        if kind in _ADDRESS_TYPE:
            address["type"] = _ADDRESS_TYPE[kind]
        if address:
            out.append(address)
    return out


_TELECOM_SYSTEM = {
    "PH": "phone",
    "FX": "fax",
    "INTERNET": "email",
    "X.400": "email",
    "CP": "phone",
    "BP": "pager",
    "MD": "other",
    "TDD": "other",
    "TTY": "other",
    "SAT": "phone",
}
_TELECOM_USE = {
    "PRN": "home",
    "ORN": "home",
    "VHN": "home",
    "WPN": "work",
    "PRS": "mobile",
    "EMR": "home",
    "NET": None,
    "BPN": "work",
    "ASN": "work",
}


def contact_points(seg: Segment, n: int, default_use: str | None = None) -> list[JSON]:
    """XTN repetitions of field ``n`` as ContactPoints."""
    out = []
    for f in seg.reps(n):
        equipment = (f.get(3) or "").upper()
        use_code = (f.get(2) or "").upper()
        value = f.get(4) if equipment in ("INTERNET", "X.400") or use_code == "NET" else None
        if not value:
            value = f.get(1)
        if not value and f.get(7):
            value = " ".join(x for x in (f.get(5), f.get(6), f.get(7)) if x)
            if f.get(8):
                value += f" x{f.get(8)}"
        if not value:
            value = f.get(4)
        if not value:
            continue
        point: JSON = {"value": value}
        system = _TELECOM_SYSTEM.get(equipment)
        if system is None and ("@" in value or use_code == "NET"):
            system = "email"
        if system is None and any(ch.isdigit() for ch in value):
            system = "phone"
        if system:
            point["system"] = system
        use = "mobile" if equipment == "CP" else _TELECOM_USE.get(use_code, default_use)
        if use:
            point["use"] = use
        out.append(point)
    return out


def coding(f: Field, ctx: Context, offset: int = 0) -> JSON | None:
    """The coding in components 1-3 (or 4-6 with ``offset=3``) of a CWE/CE/CNE."""
    code = f.get(1 + offset)
    if not code:
        return None
    c: JSON = {"code": code.strip()}
    system_name = f.get(3 + offset)
    if system_name:
        c["system"] = code_system_uri(system_name, ctx.authority_prefix)
    display = f.get(2 + offset)
    if display:
        c["display"] = display
    return c


def codeable(f: Field | None, ctx: Context) -> JSON | None:
    """CWE/CE/CNE as a CodeableConcept, with codings added by the site's ConceptMaps."""
    if f is None:
        return None
    codings = [c for c in (coding(f, ctx), coding(f, ctx, 3)) if c]
    text = f.get(9) or (f.get(2) if not codings else None)
    if not codings and not text:
        return None
    extra: list[JSON] = []
    for c in codings:
        extra.extend(ctx.concept_maps.get((c.get("system", ""), c["code"]), []))
    for c in extra:
        if c not in codings:
            codings.append(c)
    cc: JSON = {}
    if codings:
        cc["coding"] = codings
    if text:
        cc["text"] = text
    return cc


def table_codeable(
    code: str | None, table: str, ctx: Context, display: str | None = None
) -> JSON | None:
    """A code from HL7 table ``table`` as a CodeableConcept (plus ConceptMap codings)."""
    if not code:
        return None
    system = V2_TABLE_SYSTEM.format(table)
    c: JSON = {"system": system, "code": code}
    if display:
        c["display"] = display
    codings = [c, *ctx.concept_maps.get((system, code), [])]
    return {"coding": codings}


def mapped_code(code: str | None, table: str, builtin: dict[str, str], ctx: Context) -> str | None:
    """A v2 table code mapped to a FHIR code: the site's ConceptMap first, then the built-in."""
    if not code:
        return None
    for target in ctx.concept_maps.get((V2_TABLE_SYSTEM.format(table), code), []):
        if target.get("code"):
            return str(target["code"])
    return builtin.get(code) or builtin.get(code.upper())


def practitioner_ref(f: Field, ctx: Context) -> JSON | None:
    """XCN as a logical Reference (identifier and display; no Practitioner is created)."""
    ident = identifier(f, ctx) if f.get(1) else None
    if ident is not None:
        ident = {k: v for k, v in ident.items() if k != "type"}
        system = _authority_system(ctx, f, 9)
        if system:
            ident["system"] = system
    parts = [p for p in (f.get(6), f.get(3), f.get(4), f.get(2, 1), f.get(5)) if p]
    ref: JSON = {}
    if ident:
        ref["identifier"] = ident
    if parts:
        ref["display"] = " ".join(parts)
    elif ident:
        ref["display"] = ident["value"]
    return ref or None


def location_display(f: Field) -> str | None:
    """PL (point of care^room^bed^facility...) as one readable line."""
    parts = [f.get(1), f.get(2), f.get(3), f.get(4, 1), f.get(7), f.get(8), f.get(9)]
    text = ", ".join(p for p in parts if p)
    return text or None


_UCUM_NAMES = {"UCUM", "ISO+", "ANS+", "ISO"}


def quantity(value: str | None, units: Field | None) -> JSON | None:
    """A numeric text with CWE units as a Quantity, or None when the text is not a number."""
    if value is None:
        return None
    value = value.strip()
    if not _DECIMAL.match(value):
        return None
    q: JSON = {"value": float(value) if "." in value else int(value)}
    if units is not None:
        code = units.get(1)
        text = units.get(2) or code
        if text:
            q["unit"] = text
        system = (units.get(3) or "").upper()
        if code and system in _UCUM_NAMES:
            q["system"] = "http://unitsofmeasure.org"
            q["code"] = code
    return q


def sn_value(f: Field) -> JSON | None:
    """SN (comparator^num1^separator^num2) as ``{valueQuantity|valueRange|valueRatio}``."""
    comparator, n1, sep, n2 = f.get(1) or "", f.get(2), f.get(3) or "", f.get(4)
    q1 = quantity(n1, None)
    q2 = quantity(n2, None)
    if sep in ("-", "") and q1 and q2 and sep == "-":
        return {"valueRange": {"low": q1, "high": q2}}
    if sep in (":", "/") and q1 and q2:
        return {"valueRatio": {"numerator": q1, "denominator": q2}}
    if q1 and not sep:
        if comparator in ("<", "<=", ">=", ">"):
            q1["comparator"] = comparator
        return {"valueQuantity": q1}
    return None


def reference_range(text: str | None) -> JSON | None:
    """OBX-7 (``3.5-5.0``, ``<10``, ``>2``) as an Observation.referenceRange entry."""
    if not text:
        return None
    m = re.fullmatch(r"\s*([+-]?\d+(?:\.\d+)?)\s*-\s*([+-]?\d+(?:\.\d+)?)\s*", text)
    if m:
        return {"low": quantity(m.group(1), None), "high": quantity(m.group(2), None), "text": text}
    return {"text": text}
