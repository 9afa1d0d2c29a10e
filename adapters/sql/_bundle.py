"""Reading FHIR R4 bundles for the seed loader: references, dates, codes and names."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = [
    "ALIAS_FOR_SYSTEM",
    "NPI_SYSTEM",
    "BundleIndex",
    "Conditional",
    "bundle_files",
    "coded",
    "concept_text",
    "first_code",
    "parse_conditional",
    "read_bundle",
    "to_date",
    "to_utc",
]

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"

ALIAS_FOR_SYSTEM: Mapping[str, str] = {
    "http://snomed.info/sct": "SNOMED-CT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10",
    "http://hl7.org/fhir/sid/icd-10": "ICD10",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
    "http://loinc.org": "LOINC",
    "http://hl7.org/fhir/sid/cvx": "CVX",
}
"""FHIR system URI -> the alias the legacy schema writes in ``SYSTEM:code`` text."""


def bundle_files(paths: Sequence[Path]) -> list[Path]:
    """Every ``*.json`` file named or inside the named folders, in a stable order.

    Raises:
        FileNotFoundError: A path does not exist.
    """
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.json") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such bundle file or folder: {path}")
    return files


def read_bundle(path: Path) -> Any:
    """The parsed JSON of a file; decimals stay exact.

    Raises:
        ValueError: The file is not valid JSON.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid JSON file") from exc


@dataclass(frozen=True)
class Conditional:
    """A conditional reference ``Type?identifier=system|value`` (Synthea's practitioners)."""

    resource_type: str
    system: str | None
    value: str


def parse_conditional(reference: str) -> Conditional | None:
    """The identifier of a conditional reference, or None for other references."""
    resource_type, sep, query = reference.partition("?")
    if not sep:
        return None
    for part in query.split("&"):
        name, _, raw = part.partition("=")
        if name != "identifier" or not raw:
            continue
        system, bar, value = raw.rpartition("|")
        if value:
            return Conditional(resource_type, system if bar and system else None, value)
    return None


@dataclass
class BundleIndex:
    """The resources of one bundle, addressable by fullUrl and by ``Type/id``."""

    entries: list[dict[str, Any]]
    _by_ref: dict[str, dict[str, Any]] = field(default_factory=dict)
    _refs_of: dict[int, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, bundle: Mapping[str, Any]) -> BundleIndex:
        """Index a parsed bundle."""
        entries = [
            e["resource"]
            for e in bundle.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]
        index = cls(entries)
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            keys = []
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                keys.append(full_url)
            if "id" in resource and "resourceType" in resource:
                keys.append(f"{resource['resourceType']}/{resource['id']}")
            for key in keys:
                index._by_ref[key] = resource
            index._refs_of[id(resource)] = keys
        return index

    def keys_of(self, resource: Mapping[str, Any]) -> Iterator[str]:
        """Every reference string that addresses ``resource`` in this bundle."""
        return iter(self._refs_of.get(id(resource), []))

    def resolve(self, reference: str | None) -> dict[str, Any] | None:
        """The bundle resource a literal reference points to, or None."""
        if not reference:
            return None
        if reference in self._by_ref:
            return self._by_ref[reference]
        parts = reference.rstrip("/").split("/")
        if len(parts) >= 2:
            tail = "/".join(parts[-2:])
            if "_history" in parts and len(parts) >= 4:
                tail = "/".join(parts[-4:-2])
            return self._by_ref.get(tail)
        return None


def to_utc(text: Any) -> datetime | None:
    """A FHIR date/dateTime/instant as naive UTC (partial dates at their first instant)."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip()
    if len(value) == 4 and value.isdigit():
        return datetime(int(value), 1, 1)
    if len(value) == 7:
        return datetime(int(value[:4]), int(value[5:7]), 1)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def to_date(text: Any) -> date | None:
    """A FHIR date (partial dates at their first day)."""
    moment = to_utc(text) if isinstance(text, str) and "T" not in text else None
    return moment.date() if moment is not None else None


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def coded(concept: Any) -> str | None:
    """``ALIAS:code;ALIAS:code`` for the codings in known systems, or None."""
    items: list[str] = []
    for coding in _codings(concept):
        alias = ALIAS_FOR_SYSTEM.get(str(coding.get("system")))
        code = coding.get("code")
        if alias and isinstance(code, str) and code:
            item = f"{alias}:{code}"
            if item not in items:
                items.append(item)
    return ";".join(items) or None


def first_code(concept: Any, system: str) -> str | None:
    """The first code of ``concept`` in ``system``."""
    for coding in _codings(concept):
        if coding.get("system") == system and isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def concept_text(concept: Any) -> str | None:
    """The concept's text, else its first coding's display."""
    if not isinstance(concept, dict):
        return None
    if isinstance(concept.get("text"), str) and concept["text"]:
        return str(concept["text"])
    for coding in _codings(concept):
        if isinstance(coding.get("display"), str) and coding["display"]:
            return str(coding["display"])
    return None
