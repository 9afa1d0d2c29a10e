"""FHIR R4 AuditEvents following IHE Basic Audit Log Patterns (BALP), built from an AuditContext.

The events are minimal: references and identifiers only, never clinical content. Each maps to
a BALP profile (Read, Query, Create, Update, Delete and their Patient variants), and a failed
call gets the same shape with its outcome and OperationOutcome text (BALP profiles fix outcome
to success, so failures do not claim the profile in ``meta.profile``).

Direction follows DICOM and BALP: for a read the client is the Destination (110152) and the
server the Source (110153); for queries, writes and operations the reverse, because the
request flows from client to server.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._context import AuditAction, AuditContext, AuditObserver, AuditOutcome, AuditUser

__all__ = [
    "BALP_PROFILE_BASE",
    "DCM_DESTINATION",
    "DCM_SOURCE",
    "ON_BEHALF_OF_URL",
    "OPERATION_SYSTEM",
    "PendingEvent",
    "build_audit_events",
    "format_instant",
]

BALP_PROFILE_BASE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
"""Canonical URL prefix of the BALP profiles."""
ON_BEHALF_OF_URL = "http://hl7.org/fhir/StructureDefinition/auditevent-OnBehalfOf"
"""The draft HL7 extension linking an agent to the party it acts for."""
OPERATION_SYSTEM = "urn:his-sdk:operation"
"""Code system of the operation names recorded as a second ``subtype`` of operations."""
DCM = "http://dicom.nema.org/resources/ontology/DCM"
DCM_SOURCE = "110153"
DCM_DESTINATION = "110152"

_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

_ACTION_CODE: dict[AuditAction, str] = {
    AuditAction.READ: "R",
    AuditAction.VREAD: "R",
    AuditAction.HISTORY: "R",
    AuditAction.CAPABILITIES: "R",
    AuditAction.SEARCH: "E",
    AuditAction.SEARCH_SYSTEM: "E",
    AuditAction.CREATE: "C",
    AuditAction.UPDATE: "U",
    AuditAction.PATCH: "U",
    AuditAction.DELETE: "D",
    AuditAction.OPERATION: "E",
}

# (profile without patient, profile with patient) for successful events.
_PROFILES: dict[AuditAction, tuple[str, str]] = {
    AuditAction.READ: ("Read", "PatientRead"),
    AuditAction.VREAD: ("Read", "PatientRead"),
    AuditAction.SEARCH: ("Query", "PatientQuery"),
    AuditAction.SEARCH_SYSTEM: ("Query", "PatientQuery"),
    AuditAction.CREATE: ("Create", "PatientCreate"),
    AuditAction.UPDATE: ("Update", "PatientUpdate"),
    AuditAction.PATCH: ("Update", "PatientUpdate"),
    AuditAction.DELETE: ("Delete", "PatientDelete"),
}


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An AuditEvent built but not yet chained: what the outbox appends.

    Attributes:
        event_id: The AuditEvent's id (a UUID).
        patient_key: The patient it is about (the Kafka key), or None.
        event: The AuditEvent as a JSON-ready dict.
        recorded: ``AuditEvent.recorded``.
    """

    event_id: str
    patient_key: str | None
    event: dict[str, Any]
    recorded: datetime.datetime


def format_instant(moment: datetime.datetime) -> str:
    """A FHIR ``instant`` in UTC with millisecond precision (``2024-05-01T10:00:00.123Z``)."""
    utc = moment.astimezone(datetime.UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _identifier(value: str, system: str | None) -> dict[str, str]:
    return {"system": system, "value": value} if system else {"value": value}


def _network(address: str) -> dict[str, str]:
    """An agent network from a plain address or a gRPC peer string (``ipv4:10.0.0.1:5555``)."""
    kind, sep, rest = address.partition(":")
    if sep and kind in ("ipv4", "ipv6"):
        rest = urllib.parse.unquote(rest)
        host = rest[1 : rest.index("]")] if rest.startswith("[") else rest.rsplit(":", 1)[0]
        return {"address": host, "type": "2"}
    if sep and kind in ("unix", "unix-abstract"):
        return {"address": address, "type": "5"}
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return {"address": address, "type": "1"}
    return {"address": address, "type": "2"}


def _user_reference(user: AuditUser, issuer: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {"identifier": _identifier(user.subject, issuer)}
    if user.fhir_user:
        ref["reference"] = user.fhir_user
    if user.display:
        ref["display"] = user.display
    return ref


def _roles(roles: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"text": role} for role in roles]


def _purposes(codes: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"coding": [_coding(_ACT_REASON, code)]} for code in codes]


def _agents(ctx: AuditContext, observer: AuditObserver) -> list[dict[str, Any]]:
    principal = ctx.principal
    reads = _ACTION_CODE[ctx.action] == "R"
    client_code, server_code = (
        (DCM_DESTINATION, DCM_SOURCE) if reads else (DCM_SOURCE, DCM_DESTINATION)
    )
    user = principal.user
    client: dict[str, Any] = {
        "type": {"coding": [_coding(DCM, client_code)]},
        "who": {
            "identifier": _identifier(principal.client_id, principal.issuer),
            "display": principal.client_id,
        },
        "requestor": user is None,
    }
    if ctx.client_address:
        client["network"] = _network(ctx.client_address)
    if principal.token_id:
        client["policy"] = [principal.token_id]
    if user is None:
        if principal.roles:
            client["role"] = _roles(principal.roles)
        if principal.purpose_of_use:
            client["purposeOfUse"] = _purposes(principal.purpose_of_use)
    else:
        client["extension"] = [
            {"url": ON_BEHALF_OF_URL, "valueReference": _user_reference(user, principal.issuer)}
        ]

    server: dict[str, Any] = {
        "type": {"coding": [_coding(DCM, server_code)]},
        "who": {"identifier": {"value": observer.instance_id}, "display": observer.site},
        "requestor": False,
        "network": _network(observer.address or observer.instance_id),
    }
    agents = [client, server]

    if user is not None:
        user_type = (
            _coding(_PARTICIPATION, "AUT", "author (originator)")
            if ctx.action.is_write
            else _coding(_PARTICIPATION, "IRCP", "information recipient")
        )
        user_agent: dict[str, Any] = {
            "type": {"coding": [user_type]},
            "who": _user_reference(user, principal.issuer),
            "requestor": True,
        }
        if user.display:
            user_agent["name"] = user.display
        if principal.token_id:
            user_agent["policy"] = [principal.token_id]
        if principal.roles:
            user_agent["role"] = _roles(principal.roles)
        if principal.purpose_of_use:
            user_agent["purposeOfUse"] = _purposes(principal.purpose_of_use)
        agents.append(user_agent)

    for actor in principal.prior_actors:
        agents.append(
            {
                "who": _user_reference(actor, principal.issuer),
                "requestor": False,
                "role": [{"text": "delegating actor"}],
            }
        )
    for approver in ctx.approvers:
        approver_agent: dict[str, Any] = {
            "type": {"coding": [_coding(_PARTICIPATION, "VRF", "verifier")]},
            "who": _user_reference(approver, principal.issuer),
            "requestor": False,
        }
        if approver.display:
            approver_agent["name"] = approver.display
        agents.append(approver_agent)
    return agents


def _data_entities(ctx: AuditContext) -> list[dict[str, Any]]:
    if ctx.action.is_search or ctx.resource_type is None:
        return []
    data_type = {"type": _coding(_ENTITY_TYPE, "2", "System Object")}
    role = {"role": _coding(_OBJECT_ROLE, "4", "Domain Resource")}
    if not ctx.resource_ids:
        # A failed create has no id yet: the entity names the type only.
        return [{"what": {"type": ctx.resource_type}, **data_type, **role}]
    entities = []
    for rid in ctx.resource_ids:
        reference = f"{ctx.resource_type}/{rid}"
        if ctx.version_id:
            reference += f"/_history/{ctx.version_id}"
        entities.append({"what": {"reference": reference}, **data_type, **role})
    return entities


def _query_entity(ctx: AuditContext) -> dict[str, Any]:
    assert ctx.query is not None
    entity: dict[str, Any] = {
        "type": _coding(_ENTITY_TYPE, "2", "System Object"),
        "role": _coding(_OBJECT_ROLE, "24", "Query"),
        "query": base64.b64encode(ctx.query.encode()).decode("ascii"),
    }
    if ctx.resource_type:
        entity["description"] = ctx.resource_type
    return entity


def _transaction_entity(ctx: AuditContext) -> dict[str, Any] | None:
    if not ctx.request_id and not ctx.traceparent:
        return None
    entity: dict[str, Any] = {
        "what": {"identifier": {"value": ctx.request_id or ctx.traceparent}},
        "type": _coding(_BALP_ENTITY_TYPE, "XrequestId"),
    }
    if ctx.traceparent:
        entity["detail"] = [{"type": "traceparent", "valueString": ctx.traceparent}]
    return entity


def _patient_entity(patient_id: str) -> dict[str, Any]:
    return {
        "what": {"reference": f"Patient/{patient_id}"},
        "type": _coding(_ENTITY_TYPE, "1", "Person"),
        "role": _coding(_OBJECT_ROLE, "1", "Patient"),
    }


def _new_event_id() -> str:
    return str(uuid.uuid4())


def build_audit_events(
    ctx: AuditContext,
    *,
    observer: AuditObserver,
    recorded: datetime.datetime | None = None,
    new_id: Callable[[], str] = _new_event_id,
) -> list[PendingEvent]:
    """The AuditEvents for one call: one per patient touched, or one without a patient.

    Args:
        ctx: The call.
        observer: The recording system, unless ``ctx.observer`` overrides it.
        recorded: When it happened; default ``ctx.recorded`` or now.
        new_id: Makes event ids (UUIDs by default).

    Returns:
        The events, in the order of ``ctx.patient_ids`` (duplicates removed).
    """
    source_observer = ctx.observer or observer
    when = recorded or ctx.recorded or datetime.datetime.now(datetime.UTC)
    subtype = [_coding(_INTERACTION, ctx.action.value)]
    if ctx.action is AuditAction.OPERATION and ctx.operation:
        subtype.append(_coding(OPERATION_SYSTEM, ctx.operation))
    base: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": _coding(_EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": subtype,
        "action": _ACTION_CODE[ctx.action],
        "recorded": format_instant(when),
        "outcome": ctx.outcome.value,
    }
    if ctx.outcome_text:
        base["outcomeDesc"] = ctx.outcome_text
    if ctx.principal.purpose_of_use:
        base["purposeOfEvent"] = _purposes(ctx.principal.purpose_of_use)
    base["agent"] = _agents(ctx, source_observer)
    base["source"] = {
        "site": source_observer.site,
        "observer": {
            "identifier": {"value": source_observer.instance_id},
            "display": source_observer.instance_id,
        },
        "type": [_coding(_SOURCE_TYPE, "4", "Application Server")],
    }
    shared_entities = _data_entities(ctx)
    if ctx.action.is_search:
        shared_entities.append(_query_entity(ctx))
    transaction = _transaction_entity(ctx)
    if transaction is not None:
        shared_entities.append(transaction)

    patients: list[str | None] = list(dict.fromkeys(ctx.patient_ids)) or [None]
    profiles = _PROFILES.get(ctx.action) if ctx.outcome is AuditOutcome.SUCCESS else None
    events = []
    for patient in patients:
        event_id = new_id()
        event: dict[str, Any] = {"resourceType": "AuditEvent", "id": event_id}
        if profiles is not None:
            name = profiles[1] if patient is not None else profiles[0]
            event["meta"] = {"profile": [BALP_PROFILE_BASE + name]}
        event.update(base)
        entities = list(shared_entities)
        if patient is not None:
            entities.insert(0, _patient_entity(patient))
        if entities:
            event["entity"] = entities
        events.append(PendingEvent(event_id, patient, event, when))
    return events
