"""FHIR JSON made readable: key elements as rows and field-by-field comparisons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FieldChange", "FieldRow", "changes", "narrative", "resource_rows"]

# Shown above everything else, in this order, when present.
_KEY_ELEMENTS = (
    "resourceType",
    "id",
    "status",
    "intent",
    "priority",
    "category",
    "code",
    "medicationCodeableConcept",
    "medicationReference",
    "subject",
    "patient",
    "encounter",
    "name",
    "gender",
    "birthDate",
    "clinicalStatus",
    "verificationStatus",
    "criticality",
    "interpretation",
    "effectiveDateTime",
    "authoredOn",
    "onsetDateTime",
    "requester",
    "dosageInstruction",
    "note",
)
# Bookkeeping nobody reviews; the narrative is shown apart, as text.
_SKIPPED = frozenset({"meta", "text", "contained", "extension", "modifierExtension"})
_MAX_ROWS = 200


@dataclass(frozen=True)
class FieldRow:
    """One element of a resource: a readable path and a readable value."""

    path: str
    value: str


@dataclass(frozen=True)
class FieldChange:
    """One element that differs between two versions (``before`` or ``after`` may be absent)."""

    path: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> str:
        """``added``, ``removed`` or ``changed``."""
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "changed"


def _coding_text(coding: dict[str, Any]) -> str:
    code = coding.get("code")
    display = coding.get("display")
    system = coding.get("system")
    tail = f"{system}|{code}" if system and code else str(code or "")
    if display and tail:
        return f"{display} ({tail})"
    return str(display or tail)


def _summary(value: dict[str, Any]) -> str | None:
    """A one-line text for the common FHIR datatypes, or None to flatten the object."""
    keys = set(value)
    if keys and keys <= {"coding", "text"}:
        codings = "; ".join(_coding_text(c) for c in value.get("coding", []) if isinstance(c, dict))
        text = value.get("text")
        return f"{text} [{codings}]" if text and codings else str(text or codings)
    if keys & {"code", "system"} and keys <= {"code", "system", "display", "version"}:
        return _coding_text(value)
    if "value" in keys and keys <= {"value", "unit", "system", "code", "comparator"}:
        unit = value.get("unit") or value.get("code") or ""
        return f"{value.get('comparator', '')}{value['value']} {unit}".strip()
    if "reference" in keys and keys <= {"reference", "display", "type", "identifier"}:
        display = value.get("display")
        return f"{value['reference']} ({display})" if display else str(value["reference"])
    name_keys = {"family", "given", "prefix", "suffix", "use", "text"}
    if keys & {"family", "given"} and keys <= name_keys:
        parts = [*value.get("prefix", []), *value.get("given", []), value.get("family", "")]
        return " ".join(str(p) for p in parts if p)
    return None


def _flatten(value: Any, path: str, out: list[FieldRow]) -> None:
    if len(out) >= _MAX_ROWS:
        return
    if isinstance(value, dict):
        summary = _summary(value)
        if summary is not None:
            out.append(FieldRow(path, summary))
            return
        for key, item in value.items():
            if key in _SKIPPED:
                continue
            _flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", out)
    elif isinstance(value, bool):
        out.append(FieldRow(path, "true" if value else "false"))
    elif value is not None:
        out.append(FieldRow(path, str(value)))


def resource_rows(resource: dict[str, Any] | None) -> list[FieldRow]:
    """The resource's elements as rows, key clinical elements first, narrative excluded."""
    if not resource:
        return []
    rows: list[FieldRow] = []
    ordered = [k for k in _KEY_ELEMENTS if k in resource]
    ordered += [k for k in resource if k not in _KEY_ELEMENTS and k not in _SKIPPED]
    for key in ordered:
        _flatten(resource[key], key, rows)
    return rows


def narrative(resource: dict[str, Any] | None) -> str | None:
    """The narrative XHTML as a string, to be shown escaped (it is untrusted HTML)."""
    if not resource:
        return None
    text = resource.get("text")
    if isinstance(text, dict) and isinstance(text.get("div"), str):
        return str(text["div"])
    return None


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[FieldChange]:
    """Element-by-element differences between two versions of a resource, in reading order."""
    old = {row.path: row.value for row in resource_rows(before)}
    new = {row.path: row.value for row in resource_rows(after)}
    paths = list(new) + [p for p in old if p not in new]
    return [
        FieldChange(path, old.get(path), new.get(path))
        for path in paths
        if old.get(path) != new.get(path)
    ]
