"""The FHIR Task an agent sees for its approval request.

| request status | Task.status | Task.businessStatus |
|---|---|---|
| pending | requested | pending (``n of m approvals``) |
| approved | accepted | approved |
| rejected | rejected | rejected (reason in ``statusReason``) |
| expired | cancelled | expired |
| executed | completed | executed (``output`` references the written resource) |
| failed | failed | failed (the EHR's error in ``statusReason`` and ``output``) |

``focus`` references the proposed resource, contained as ``#proposed`` (for a delete: the
resource to delete). ``requester`` identifies the agent, with the human it acts for in the
:data:`ON_BEHALF_OF` extension; ``reasonCode`` and ``note`` carry its justification.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.task import Task

from ._model import Outcome, Party, RequestStatus

__all__ = ["APPROVAL_STATUS_SYSTEM", "ON_BEHALF_OF", "TaskFacts", "build_task", "task_data"]

ON_BEHALF_OF = "urn:his-sdk:fhir:StructureDefinition:task-requester-on-behalf-of"
"""Extension on ``Task.requester``: the human the requesting agent acts for."""
APPROVAL_STATUS_SYSTEM = "urn:his-sdk:fhir:CodeSystem:approval-status"
"""System of ``Task.businessStatus`` codes (the request's own status)."""
IDEMPOTENCY_KEY_SYSTEM = "urn:his-sdk:fhir:NamingSystem:approval-idempotency-key"
CLIENT_SYSTEM = "urn:his-sdk:fhir:NamingSystem:oauth-client"
_TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"


@dataclass(frozen=True)
class TaskFacts:
    """What a Task is built from."""

    id: str
    status: RequestStatus
    revision: int
    interaction: str
    resource_type: str
    resource_id: str | None
    patient_id: str | None
    requester: Party
    justification: str
    idempotency_key: str
    risk: str
    risk_reason: str
    current_version: int
    approvals_required: int
    approvals_given: int
    proposed: dict[str, Any] | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    expires_at: datetime.datetime
    status_reason: str | None
    outcome: Outcome | None


def _instant(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _requester(party: Party) -> dict[str, Any]:
    reference: dict[str, Any] = {
        "type": "Device",
        "identifier": {"system": party.issuer or CLIENT_SYSTEM, "value": party.client_id},
        "display": f"agent {party.client_id}",
    }
    if party.user:
        human: dict[str, Any] = {"display": party.display or party.user}
        if party.fhir_user:
            human["reference"] = party.fhir_user
        else:
            human["identifier"] = {"system": party.issuer or CLIENT_SYSTEM, "value": party.user}
        reference["extension"] = [{"url": ON_BEHALF_OF, "valueReference": human}]
    return reference


def _business_status(facts: TaskFacts) -> dict[str, Any]:
    text = facts.status.value
    if facts.status is RequestStatus.PENDING:
        text = f"pending: {facts.approvals_given} of {facts.approvals_required} approvals"
    return {
        "coding": [{"system": APPROVAL_STATUS_SYSTEM, "code": facts.status.value}],
        "text": text,
    }


def build_task(facts: TaskFacts) -> Task:
    """The Task for a request, validated."""
    return Task.model_validate(task_data(facts))


def task_data(facts: TaskFacts) -> dict[str, Any]:
    """The Task for a request as FHIR JSON (a dict), not yet validated."""
    action = f"{facts.interaction} {facts.resource_type}"
    if facts.resource_id:
        action += f"/{facts.resource_id}"
    data: dict[str, Any] = {
        "resourceType": "Task",
        "id": facts.id,
        "meta": {"versionId": str(facts.revision), "lastUpdated": _instant(facts.updated_at)},
        "identifier": [{"system": IDEMPOTENCY_KEY_SYSTEM, "value": facts.idempotency_key}],
        "status": facts.status.task_status,
        "businessStatus": _business_status(facts),
        "intent": "proposal",
        "priority": "urgent" if facts.risk == "high" else "routine",
        "code": {
            "coding": [{"system": _TASK_CODE, "code": "approve"}],
            "text": f"approve {action}",
        },
        "description": f"Human approval of {action} (risk {facts.risk}: {facts.risk_reason})",
        "authoredOn": _instant(facts.created_at),
        "lastModified": _instant(facts.updated_at),
        "requester": _requester(facts.requester),
        "reasonCode": {"text": facts.justification},
        "note": [
            {
                "authorString": f"agent {facts.requester.client_id}",
                "time": _instant(facts.created_at),
                "text": facts.justification,
            }
        ],
        "restriction": {"period": {"end": _instant(facts.expires_at)}},
        "input": [
            {"type": {"text": "interaction"}, "valueCode": facts.interaction},
            {"type": {"text": "risk"}, "valueCode": facts.risk},
            {"type": {"text": "version"}, "valuePositiveInt": facts.current_version},
            {"type": {"text": "approvals-required"}, "valuePositiveInt": facts.approvals_required},
        ],
    }
    if facts.proposed is not None:
        contained = dict(facts.proposed)
        contained["id"] = "proposed"
        contained.pop("meta", None)
        data["contained"] = [contained]
        data["focus"] = {"reference": "#proposed", "type": facts.resource_type}
    elif facts.resource_id:
        data["focus"] = {"reference": f"{facts.resource_type}/{facts.resource_id}"}
    if facts.patient_id:
        data["for"] = {"reference": f"Patient/{facts.patient_id}"}
    if facts.status_reason:
        data["statusReason"] = {"text": facts.status_reason}
    outcome = facts.outcome
    if outcome is not None and outcome.executed_at is not None:
        data["executionPeriod"] = {
            "start": _instant(facts.created_at),
            "end": _instant(outcome.executed_at),
        }
        outputs: list[dict[str, Any]] = []
        if outcome.resource_type and outcome.resource_id:
            reference = f"{outcome.resource_type}/{outcome.resource_id}"
            outputs.append(
                {
                    "type": {"text": "written"},
                    "valueReference": {"reference": reference, "type": outcome.resource_type},
                }
            )
            if outcome.version_id:
                outputs.append({"type": {"text": "version"}, "valueString": outcome.version_id})
        if outcome.error:
            outputs.append({"type": {"text": "error"}, "valueString": outcome.error})
        if outputs:
            data["output"] = outputs
    return data
