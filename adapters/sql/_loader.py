"""Turning one FHIR bundle into rows of the legacy schema (the seed loader's core).

Practitioners and organisations that bundles only name through conditional references
(``Practitioner?identifier=...|NPI``) become ``users``/``facility`` rows keyed by that
identifier and named from the reference's ``display``. Whatever the schema cannot hold is
counted by reason, never dropped silently.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa

from ._bundle import (
    NPI_SYSTEM,
    BundleIndex,
    coded,
    concept_text,
    first_code,
    parse_conditional,
    to_date,
    to_utc,
)
from ._schema import METADATA, TABLE_ORDER

__all__ = ["ID_COLUMNS", "BundleLoader", "Registry", "SeedCounts"]


class SeedCounts(Protocol):
    """Where the loader counts what it leaves out."""

    skipped: Counter[str]
    partial: Counter[str]


_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_LOINC = "http://loinc.org"
_GENDER = {"male": "Male", "female": "Female", "other": "Other", "unknown": "Unknown"}
_RESULT_STATUS = {
    "final": "final",
    "amended": "correct",
    "corrected": "correct",
    "preliminary": "prelim",
    "registered": "incomplete",
    "cancelled": "cancel",
    "entered-in-error": "error",
}
_ABNORMAL = {"H": "high", "L": "low", "A": "yes", "N": "no", "HH": "vhigh", "LL": "vlow"}
# LOINC vital sign -> (form_vitals column, UCUM unit it must be in)
_VITALS = {
    "8480-6": ("bps", "mm[Hg]"),
    "8462-4": ("bpd", "mm[Hg]"),
    "29463-7": ("weight", "kg"),
    "8302-2": ("height", "cm"),
    "8310-5": ("temperature", "Cel"),
    "8867-4": ("pulse", "/min"),
    "9279-1": ("respiration", "/min"),
    "2708-6": ("oxygen_saturation", "%"),
    "59408-5": ("oxygen_saturation", "%"),
    "39156-5": ("BMI", "kg/m2"),
}
_BP_PANELS = frozenset({"85354-9", "55284-4"})
_TEXT_VITALS = frozenset({"bps", "bpd"})
_NAME_PREFIX = re.compile(r"^(dr|mr|mrs|ms|miss|prof)\.?$", re.IGNORECASE)
ID_COLUMNS = {
    "users": "id",
    "facility": "id",
    "patient_data": "pid",
    "form_encounter": "id",
    "lists": "id",
    "prescriptions": "id",
    "procedure_order": "procedure_order_id",
    "procedure_result": "procedure_result_id",
    "form_vitals": "id",
}
"""Table -> its integer id column; seeded rows get explicit ids from :class:`Registry`."""


class Registry:
    """Ids handed out so far, and the rows already in the database that loads must reuse."""

    def __init__(self, conn: sa.Connection) -> None:
        self.next: dict[str, int] = {}
        for table, column in ID_COLUMNS.items():
            c = METADATA.tables[table].c[column]
            self.next[table] = int(conn.execute(sa.select(sa.func.max(c))).scalar() or 0) + 1
        visits = METADATA.tables["form_encounter"].c.encounter
        self.next["encounter"] = int(conn.execute(sa.select(sa.func.max(visits))).scalar() or 0) + 1
        users = METADATA.tables["users"]
        self.users: dict[str, int] = {}
        for uid, npi, username in conn.execute(
            sa.select(users.c.id, users.c.npi, users.c.username)
        ):
            self.users[f"npi:{npi}" if npi else f"user:{username}"] = int(uid)
        facility = METADATA.tables["facility"]
        self.facilities: dict[str, tuple[int, str | None]] = {
            str(ident): (int(fid), name)
            for fid, ident, name in conn.execute(
                sa.select(facility.c.id, facility.c.identifier, facility.c.name)
            )
            if ident
        }
        patients = METADATA.tables["patient_data"]
        self.pubpids = {str(p) for (p,) in conn.execute(sa.select(patients.c.pubpid))}

    def take(self, counter: str) -> int:
        """The next free id of a table (or of ``encounter``, the visit number)."""
        value = self.next[counter]
        self.next[counter] = value + 1
        return value


def _name_parts(display: str | None) -> tuple[str | None, str | None]:
    words = [w for w in (display or "").split() if not _NAME_PREFIX.match(w)]
    if not words:
        return None, None
    return words[0], (words[-1] if len(words) > 1 else None)


def _number_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return format(Decimal(str(value)), "f")
    return None


class BundleLoader:
    """Turns one bundle into rows per table."""

    def __init__(self, index: BundleIndex, registry: Registry, report: SeedCounts) -> None:
        self.index = index
        self.registry = registry
        self.report = report
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLE_ORDER}
        self.patients: dict[str, int] = {}
        self.loaded_before: set[int] = set()
        self.encounters: dict[str, tuple[int, int | None]] = {}
        self.orders: dict[tuple[int, int | None], int] = {}
        self.vitals: dict[tuple[int, int | None, datetime | None], dict[str, Any]] = {}

    # references

    def _user(self, reference: Any) -> int | None:
        if not isinstance(reference, dict):
            return None
        ref = reference.get("reference")
        display = reference.get("display")
        npi: str | None = None
        key: str | None = None
        if isinstance(ref, str) and (cond := parse_conditional(ref)) is not None:
            if cond.system == NPI_SYSTEM:
                npi = cond.value
            key = f"npi:{npi}" if npi else f"user:{cond.system or ''}|{cond.value}"[:255]
        else:
            target = self.index.resolve(ref if isinstance(ref, str) else None)
            if target is not None and target.get("resourceType") == "Practitioner":
                for ident in target.get("identifier") or []:
                    if ident.get("system") == NPI_SYSTEM and ident.get("value"):
                        npi = str(ident["value"])
                key = f"npi:{npi}" if npi else f"user:fhir-{target.get('id')}"
                names = target.get("name") or []
                if names and not display:
                    name = names[0]
                    given = " ".join(name.get("given") or [])
                    display = f"{given} {name.get('family') or ''}".strip()
        if key is None:
            self.report.partial["practitioner reference not resolvable (left empty)"] += 1
            return None
        if key in self.registry.users:
            return self.registry.users[key]
        uid = self.registry.take("users")
        fname, lname = _name_parts(display if isinstance(display, str) else None)
        username = f"npi{npi}" if npi else key.removeprefix("user:")
        self.rows["users"].append(
            {
                "id": uid,
                "username": username[:255],
                "fname": fname,
                "lname": lname,
                "npi": npi,
                "active": 1,
            }
        )
        self.registry.users[key] = uid
        return uid

    def _facility(self, reference: Any) -> tuple[int | None, str | None]:
        if not isinstance(reference, dict):
            return None, None
        ref = reference.get("reference")
        name = reference.get("display") if isinstance(reference.get("display"), str) else None
        key: str | None = None
        if isinstance(ref, str) and (cond := parse_conditional(ref)) is not None:
            key = f"{cond.system or ''}|{cond.value}"
        else:
            target = self.index.resolve(ref if isinstance(ref, str) else None)
            if target is not None and target.get("resourceType") == "Organization":
                name = name or target.get("name")
                idents = [i for i in target.get("identifier") or [] if i.get("value")]
                key = (
                    f"{idents[0].get('system') or ''}|{idents[0]['value']}"
                    if idents
                    else f"Organization/{target.get('id')}"
                )
        if key is None:
            if name:
                return None, name
            self.report.partial["organization reference not resolvable (left empty)"] += 1
            return None, None
        key = key[:255]
        if key not in self.registry.facilities:
            fid = self.registry.take("facility")
            self.rows["facility"].append({"id": fid, "name": name, "identifier": key})
            self.registry.facilities[key] = (fid, name)
        fid, known = self.registry.facilities[key]
        return fid, name or known

    def _patient_of(self, resource: Mapping[str, Any], element: str = "subject") -> int | None:
        ref = (resource.get(element) or resource.get("patient") or {}).get("reference")
        if not isinstance(ref, str):
            return None
        target = self.index.resolve(ref)
        keys = list(self.index.keys_of(target)) if target is not None else [ref]
        for key in keys:
            if key in self.patients:
                return self.patients[key]
        return None

    def _encounter_of(self, resource: Mapping[str, Any]) -> tuple[int | None, int | None]:
        """``(visit number, provider id)`` of the resource's encounter."""
        ref = (resource.get("encounter") or {}).get("reference")
        if not isinstance(ref, str):
            return None, None
        target = self.index.resolve(ref)
        for key in list(self.index.keys_of(target)) if target is not None else [ref]:
            if key in self.encounters:
                return self.encounters[key]
        self.report.partial[
            f"{resource['resourceType']}: encounter not in bundle (left empty)"
        ] += 1
        return None, None

    def _skip(self, resource_type: str, reason: str) -> None:
        self.report.skipped[f"{resource_type}: {reason}"] += 1

    def _owned(self, resource: Mapping[str, Any]) -> int | None:
        """The pid of the resource's patient; counts the skip when there is none."""
        pid = self._patient_of(resource)
        if pid is None:
            ref = (resource.get("subject") or resource.get("patient") or {}).get("reference")
            target = self.index.resolve(ref) if isinstance(ref, str) else None
            if target is not None and id(target) in self.loaded_before:
                self._skip(resource["resourceType"], "patient already loaded")
            else:
                self._skip(resource["resourceType"], "patient not in bundle")
        return pid

    # resources

    def load(self) -> None:
        """Fill ``rows``: practitioners and organisations first, then patients, visits, the rest."""
        handlers = {
            "Condition": self._condition,
            "AllergyIntolerance": self._allergy,
            "MedicationRequest": self._medication_request,
            "Observation": self._observation,
        }
        entries = self.index.entries
        for resource in entries:
            kind = resource.get("resourceType")
            if kind == "Practitioner":
                self._user({"reference": f"Practitioner/{resource.get('id')}"})
            elif kind == "Organization":
                self._facility({"reference": f"Organization/{resource.get('id')}"})
        for resource in entries:
            if resource.get("resourceType") == "Patient":
                self._patient(resource)
        for resource in entries:
            if resource.get("resourceType") == "Encounter":
                self._encounter(resource)
        for resource in entries:
            kind = str(resource.get("resourceType"))
            if kind in handlers:
                handlers[kind](resource)
            elif kind not in ("Patient", "Encounter", "Practitioner", "Organization"):
                self._skip(kind, "resource type not stored")

    def _patient(self, resource: Mapping[str, Any]) -> None:
        identifiers = [i for i in resource.get("identifier") or [] if i.get("value")]
        mrn = next(
            (
                i["value"]
                for i in identifiers
                if any(c.get("code") == "MR" for c in (i.get("type") or {}).get("coding") or [])
            ),
            identifiers[0]["value"] if identifiers else resource.get("id"),
        )
        if not mrn:
            self._skip("Patient", "no identifier or id")
            return
        mrn = str(mrn)
        if mrn in self.registry.pubpids:
            self.loaded_before.add(id(resource))
            self._skip("Patient", "patient already loaded")
            return
        names = resource.get("name") or [{}]
        name = next((n for n in names if n.get("use") == "official"), names[0])
        given = name.get("given") or []
        telecom = resource.get("telecom") or []
        phones = [t for t in telecom if t.get("system") == "phone" and t.get("value")]
        phone = next((t for t in phones if t.get("use") == "home"), phones[0] if phones else {})
        email: dict[str, Any] = next(
            (t for t in telecom if t.get("system") == "email" and t.get("value")), {}
        )
        address = (resource.get("address") or [{}])[0]
        practitioners = resource.get("generalPractitioner") or []
        provider = self._user(practitioners[0]) if practitioners else None
        gender = resource.get("gender")
        pid = self.registry.take("patient_data")
        self.rows["patient_data"].append(
            {
                "pid": pid,
                "pubpid": mrn,
                "fname": given[0] if given else None,
                "mname": " ".join(given[1:]) or None,
                "lname": name.get("family"),
                "DOB": to_date(resource.get("birthDate")),
                "sex": _GENDER.get(str(gender)) if gender else None,
                "street": ", ".join(address.get("line") or []) or None,
                "city": address.get("city"),
                "state": address.get("state"),
                "postal_code": address.get("postalCode"),
                "phone_home": phone.get("value"),
                "email": email.get("value"),
                "deceased_date": to_utc(resource.get("deceasedDateTime")),
                "providerID": provider,
                "allow_health_info_ex": "",
                "activity": 1,
            }
        )
        if resource.get("deceasedBoolean") is True:
            self.report.partial["Patient: deceased without a date (not recorded)"] += 1
        self.registry.pubpids.add(mrn)
        for key in self.index.keys_of(resource):
            self.patients[key] = pid

    def _encounter(self, resource: Mapping[str, Any]) -> None:
        pid = self._owned(resource)
        if pid is None:
            return
        status = resource.get("status")
        if status in ("cancelled", "entered-in-error"):
            self._skip("Encounter", f"status {status} not stored")
            return
        provider = None
        for participant in resource.get("participant") or []:
            individual = participant.get("individual") or {}
            ref = str(individual.get("reference") or "")
            if ref.startswith("Practitioner") or (
                (target := self.index.resolve(ref)) is not None
                and target.get("resourceType") == "Practitioner"
            ):
                provider = self._user(individual)
                break
        facility_id, facility = self._facility(resource.get("serviceProvider"))
        period = resource.get("period") or {}
        types = resource.get("type") or [{}]
        reasons = resource.get("reasonCode") or []
        number = self.registry.take("encounter")
        self.rows["form_encounter"].append(
            {
                "id": self.registry.take("form_encounter"),
                "encounter": number,
                "pid": pid,
                "date": to_utc(period.get("start")),
                "date_end": to_utc(period.get("end")),
                "reason": concept_text(reasons[0]) if reasons else None,
                "class_code": (resource.get("class") or {}).get("code"),
                "encounter_type_code": coded(types[0]),
                "encounter_type_text": concept_text(types[0]),
                "facility": facility,
                "facility_id": facility_id,
                "provider_id": provider,
                "activity": 1,
            }
        )
        for key in self.index.keys_of(resource):
            self.encounters[key] = (number, provider)

    def _list_row(self, resource: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
        pid = self._owned(resource)
        if pid is None:
            return None
        codes = coded(resource.get("code"))
        if codes is None:
            self._skip(resource["resourceType"], "no code in a known code system")
            return None
        encounter, _ = self._encounter_of(resource)
        verification = first_code(
            resource.get("verificationStatus"),
            "http://terminology.hl7.org/CodeSystem/"
            + (
                "condition-ver-status"
                if kind == "medical_problem"
                else "allergyintolerance-verification"
            ),
        )
        return {
            "id": self.registry.take("lists"),
            "pid": pid,
            "type": kind,
            "title": concept_text(resource.get("code")),
            "diagnosis": codes,
            "verification": verification,
            "encounter": encounter,
            "activity": 1,
        }

    def _clinical_status(self, resource: Mapping[str, Any]) -> str | None:
        concept = resource.get("clinicalStatus") or {}
        return next((str(c.get("code")) for c in concept.get("coding") or []), None)

    def _condition(self, resource: Mapping[str, Any]) -> None:
        row = self._list_row(resource, "medical_problem")
        if row is None:
            return
        onset = resource.get("onsetDateTime") or (resource.get("onsetPeriod") or {}).get("start")
        abatement = resource.get("abatementDateTime") or (
            resource.get("abatementPeriod") or {}
        ).get("end")
        row |= {
            "date": to_utc(resource.get("recordedDate")),
            "begdate": to_utc(onset),
            "enddate": to_utc(abatement),
        }
        status = self._clinical_status(resource)
        if status not in (None, "active", "recurrence", "relapse") and row["enddate"] is None:
            self.report.partial[f"Condition: {status} without an end date (reads as active)"] += 1
        self.rows["lists"].append(row)

    def _allergy(self, resource: Mapping[str, Any]) -> None:
        row = self._list_row(resource, "allergy")
        if row is None:
            return
        reactions = resource.get("reaction") or [{}]
        manifestations = reactions[0].get("manifestation") or []
        categories = resource.get("category") or []
        end = None
        status = self._clinical_status(resource)
        if status not in (None, "active"):
            end = to_utc(resource.get("lastOccurrence"))
            if end is None:
                self.report.partial[
                    f"AllergyIntolerance: {status} without an end date (reads as active)"
                ] += 1
        row |= {
            "subtype": categories[0] if categories else None,
            "date": to_utc(resource.get("recordedDate")),
            "begdate": to_utc(resource.get("onsetDateTime")),
            "enddate": end,
            "reaction": concept_text(manifestations[0]) if manifestations else None,
            "severity_al": reactions[0].get("severity"),
        }
        self.rows["lists"].append(row)

    def _medication_request(self, resource: Mapping[str, Any]) -> None:
        pid = self._owned(resource)
        if pid is None:
            return
        concept = resource.get("medicationCodeableConcept")
        if concept is None:
            ref = (resource.get("medicationReference") or {}).get("reference")
            medication = self.index.resolve(ref if isinstance(ref, str) else None)
            concept = (medication or {}).get("code")
        drug, code = concept_text(concept), first_code(concept, _RXNORM)
        if drug is None and code is None:
            self._skip("MedicationRequest", "no medication code or text")
            return
        if code is None:
            self.report.partial["MedicationRequest: no RxNorm code (text only)"] += 1
        status = resource.get("status")
        if status not in ("active", "stopped"):
            self.report.partial[f"MedicationRequest: status {status} stored as stopped"] += 1
        encounter, _ = self._encounter_of(resource)
        dosage = (resource.get("dosageInstruction") or [{}])[0]
        authored = to_utc(resource.get("authoredOn"))
        self.rows["prescriptions"].append(
            {
                "id": self.registry.take("prescriptions"),
                "patient_id": pid,
                "encounter": encounter,
                "date_added": authored,
                "start_date": authored.date() if authored else None,
                "end_date": None,
                "drug": drug,
                "rxnorm_drugcode": code,
                "dosage": dosage.get("text"),
                "route": concept_text(dosage.get("route")),
                "active": 1 if status == "active" else 0,
                "intent": resource.get("intent"),
                "provider_id": self._user(resource.get("requester")),
                "activity": 1,
            }
        )

    def _observation(self, resource: Mapping[str, Any]) -> None:
        categories = [
            str(c.get("code"))
            for concept in resource.get("category") or []
            for c in concept.get("coding") or []
        ]
        if "laboratory" in categories:
            handler = self._lab
        elif "vital-signs" in categories:
            handler = self._vital
        else:
            reason = f"category {categories[0]} not stored" if categories else "no category"
            self._skip("Observation", reason)
            return
        pid = self._owned(resource)
        if pid is not None:
            handler(resource, pid)

    def _lab(self, resource: Mapping[str, Any], pid: int) -> None:
        code = first_code(resource.get("code"), _LOINC)
        if code is None:
            self._skip("Observation", "laboratory result without a LOINC code")
            return
        encounter, provider = self._encounter_of(resource)
        effective = to_utc(resource.get("effectiveDateTime") or resource.get("issued"))
        order_key = (pid, encounter)
        if order_key not in self.orders:
            order_id = self.registry.take("procedure_order")
            self.orders[order_key] = order_id
            self.rows["procedure_order"].append(
                {
                    "procedure_order_id": order_id,
                    "patient_id": pid,
                    "encounter_id": encounter,
                    "date_ordered": effective,
                    "order_status": "complete",
                    "provider_id": provider,
                    "activity": 1,
                }
            )
        result, units = self._lab_value(resource)
        interpretation = first_code(
            (resource.get("interpretation") or [None])[0],
            "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        )
        ranges = resource.get("referenceRange") or [{}]
        low = _number_text((ranges[0].get("low") or {}).get("value"))
        high = _number_text((ranges[0].get("high") or {}).get("value"))
        range_text = ranges[0].get("text") or (f"{low or ''}-{high or ''}" if low or high else None)
        status = resource.get("status")
        self.rows["procedure_result"].append(
            {
                "procedure_result_id": self.registry.take("procedure_result"),
                "procedure_order_id": self.orders[order_key],
                "result_code": f"LOINC:{code}",
                "result_text": concept_text(resource.get("code")),
                "date": effective,
                "result": result,
                "units": units,
                "range": range_text,
                "abnormal": _ABNORMAL.get(interpretation or ""),
                "result_status": _RESULT_STATUS.get(str(status), "final"),
                "activity": 1,
            }
        )
        if str(status) not in _RESULT_STATUS:
            self.report.partial[f"Observation: status {status} stored as final"] += 1

    def _lab_value(self, resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
        quantity = resource.get("valueQuantity")
        if isinstance(quantity, dict) and _number_text(quantity.get("value")) is not None:
            unit = quantity.get("code") or quantity.get("unit")
            return _number_text(quantity.get("value")), str(unit) if unit else None
        for key in ("valueString", "valueCodeableConcept", "valueBoolean", "valueInteger"):
            if key in resource:
                value = resource[key]
                if isinstance(value, dict):
                    return concept_text(value), None
                if isinstance(value, bool):
                    return ("true" if value else "false"), None
                return str(value), None
        self.report.partial["Observation: laboratory result without a value"] += 1
        return None, None

    def _vital(self, resource: Mapping[str, Any], pid: int) -> None:
        code = first_code(resource.get("code"), _LOINC)
        if code in _BP_PANELS:
            measurements = [
                (first_code(c.get("code"), _LOINC), c.get("valueQuantity"))
                for c in resource.get("component") or []
            ]
        else:
            measurements = [(code, resource.get("valueQuantity"))]
        values: dict[str, Any] = {}
        for loinc, quantity in measurements:
            target = _VITALS.get(loinc or "")
            if target is None:
                self._skip("Observation", f"vital sign LOINC {loinc} has no form_vitals column")
                return
            column, unit = target
            if not isinstance(quantity, dict) or _number_text(quantity.get("value")) is None:
                self._skip("Observation", f"vital sign LOINC {loinc} without a numeric value")
                return
            if (quantity.get("code") or quantity.get("unit")) != unit:
                self._skip("Observation", f"vital sign LOINC {loinc} not in {unit}")
                return
            number = Decimal(_number_text(quantity["value"]) or "0")
            values[column] = _number_text(number) if column in _TEXT_VITALS else float(number)
        encounter, _ = self._encounter_of(resource)
        effective = to_utc(resource.get("effectiveDateTime"))
        key = (pid, encounter, effective)
        row = self.vitals.get(key)
        if row is None:
            row = {
                "id": self.registry.take("form_vitals"),
                "pid": pid,
                "encounter": encounter,
                "date": effective,
                "activity": 1,
            }
            row |= {c: None for c, _ in _VITALS.values()}
            self.vitals[key] = row
            self.rows["form_vitals"].append(row)
        if any(row[column] is not None for column in values):
            self._skip("Observation", "second vital sign of the same kind at the same time")
            return
        row.update(values)
