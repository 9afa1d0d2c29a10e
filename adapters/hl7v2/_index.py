"""Search parameters the adapter serves, and the index rows extracted from each resource."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import his_sdk.errors
import his_sdk.search
from his_sdk.search import ParamType, SearchParamDef

__all__ = ["PARAMS", "IndexRow", "ParamSpec", "index_rows", "normalize_string"]

_MIN = datetime(1, 1, 1)
_MAX = datetime(9999, 12, 31, 23, 59, 59)


class IndexRow(NamedTuple):
    """One searchable value of one resource."""

    resource_type: str
    resource_id: str
    param: str
    system: str | None
    value: str | None
    lo: datetime | None
    hi: datetime | None


@dataclass(frozen=True)
class ParamSpec:
    """A served search parameter and the element paths it reads."""

    definition: SearchParamDef
    paths: tuple[str, ...]


def _p(
    name: str, ptype: ParamType, description: str, *paths: str, target: str | None = None
) -> tuple[str, ParamSpec]:
    return name, ParamSpec(SearchParamDef(name, ptype, description, target), paths)


_T, _S, _D, _R = ParamType.TOKEN, ParamType.STRING, ParamType.DATE, ParamType.REFERENCE


def _common(*extra: tuple[str, ParamSpec]) -> dict[str, ParamSpec]:
    return dict([_p("identifier", _T, "Business identifier", "identifier"), *extra])


def _subject(*extra: tuple[str, ParamSpec]) -> dict[str, ParamSpec]:
    return _common(
        _p("patient", _R, "The patient", "subject", target="Patient"),
        _p("subject", _R, "The subject", "subject"),
        *extra,
    )


PARAMS: dict[str, dict[str, ParamSpec]] = {
    "Patient": _common(
        _p("name", _S, "Any part of a name", "name"),
        _p("family", _S, "Family name", "name.family"),
        _p("given", _S, "Given name", "name.given"),
        _p("birthdate", _D, "Date of birth", "birthDate"),
        _p("gender", _T, "Administrative gender", "gender"),
        _p("active", _T, "Whether the record is in use (false after a merge)", "active"),
        _p("link", _R, "Patients this one was merged with", "link.other", target="Patient"),
    ),
    "Encounter": _subject(
        _p("status", _T, "Encounter status", "status"),
        _p("class", _T, "Patient class", "class"),
        _p("type", _T, "Encounter type", "type"),
        _p("date", _D, "Period of the encounter", "period"),
    ),
    "Observation": _subject(
        _p("encounter", _R, "Encounter", "encounter", target="Encounter"),
        _p("code", _T, "What was observed", "code"),
        _p("category", _T, "Category", "category"),
        _p("status", _T, "Result status", "status"),
        _p(
            "date",
            _D,
            "Clinically relevant time",
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveInstant",
        ),
        _p("based-on", _R, "The order fulfilled", "basedOn"),
    ),
    "DiagnosticReport": _subject(
        _p("encounter", _R, "Encounter", "encounter", target="Encounter"),
        _p("code", _T, "Report code", "code"),
        _p("category", _T, "Service category", "category"),
        _p("status", _T, "Report status", "status"),
        _p("date", _D, "Clinically relevant time", "effectiveDateTime", "effectivePeriod"),
        _p("based-on", _R, "The order fulfilled", "basedOn"),
        _p("result", _R, "Observations in the report", "result", target="Observation"),
    ),
    "MedicationRequest": _subject(
        _p("encounter", _R, "Encounter", "encounter", target="Encounter"),
        _p("code", _T, "Medication code", "medicationCodeableConcept"),
        _p("status", _T, "Request status", "status"),
        _p("intent", _T, "Request intent", "intent"),
        _p("authoredon", _D, "When written", "authoredOn"),
    ),
    "Immunization": _common(
        _p("patient", _R, "The patient", "patient", target="Patient"),
        _p("vaccine-code", _T, "Vaccine", "vaccineCode"),
        _p("status", _T, "Immunization status", "status"),
        _p("date", _D, "Administration date", "occurrenceDateTime"),
        _p("lot-number", _S, "Vaccine lot", "lotNumber"),
    ),
    "Appointment": _common(
        _p("patient", _R, "A patient participant", "participant.actor", target="Patient"),
        _p("actor", _R, "Any participant", "participant.actor"),
        _p("status", _T, "Appointment status", "status"),
        _p("date", _D, "Start time", "start"),
        _p("service-type", _T, "Service type", "serviceType"),
    ),
    "DocumentReference": _subject(
        _p("type", _T, "Document type", "type"),
        _p("category", _T, "Document category", "category"),
        _p("status", _T, "Reference status", "status"),
        _p("date", _D, "When the reference was created", "date"),
        _p("encounter", _R, "Encounter", "context.encounter", target="Encounter"),
    ),
    "ServiceRequest": _subject(
        _p("encounter", _R, "Encounter", "encounter", target="Encounter"),
        _p("code", _T, "What is requested", "code"),
        _p("status", _T, "Request status", "status"),
        _p("intent", _T, "Request intent", "intent"),
        _p("authored", _D, "When written", "authoredOn"),
        _p("requisition", _T, "Composite request id", "requisition"),
    ),
    "AllergyIntolerance": _common(
        _p("patient", _R, "The patient", "patient", target="Patient"),
        _p("code", _T, "Substance", "code"),
        _p("clinical-status", _T, "Clinical status", "clinicalStatus"),
        _p("criticality", _T, "Criticality", "criticality"),
        _p("category", _T, "Category", "category"),
    ),
    "Condition": _subject(
        _p("encounter", _R, "Encounter", "encounter", target="Encounter"),
        _p("code", _T, "Condition code", "code"),
        _p("category", _T, "Category", "category"),
        _p("clinical-status", _T, "Clinical status", "clinicalStatus"),
        _p("onset-date", _D, "Onset", "onsetDateTime", "onsetPeriod"),
        _p("recorded-date", _D, "Recorded", "recordedDate"),
    ),
}
"""Search parameters per served type (``_id`` and ``_lastUpdated`` are added by the adapter)."""


def normalize_string(text: str) -> str:
    """Case- and accent-insensitive form used for string search."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()[:255]


def _walk(value: Any, path: list[str]) -> Iterator[Any]:
    if not path:
        if isinstance(value, list):
            yield from value
        elif value is not None:
            yield value
        return
    if isinstance(value, list):
        for item in value:
            yield from _walk(item, path)
        return
    if isinstance(value, Mapping):
        yield from _walk(value.get(path[0]), path[1:])


def _date_range(text: str) -> tuple[datetime, datetime] | None:
    try:
        parsed = his_sdk.search.parse_date_value(text)
    except his_sdk.errors.InvalidRequestError:
        return None
    return parsed.lower, parsed.upper


def _values(
    ptype: ParamType, value: Any
) -> Iterator[tuple[str | None, str | None, datetime | None, datetime | None]]:
    if ptype is ParamType.TOKEN:
        if isinstance(value, bool):
            yield "", "true" if value else "false", None, None
        elif isinstance(value, str):
            yield "", value[:255], None, None
        elif isinstance(value, Mapping):
            if "coding" in value:
                for coding in value.get("coding") or []:
                    if coding.get("code"):
                        yield coding.get("system", ""), str(coding["code"])[:255], None, None
            elif "value" in value and isinstance(value.get("value"), str):
                yield value.get("system", ""), value["value"][:255], None, None
            elif value.get("code"):
                yield value.get("system", ""), str(value["code"])[:255], None, None
    elif ptype is ParamType.STRING:
        if isinstance(value, str):
            yield None, normalize_string(value), None, None
        elif isinstance(value, Mapping):
            for key in (
                "text",
                "family",
                "given",
                "prefix",
                "suffix",
                "line",
                "city",
                "state",
                "postalCode",
                "country",
            ):
                part = value.get(key)
                for item in part if isinstance(part, list) else [part]:
                    if isinstance(item, str) and item:
                        yield None, normalize_string(item), None, None
    elif ptype is ParamType.DATE:
        if isinstance(value, str):
            rng = _date_range(value)
            if rng:
                yield None, None, rng[0], rng[1]
        elif isinstance(value, Mapping):
            start = _date_range(value["start"]) if value.get("start") else None
            end = _date_range(value["end"]) if value.get("end") else None
            if start or end:
                yield None, None, start[0] if start else _MIN, end[1] if end else _MAX
    elif (
        ptype is ParamType.REFERENCE
        and isinstance(value, Mapping)
        and isinstance(value.get("reference"), str)
    ):
        yield None, value["reference"][:255], None, None


def index_rows(resource: Mapping[str, Any]) -> list[IndexRow]:
    """Every search-index row of one resource (empty for types without parameters)."""
    rtype = resource["resourceType"]
    rid = resource["id"]
    specs = PARAMS.get(rtype)
    if not specs:
        return []
    rows: list[IndexRow] = []
    seen: set[tuple[str, str | None, str | None, datetime | None, datetime | None]] = set()
    for name, spec in specs.items():
        target = spec.definition.target
        for path in spec.paths:
            for value in _walk(resource, path.split(".")):
                for system, text, lo, hi in _values(spec.definition.type, value):
                    if target and text and not text.startswith(f"{target}/"):
                        continue
                    key = (name, system, text, lo, hi)
                    if key in seen:
                        continue
                    seen.add(key)
                    rows.append(IndexRow(rtype, rid, name, system, text, lo, hi))
    return rows
