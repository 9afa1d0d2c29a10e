"""Every audited action yields R4B-valid AuditEvents with the IHE BALP shape."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

import his_sdk.errors
from his_sdk.audit import (
    AuditAction,
    AuditContext,
    AuditObserver,
    AuditOutcome,
    AuditPrincipal,
    AuditUser,
    build_audit_events,
    canonical_json,
    outcome_for_error,
)
from his_sdk.auth import Actor, Principal

OBSERVER = AuditObserver("gw-balp", site="balp-hospital", address="10.1.2.3")
DCM = "http://dicom.nema.org/resources/ontology/DCM"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
PROFILE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# The expectations, written out independently of the implementation's tables:
# action -> (AuditEvent.action, client role code, server role code, profile, patient profile)
EXPECTED = {
    AuditAction.READ: ("R", "110152", "110153", "Read", "PatientRead"),
    AuditAction.VREAD: ("R", "110152", "110153", "Read", "PatientRead"),
    AuditAction.HISTORY: ("R", "110152", "110153", None, None),
    AuditAction.CAPABILITIES: ("R", "110152", "110153", None, None),
    AuditAction.SEARCH: ("E", "110153", "110152", "Query", "PatientQuery"),
    AuditAction.SEARCH_SYSTEM: ("E", "110153", "110152", "Query", "PatientQuery"),
    AuditAction.CREATE: ("C", "110153", "110152", "Create", "PatientCreate"),
    AuditAction.UPDATE: ("U", "110153", "110152", "Update", "PatientUpdate"),
    AuditAction.PATCH: ("U", "110153", "110152", "Update", "PatientUpdate"),
    AuditAction.DELETE: ("D", "110153", "110152", "Delete", "PatientDelete"),
    AuditAction.OPERATION: ("E", "110153", "110152", None, None),
}
WRITES = {AuditAction.CREATE, AuditAction.UPDATE, AuditAction.PATCH, AuditAction.DELETE}
SEARCHES = {AuditAction.SEARCH, AuditAction.SEARCH_SYSTEM}
TOP_LEVEL = {
    "resourceType",
    "id",
    "meta",
    "type",
    "subtype",
    "action",
    "recorded",
    "outcome",
    "outcomeDesc",
    "purposeOfEvent",
    "agent",
    "source",
    "entity",
}
ENTITY_KEYS = {"what", "type", "role", "query", "description", "detail"}

USER = AuditUser("user-42", "Practitioner/dr1", "Dr One")
WITH_USER = AuditPrincipal(
    client_id="agent-7",
    issuer="http://127.0.0.1/issuer",
    token_id="jti-abc",
    user=USER,
    roles=("clinician",),
    purpose_of_use=("TREAT",),
)
NO_USER = AuditPrincipal(client_id="batch-agent", token_id="jti-def", roles=("system",))


def make_ctx(action, principal, patients, outcome):
    resource_type = (
        None if action in (AuditAction.CAPABILITIES, AuditAction.SEARCH_SYSTEM) else ("Observation")
    )
    kwargs: dict[str, Any] = {}
    if action in SEARCHES:
        kwargs["query"] = "code=http://loinc.org|2345-7&_count=10"
    elif resource_type is not None:
        kwargs["resource_ids"] = ("obs-1",)
    if action is AuditAction.VREAD:
        kwargs["version_id"] = "3"
    if action is AuditAction.OPERATION:
        kwargs["operation"] = "$invoke-tool"
    if action in WRITES:
        kwargs["approvers"] = (AuditUser("rev-1", "Practitioner/rev1", "Reviewer"),)
    if outcome is not AuditOutcome.SUCCESS:
        kwargs["outcome_text"] = "forbidden: no care relationship with the patient"
    return AuditContext(
        action=action,
        principal=principal,
        resource_type=resource_type,
        patient_ids=patients,
        outcome=outcome,
        request_id="req-1",
        traceparent=TRACEPARENT,
        client_address="ipv4:192.168.7.9:53211",
        **kwargs,
    )


def agents_by_dcm(event):
    found: dict[str, list[dict[str, Any]]] = {}
    for agent in event["agent"]:
        for coding in agent.get("type", {}).get("coding", []):
            if coding["system"] == DCM:
                found.setdefault(coding["code"], []).append(agent)
    return found


def check_balp(event, ctx, patient):
    action_code, client_code, server_code, profile, patient_profile = EXPECTED[ctx.action]
    principal = ctx.principal
    assert set(event) <= TOP_LEVEL
    uuid.UUID(event["id"])
    assert event["type"] == {
        "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
        "code": "rest",
        "display": "Restful Operation",
    }
    assert event["subtype"][0] == {
        "system": "http://hl7.org/fhir/restful-interaction",
        "code": ctx.action.value,
    }
    if ctx.action is AuditAction.OPERATION:
        assert event["subtype"][1]["code"] == "$invoke-tool"
    assert event["action"] == action_code
    assert event["outcome"] == ctx.outcome.value
    assert datetime.datetime.fromisoformat(event["recorded"]).tzinfo is not None
    if ctx.outcome is AuditOutcome.SUCCESS:
        assert "outcomeDesc" not in event
        expected = patient_profile if patient else profile
        if expected is None:
            assert "meta" not in event
        else:
            assert event["meta"]["profile"] == [PROFILE + expected]
    else:
        # BALP profiles fix outcome 0, so failures must not claim them.
        assert "meta" not in event
        assert event["outcomeDesc"] == ctx.outcome_text

    # Agents: one client and one server, direction-dependent DICOM role codes.
    dcm = agents_by_dcm(event)
    assert set(dcm) == {client_code, server_code}
    [client], [server] = dcm[client_code], dcm[server_code]
    assert client["who"]["identifier"]["value"] == principal.client_id
    assert client["network"] == {"address": "192.168.7.9", "type": "2"}
    assert client["policy"] == [principal.token_id]
    assert server["who"]["identifier"]["value"] == OBSERVER.instance_id
    assert server["network"] == {"address": "10.1.2.3", "type": "2"}
    assert server["requestor"] is False
    requestors = [a for a in event["agent"] if a.get("requestor")]
    assert len(requestors) == 1
    if principal.user is None:
        assert requestors == [client]
        assert "extension" not in client
        assert client["role"] == [{"text": r} for r in principal.roles]
    else:
        [user] = requestors
        assert client["requestor"] is False
        assert user["type"]["coding"][0]["system"] == PARTICIPATION
        assert user["type"]["coding"][0]["code"] == ("AUT" if ctx.action in WRITES else "IRCP")
        assert user["who"]["reference"] == USER.fhir_user
        assert user["who"]["identifier"] == {"system": principal.issuer, "value": USER.subject}
        assert user["policy"] == [principal.token_id]
        assert "network" not in user
        assert user["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
        [ext] = client["extension"]
        assert ext["url"] == "http://hl7.org/fhir/StructureDefinition/auditevent-OnBehalfOf"
        assert ext["valueReference"]["reference"] == USER.fhir_user
    approvers = [
        a for a in event["agent"] if a.get("type", {}).get("coding", [{}])[0].get("code") == "VRF"
    ]
    assert len(approvers) == (1 if ctx.action in WRITES else 0)

    # Entities: minimal, typed, one patient per event.
    entities = event.get("entity", [])
    for entity in entities:
        assert set(entity) <= ENTITY_KEYS
    patients = [e for e in entities if e.get("role", {}).get("code") == "1"]
    if patient is None:
        assert patients == []
    else:
        [p] = patients
        assert p["what"] == {"reference": f"Patient/{patient}"}
        assert p["type"]["code"] == "1"
        assert p["type"]["system"] == "http://terminology.hl7.org/CodeSystem/audit-entity-type"
    data = [e for e in entities if e.get("role", {}).get("code") == "4"]
    queries = [e for e in entities if e.get("role", {}).get("code") == "24"]
    if ctx.action in SEARCHES:
        assert data == []
        [q] = queries
        assert base64.b64decode(q["query"]).decode() == ctx.query
        assert "what" not in q and "detail" not in q
        assert q["type"]["code"] == "2"
    elif ctx.resource_type is not None:
        assert queries == []
        [d] = data
        assert d["type"]["code"] == "2"
        ref = "Observation/obs-1" + ("/_history/3" if ctx.action is AuditAction.VREAD else "")
        assert d["what"] == {"reference": ref}
    [tx] = [e for e in entities if e["type"]["code"] == "XrequestId"]
    assert tx["what"]["identifier"]["value"] == "req-1"
    assert tx["detail"] == [{"type": "traceparent", "valueString": TRACEPARENT}]

    assert event["source"]["observer"]["identifier"]["value"] == OBSERVER.instance_id
    assert event["source"]["site"] == OBSERVER.site
    assert event["source"]["type"][0]["code"] == "4"


CASES = [
    pytest.param(action, principal, patients, outcome, id=f"{action.value}-{who}-{pid}-{oid}")
    for action in AuditAction
    for who, principal in (("user", WITH_USER), ("agent", NO_USER))
    for pid, patients in (("patients", ("p1", "p2")), ("population", ()))
    for oid, outcome in (("ok", AuditOutcome.SUCCESS), ("denied", AuditOutcome.MINOR_FAILURE))
]


@pytest.mark.parametrize(("action", "principal", "patients", "outcome"), CASES)
def test_balp_shape(action, principal, patients, outcome):
    ctx = make_ctx(action, principal, patients, outcome)
    events = build_audit_events(ctx, observer=OBSERVER)
    assert len(events) == max(len(patients), 1)
    assert len({e.event_id for e in events}) == len(events)
    for pending, patient in zip(events, patients or (None,), strict=True):
        assert pending.patient_key == patient
        assert pending.event["id"] == pending.event_id
        AuditEvent.model_validate(pending.event)
        AuditEvent.model_validate_json(canonical_json(pending.event))
        check_balp(pending.event, ctx, patient)


def test_every_action_has_expectations():
    assert set(EXPECTED) == set(AuditAction)


def test_events_hold_no_clinical_content_or_token():
    ctx = make_ctx(AuditAction.READ, WITH_USER, ("p1",), AuditOutcome.SUCCESS)
    text = json.dumps([e.event for e in build_audit_events(ctx, observer=OBSERVER)])
    for forbidden in ("valueQuantity", "Bearer", "eyJ", "birthDate", 'name": {'):
        assert forbidden not in text


def test_duplicate_patients_make_one_event_each():
    ctx = make_ctx(AuditAction.SEARCH, WITH_USER, ("p1", "p2", "p1"), AuditOutcome.SUCCESS)
    assert [e.patient_key for e in build_audit_events(ctx, observer=OBSERVER)] == ["p1", "p2"]


@pytest.mark.parametrize(
    ("peer", "network"),
    [
        ("ipv4:127.0.0.1:5555", {"address": "127.0.0.1", "type": "2"}),
        ("ipv6:[::1]:5555", {"address": "::1", "type": "2"}),
        ("ipv6:%5B2001:db8::1%5D:443", {"address": "2001:db8::1", "type": "2"}),
        ("unix:/run/his.sock", {"address": "unix:/run/his.sock", "type": "5"}),
        ("10.0.0.8", {"address": "10.0.0.8", "type": "2"}),
        ("agent-host.local", {"address": "agent-host.local", "type": "1"}),
    ],
)
def test_client_network_from_grpc_peer(peer, network):
    ctx = AuditContext(
        action=AuditAction.READ,
        principal=NO_USER,
        resource_type="Patient",
        resource_ids=("p1",),
        patient_ids=("p1",),
        client_address=peer,
    )
    [pending] = build_audit_events(ctx, observer=OBSERVER)
    assert pending.event["agent"][0]["network"] == network


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": AuditAction.SEARCH, "query": "a=1", "resource_ids": ("x",)}, "query"),
        ({"action": AuditAction.SEARCH}, "raw query"),
        ({"action": AuditAction.READ, "query": "a=1"}, "takes no query"),
        ({"action": AuditAction.OPERATION}, "operation name"),
        ({"action": AuditAction.READ, "resource_ids": ("a", "b")}, "one resource"),
        ({"action": AuditAction.READ, "outcome": AuditOutcome.SERIOUS_FAILURE}, "text"),
        (
            {"action": AuditAction.READ, "recorded": datetime.datetime(2024, 1, 1)},
            "timezone-aware",
        ),
    ],
)
def test_context_rejects_inconsistent_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AuditContext(principal=NO_USER, resource_type="Observation", **kwargs)


@pytest.mark.parametrize(
    ("error", "outcome", "text"),
    [
        (
            his_sdk.errors.PermissionDeniedError("no care relationship"),
            "4",
            "forbidden: no care relationship",
        ),
        (
            his_sdk.errors.NotFoundError("Observation/x not found"),
            "4",
            "not-found: Observation/x not found",
        ),
        (his_sdk.errors.UpstreamUnavailableError("EHR down"), "8", "transient: EHR down"),
        (ValueError("Jane Doe, born 1970"), "8", "exception: ValueError"),
    ],
)
def test_outcome_for_error(error, outcome, text):
    assert outcome_for_error(error) == (AuditOutcome(outcome), text)


def _principal(**overrides):
    values: dict[str, Any] = dict(
        client_id="agent-7",
        subject="agent-7",
        on_behalf_of=None,
        fhir_user=None,
        scopes=(),
        other_scopes=(),
        roles=frozenset({"clinician", "agent"}),
        patient=None,
        token_id="jti-9",
        issuer="http://issuer",
        expires_at=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
        purpose_of_use=("TREAT",),
    )
    values.update(overrides)
    return Principal(**values)


def test_principal_with_delegating_user():
    principal = _principal(
        on_behalf_of=Actor("u1", "Practitioner/1", "Dr A"), prior_actors=(Actor("u0"),)
    )
    audit_principal = AuditPrincipal.from_principal(principal)
    assert audit_principal.user == AuditUser("u1", "Practitioner/1", "Dr A")
    assert audit_principal.prior_actors == (AuditUser("u0"),)
    assert audit_principal.token_id == "jti-9"
    assert audit_principal.roles == ("agent", "clinician")


def test_principal_of_user_facing_app_and_machine_client():
    app = AuditPrincipal.from_principal(_principal(subject="u5", fhir_user="Practitioner/5"))
    assert app.user == AuditUser("u5", "Practitioner/5")
    machine = AuditPrincipal.from_principal(_principal())
    assert machine.user is None
