"""FHIR model helpers shared by the gateway and the client: parsing, serialising, shaping."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource

import his_sdk.errors
from his_sdk._fhir_json import resource_dict

__all__ = [
    "SUBSETTED_TAG",
    "mandatory_elements",
    "model_class",
    "parse_resource",
    "patient_compartment",
    "patient_of",
    "resource_to_dict",
    "shape",
    "summary_elements",
]

SUBSETTED_TAG = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
_ALWAYS = ("resourceType", "id", "meta")


@functools.cache
def model_class(resource_type: str) -> type[Resource]:
    """The ``fhir.resources`` R4B class for a resource type name.

    Raises:
        his_sdk.errors.InvalidRequestError: Not a FHIR resource type.
    """
    try:
        cls = get_fhir_model_class(resource_type)
    except (KeyError, ValueError) as exc:
        raise his_sdk.errors.InvalidRequestError(
            f"'{resource_type}' is not a FHIR R4 resource type"
        ) from exc
    if not issubclass(cls, Resource):
        raise his_sdk.errors.InvalidRequestError(f"'{resource_type}' is not a FHIR resource type")
    return cls


def parse_resource(resource_type: str, payload: bytes | str | dict[str, Any]) -> Resource:
    """Validate FHIR JSON into the R4B model of ``resource_type``.

    Raises:
        his_sdk.errors.UpstreamDataError: The JSON is not a valid resource of that type.
    """
    cls = model_class(resource_type)
    try:
        if isinstance(payload, dict):
            return cls.model_validate(payload)
        return cls.model_validate_json(payload)
    except ValueError as exc:
        raise his_sdk.errors.UpstreamDataError(
            f"{resource_type} payload is not valid FHIR R4", diagnostics=_first_error(exc)
        ) from exc


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        items = errors()
        if items:
            loc = ".".join(str(p) for p in items[0].get("loc", ()))
            return f"{len(items)} validation error(s); first at {loc}: {items[0].get('type')}"
    return "validation failed"


def resource_to_dict(resource: Resource) -> dict[str, Any]:
    """A model as FHIR JSON-ready dict (aliases, no nulls)."""
    return resource_dict(resource)


@functools.cache
def mandatory_elements(resource_type: str) -> frozenset[str]:
    """Top-level elements with minimum cardinality 1 (kept in every subset)."""
    cls = model_class(resource_type)
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if field.is_required() or extra.get("element_required"):
            names.add(field.alias or name)
        elif extra.get("one_of_many_required"):
            names.add(str(extra.get("one_of_many")))
    return frozenset(names)


@functools.cache
def summary_elements(resource_type: str) -> frozenset[str]:
    """Top-level elements FHIR marks as summary (``isSummary``) for a type."""
    cls = model_class(resource_type)
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("summary_element_property"):
            names.add(field.alias or name)
            if extra.get("one_of_many"):
                names.add(str(extra["one_of_many"]))
    return frozenset(names)


@functools.cache
def _choice_bases(resource_type: str) -> dict[str, str]:
    # valueQuantity and friends belong to the choice element "value" (value[x]).
    cls = model_class(resource_type)
    bases: dict[str, str] = {}
    for name, field in cls.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("one_of_many"):
            bases[field.alias or name] = str(extra["one_of_many"])
    return bases


def _keep(data: dict[str, Any], allowed: Iterable[str], resource_type: str) -> dict[str, Any]:
    allowed_set = set(allowed) | set(_ALWAYS) | mandatory_elements(resource_type)
    bases = _choice_bases(resource_type)
    return {
        key: value
        for key, value in data.items()
        if key in allowed_set or bases.get(key) in allowed_set
    }


def shape(
    data: dict[str, Any], *, elements: Iterable[str] = (), summary: str | None = None
) -> dict[str, Any]:
    """Apply FHIR ``_elements`` or ``_summary`` to one resource dict.

    Mandatory elements are always kept, so the subset still validates; subsets carry the
    ``SUBSETTED`` meta tag.
    """
    resource_type = str(data.get("resourceType"))
    elements = list(elements)
    if elements:
        shaped = _keep(data, elements, resource_type)
    elif summary in (None, "false"):
        return data
    elif summary == "true":
        shaped = _keep(data, summary_elements(resource_type), resource_type)
    elif summary == "text":
        shaped = _keep(data, ("text",), resource_type)
    elif summary == "data":
        shaped = {k: v for k, v in data.items() if k != "text"}
    else:
        shaped = _keep(data, (), resource_type)
    if shaped == data:
        return data
    meta = dict(shaped.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED_TAG]
    shaped["meta"] = meta
    return shaped


def patient_compartment(data: dict[str, Any]) -> str | None:
    """The patient id a resource belongs to (Patient itself, or its subject/patient)."""
    if data.get("resourceType") == "Patient":
        value = data.get("id")
        return str(value) if value else None
    for key in ("subject", "patient", "beneficiary"):
        ref = data.get(key)
        if isinstance(ref, dict):
            reference = str(ref.get("reference", ""))
            if reference.startswith("Patient/"):
                return reference.split("/", 1)[1].split("/_history", 1)[0]
    return None


def patient_of(resource: Resource) -> str | None:
    """The patient id a resource model belongs to, without serialising it."""
    if resource.get_resource_type() == "Patient":
        return resource.id
    for key in ("subject", "patient", "beneficiary"):
        ref = getattr(resource, key, None)
        reference = getattr(ref, "reference", None) if ref is not None else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.split("/", 1)[1].split("/_history", 1)[0]
    return None
