"""Built-in vocabulary maps, taken from the HL7 v2-to-FHIR implementation guide's tables.

Sites override or extend any of them with ConceptMap files (see ``_conceptmap.py``).
"""

from __future__ import annotations

import re

__all__ = ["V2_TABLE_SYSTEM", "code_system_uri"]

V2_TABLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-{}"

# HL7 table 0396 coding-system names to FHIR system URIs.
CODE_SYSTEMS: dict[str, str] = {
    "LN": "http://loinc.org",
    "LOINC": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "SNOMED": "http://snomed.info/sct",
    "SNOMEDCT": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10P": "http://www.cms.gov/Medicare/Coding/ICD10",
    "I9": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9CM": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9M": "http://hl7.org/fhir/sid/icd-9-cm",
    "ICDO": "http://terminology.hl7.org/CodeSystem/icd-o",
    "NDC": "http://hl7.org/fhir/sid/ndc",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "MVX": "http://hl7.org/fhir/sid/mvx",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "RXN": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "UCUM": "http://unitsofmeasure.org",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "C5": "http://www.ama-assn.org/go/cpt",
    "HCPCS": "urn:oid:2.16.840.1.113883.6.285",
    "HPC": "urn:oid:2.16.840.1.113883.6.285",
    "NCIT": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl",
    "NCI": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl",
    "CDCREC": "urn:oid:2.16.840.1.113883.6.238",
    "CDCPHINVS": "urn:oid:2.16.840.1.114222.4.5.274",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "NUCC": "http://nucc.org/provider-taxonomy",
    "ISO3166_1": "urn:iso:std:iso:3166",
    "ISO+": "http://unitsofmeasure.org",
    "NPI": "http://hl7.org/fhir/sid/us-npi",
    "ATC": "http://www.whocc.no/atc",
    "GPI": "urn:oid:2.16.840.1.113883.6.68",
}

_TABLE = re.compile(r"^HL7(\d{4})$|^HL7_?(\d{4})$|^(\d{4})$")


def code_system_uri(name: str, authority_prefix: str) -> str:
    """The FHIR system URI for a v2 coding-system name (``LN``, ``HL70203``, an OID, local)."""
    key = name.strip().upper()
    if key in CODE_SYSTEMS:
        return CODE_SYSTEMS[key]
    m = _TABLE.match(key)
    if m:
        return V2_TABLE_SYSTEM.format(next(g for g in m.groups() if g))
    if re.fullmatch(r"[0-2](\.\d+)+", name.strip()):
        return f"urn:oid:{name.strip()}"
    if key.startswith("99") or key.startswith("L") or key:
        local = re.sub(r"[^A-Za-z0-9\-._~]", "_", name.strip())
        return f"{authority_prefix}codesystem:{local}"
    return f"{authority_prefix}codesystem"


GENDER = {
    "M": "male",
    "F": "female",
    "O": "other",
    "A": "other",
    "U": "unknown",
    "N": "unknown",
    "X": "other",
}

ENCOUNTER_CLASS = {
    "E": ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "EMER", "emergency"),
    "I": ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP", "inpatient encounter"),
    "O": ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
    "P": ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "PRENC", "pre-admission"),
    "R": (V2_TABLE_SYSTEM.format("0004"), "R", "Recurring patient"),
    "B": (V2_TABLE_SYSTEM.format("0004"), "B", "Obstetrics"),
    "C": (V2_TABLE_SYSTEM.format("0004"), "C", "Commercial Account"),
    "N": (V2_TABLE_SYSTEM.format("0004"), "N", "Not Applicable"),
    "U": (V2_TABLE_SYSTEM.format("0004"), "U", "Unknown"),
}

EVENT_ENCOUNTER_STATUS = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "planned",
    "A05": "planned",
    "A06": "in-progress",
    "A07": "in-progress",
    "A08": "unknown",
    "A11": "cancelled",
    "A13": "in-progress",
    "A14": "planned",
    "A28": "unknown",
    "A31": "unknown",
}

OBSERVATION_STATUS = {
    "C": "corrected",
    "D": "entered-in-error",
    "F": "final",
    "I": "registered",
    "N": "cancelled",
    "O": "registered",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "U": "final",
    "W": "entered-in-error",
    "X": "cancelled",
    "A": "amended",
}

REPORT_STATUS = {
    "O": "registered",
    "I": "registered",
    "S": "registered",
    "A": "partial",
    "P": "preliminary",
    "C": "corrected",
    "R": "partial",
    "F": "final",
    "X": "cancelled",
    "Y": "unknown",
    "Z": "unknown",
    "M": "corrected",
    "N": "unknown",
}

ORDER_CONTROL_STATUS = {
    "AF": "active",
    "CA": "active",
    "CR": "revoked",
    "DC": "revoked",
    "DF": "revoked",
    "DR": "revoked",
    "FU": "completed",
    "HD": "active",
    "HR": "on-hold",
    "NW": "active",
    "OC": "revoked",
    "OD": "revoked",
    "OH": "on-hold",
    "OK": "active",
    "PR": "active",
    "PY": "active",
    "RL": "active",
    "RO": "active",
    "RQ": "active",
    "XO": "active",
    "XR": "active",
    "XX": "active",
    "SC": "active",
    "RE": "completed",
}

ORDER_STATUS = {
    "A": "active",
    "CA": "revoked",
    "CM": "completed",
    "DC": "revoked",
    "ER": "entered-in-error",
    "HD": "on-hold",
    "IP": "active",
    "RP": "revoked",
    "SC": "active",
}

PRIORITY = {
    "S": "stat",
    "A": "asap",
    "R": "routine",
    "P": "urgent",
    "C": "urgent",
    "T": "urgent",
    "PRN": "routine",
}

INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

ALLERGY_CATEGORY = {
    "DA": "medication",
    "FA": "food",
    "EA": "environment",
    "MA": "medication",
    "AA": "environment",
    "LA": "environment",
    "PA": "environment",
    "MC": "medication",
}

ALLERGY_CRITICALITY = {"SV": "high", "MO": "low", "MI": "low", "U": "unable-to-assess"}

DIAGNOSIS_VERIFICATION = {
    "A": "provisional",
    "W": "provisional",
    "F": "confirmed",
    "P": "provisional",
}

APPOINTMENT_STATUS = {
    "PENDING": "pending",
    "WAITLIST": "waitlist",
    "BOOKED": "booked",
    "STARTED": "checked-in",
    "COMPLETE": "fulfilled",
    "CANCELLED": "cancelled",
    "DELETED": "entered-in-error",
    "NOSHOW": "noshow",
    "OVERBOOK": "booked",
    "DC": "cancelled",
    "DISCONTINUED": "cancelled",
}

APPOINTMENT_EVENT_STATUS = {
    "S15": "cancelled",
    "S16": "cancelled",
    "S17": "entered-in-error",
    "S26": "noshow",
}

IMMUNIZATION_STATUS = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}

DOCUMENT_STATUS = {
    "AU": "final",
    "LA": "final",
    "DI": "preliminary",
    "DO": "preliminary",
    "IP": "preliminary",
    "IN": "preliminary",
    "PA": "preliminary",
}
