"""Site ConceptMap files: local codes to standard codings, versioned by the integrator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydantic
from fhir.resources.R4B.conceptmap import ConceptMap

__all__ = ["load_concept_maps"]


def load_concept_maps(
    paths: Iterable[Path],
) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], str]:
    """Read ConceptMap JSON files into a lookup and a version fingerprint.

    The lookup maps ``(source system, source code)`` to target codings for elements whose
    ``equivalence`` is not ``unmatched`` or ``disjoint``. The fingerprint changes whenever a
    file's URL, version or content changes; it is recorded on each converted message so a
    replay can tell which mappings produced the stored resources.

    Raises:
        ValueError: A file is missing, not JSON, or not a valid R4 ConceptMap.
    """
    lookup: dict[tuple[str, str], list[dict[str, Any]]] = {}
    digest = hashlib.sha256(b"hl7v2-mappings-1")
    for path in paths:
        try:
            raw = Path(path).read_bytes()
            data = json.loads(raw)
            cmap = ConceptMap.model_validate(data)
        except (OSError, json.JSONDecodeError, pydantic.ValidationError) as exc:
            raise ValueError(
                f"ConceptMap file {path} cannot be loaded: {type(exc).__name__}"
            ) from exc
        digest.update(raw)
        for group in cmap.group or []:
            source = group.source or ""
            target_system = group.target or ""
            for element in group.element or []:
                for target in element.target or []:
                    if target.equivalence in ("unmatched", "disjoint") or not target.code:
                        continue
                    coding: dict[str, Any] = {"code": target.code}
                    if target_system:
                        coding["system"] = target_system
                    if target.display:
                        coding["display"] = target.display
                    lookup.setdefault((source, element.code or ""), []).append(coding)
    return lookup, digest.hexdigest()[:16]
