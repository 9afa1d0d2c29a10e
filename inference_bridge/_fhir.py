"""FHIR around inference results: input parsing, the model Device, Provenance and Bundles."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

import his_sdk.errors

from ._catalog import ModelEntry, Placement

if TYPE_CHECKING:
    # Annotations only. The gateway's config imports this package's settings, and
    # his_sdk.auth, his_sdk.policy and his_sdk.server import that config, so nothing here
    # imports them when the package loads.
    import his_sdk.auth

__all__ = [
    "INPUT_HASH_SYSTEM",
    "MODEL_IDENTIFIER_SYSTEM",
    "REQUEST_SUBJECT_SYSTEM",
    "collection_bundle",
    "model_device",
    "parse_input",
    "provenance",
    "subject_reference",
]

MODEL_IDENTIFIER_SYSTEM = "https://his-sdk.dev/fhir/NamingSystem/inference-model"
"""Identifier system of a model Device: ``name@version``."""
INPUT_HASH_SYSTEM = "https://his-sdk.dev/fhir/NamingSystem/inference-input-sha256"
"""Identifier system of the input hash entity of a Provenance."""
REQUEST_SUBJECT_SYSTEM = "https://his-sdk.dev/fhir/NamingSystem/inference-request"
"""Identifier system of the subject of results for requests that name no patient."""
_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
_DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def parse_input(resource_type: str, payload: bytes) -> Resource:
    """Validate one input resource (FHIR JSON) into its R4B model.

    Raises:
        his_sdk.errors.InvalidRequestError: Unknown type, or JSON that is not a valid
            resource of that type.
    """
    try:
        cls = get_fhir_model_class(resource_type)
    except (KeyError, ValueError) as exc:
        raise his_sdk.errors.InvalidRequestError(
            f"{resource_type!r} is not a FHIR R4 resource type"
        ) from exc
    try:
        resource = cls.model_validate_json(payload)
    except (ValidationError, ValueError) as exc:
        raise his_sdk.errors.InvalidRequestError(
            f"an input {resource_type} is not valid FHIR R4",
            diagnostics=_first_error(exc),
        ) from exc
    if not isinstance(resource, Resource):
        raise his_sdk.errors.InvalidRequestError(f"{resource_type!r} is not a resource type")
    return resource


def _first_error(exc: Exception) -> str:
    # Only the location and kind of the first problem: values could be patient data.
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('type', 'invalid')}"
    return type(exc).__name__


def subject_reference(patient_id: str | None, request_id: str) -> dict[str, Any]:
    """The patient, or the request by identifier when the call names no patient."""
    if patient_id:
        return {"reference": f"Patient/{patient_id}"}
    return {
        "identifier": {"system": REQUEST_SUBJECT_SYSTEM, "value": request_id},
        "display": "de-identified inference request",
    }


def _endpoint_url(placement: Placement) -> str:
    return f"grpc://{placement.endpoint}" if placement.endpoint else "urn:his-sdk:local-torch"


def model_device(entry: ModelEntry, placement: Placement) -> Device:
    """The Device for a model at one placement; its id is stable across calls."""
    device_id = uuid.uuid5(
        uuid.NAMESPACE_URL, f"{MODEL_IDENTIFIER_SYSTEM}|{entry.key}|{placement.label}"
    )
    return Device.model_validate(
        {
            "resourceType": "Device",
            "id": str(device_id),
            "identifier": [{"system": MODEL_IDENTIFIER_SYSTEM, "value": entry.key}],
            "status": "active",
            "deviceName": [{"name": entry.name, "type": "model-name"}],
            "type": {"text": f"AI model ({entry.task}, {entry.modality})"},
            "version": [{"value": entry.version}],
            "url": _endpoint_url(placement),
            "property": [
                {"type": {"text": "backend"}, "valueCode": [{"text": placement.backend.value}]},
                {"type": {"text": "accelerator"}, "valueCode": [{"text": placement.accelerator}]},
                {
                    "type": {"text": "validation-status"},
                    "valueCode": [{"text": entry.card.validation_status}],
                },
            ],
            "note": [{"text": entry.card.intended_use}],
        }
    )


def provenance(
    *,
    targets: Sequence[DomainResource],
    device: Device,
    entry: ModelEntry,
    placement: Placement,
    input_sha256: str,
    recorded: datetime.datetime,
    principal: his_sdk.auth.Principal | None,
) -> Provenance:
    """The Provenance of results: model, version, backend, endpoint, accelerator, input hash.

    The model Device is the performer; the calling agent is the enterer, on behalf of the
    user it acts for when the token names one.
    """
    performer = (
        f"{entry.key} on {placement.backend.value} ({placement.accelerator}) at "
        f"{placement.endpoint or 'local'}"
    )
    agents: list[dict[str, Any]] = [
        {
            "type": {"coding": [{"system": _PARTICIPANT, "code": "performer"}]},
            "who": {"reference": f"Device/{device.id}", "display": performer},
        }
    ]
    if principal is not None:
        agent: dict[str, Any] = {
            "type": {"coding": [{"system": _PARTICIPANT, "code": "enterer"}]},
            "who": {
                "identifier": {"system": principal.issuer, "value": principal.client_id},
                "display": principal.client_id,
            },
        }
        user = principal.acting_user
        if user and "/" in user:
            agent["onBehalfOf"] = {"reference": user}
        agents.append(agent)
    return Provenance.model_validate(
        {
            "resourceType": "Provenance",
            "id": str(uuid.uuid4()),
            "target": [{"reference": f"{t.get_resource_type()}/{t.id}"} for t in targets],
            "recorded": recorded,
            "activity": {"coding": [{"system": _DATA_OPERATION, "code": "CREATE"}]},
            "agent": agents,
            "entity": [
                {
                    "role": "source",
                    "what": {
                        "identifier": {"system": INPUT_HASH_SYSTEM, "value": input_sha256},
                        "display": "model input tensors (SHA-256)",
                    },
                }
            ],
        }
    )


def collection_bundle(resources: Iterable[Resource], timestamp: datetime.datetime) -> Bundle:
    """A ``collection`` Bundle of resources (each once, by type and id)."""
    seen: set[tuple[str, str]] = set()
    entries = []
    for resource in resources:
        key = (resource.get_resource_type(), str(resource.id))
        if key in seen:
            continue
        seen.add(key)
        entries.append({"fullUrl": f"urn:uuid:{resource.id}", "resource": resource})
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "collection",
            "timestamp": timestamp,
            "entry": entries,
        }
    )
