"""Writes through the facade are proposals: 202 with the approval Task, then GET /Task/{id}."""

from __future__ import annotations

import json

import httpx
import pytest

from his_sdk.adapter import Interaction
from his_sdk.config import (
    ApprovalSettings,
    AuthSettings,
    GatewaySettings,
    RestSettings,
    ServerSettings,
    StateSettings,
)
from his_sdk.rest import FHIR_JSON
from tests.his_sdk.rest.rest_helpers import (
    AUDIENCE,
    CARE_TEAMS,
    ISSUER,
    RESOURCES,
    MemoryWriteQueue,
    WritableMemoryAdapter,
    running_gateway,
)

WRITE_SCOPES = "user/Patient.rs user/Observation.cruds"
OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 72, "unit": "/min"},
}


@pytest.fixture(scope="module")
def writes(loop, issuer, tmp_path_factory):
    settings = GatewaySettings(
        server=ServerSettings(port=0, grace_seconds=0),
        rest=RestSettings(enabled=True, port=0),
        auth=AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=issuer.jwks_path),
        state=StateSettings(url=f"sqlite:///{tmp_path_factory.mktemp('w')}/state.db"),
        approvals=ApprovalSettings(
            implementation="tests.his_sdk.rest.rest_helpers:MemoryWriteQueue"
        ),
    )
    adapter = WritableMemoryAdapter(RESOURCES, care_teams=CARE_TEAMS)
    with running_gateway(loop, settings, [("memory", adapter)]) as gateway:
        (queue,) = [q for q in MemoryWriteQueue.instances if q is gateway.approvals]
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway.rest_port}", timeout=10) as http:
            yield http, queue


def _headers(mint, **extra: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {mint(WRITE_SCOPES)}",
        "Content-Type": FHIR_JSON,
        "X-His-Justification": "heart rate measured at the bedside",
        **extra,
    }


def test_create_is_accepted_with_the_approval_task_location(writes, mint):
    http, queue = writes
    response = http.post("/Observation", content=json.dumps(OBSERVATION), headers=_headers(mint))
    assert response.status_code == 202
    task = response.json()
    assert task["resourceType"] == "Task" and task["status"] == "requested"
    assert response.headers["location"].endswith(f"/Task/{task['id']}")
    proposal = queue.proposals[-1]
    assert proposal.interaction is Interaction.CREATE and proposal.patient_id == "p1"
    assert proposal.justification == "heart rate measured at the bedside"
    followed = http.get(response.headers["location"], headers={"Authorization": f"Bearer {mint()}"})
    assert followed.status_code == 200 and followed.json()["id"] == task["id"]


def test_update_and_delete_are_proposals_and_the_key_makes_them_idempotent(writes, mint):
    http, queue = writes
    current = http.get("/Observation/lab1", headers={"Authorization": f"Bearer {mint()}"}).json()
    changed = {**current, "status": "amended"}
    headers = _headers(mint, **{"Idempotency-Key": "amend-lab1"})
    first = http.put("/Observation/lab1", content=json.dumps(changed), headers=headers)
    again = http.put("/Observation/lab1", content=json.dumps(changed), headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert queue.proposals[-1].current.id == "lab1"
    deleted = http.delete("/Observation/lab2", headers=_headers(mint))
    assert deleted.status_code == 202 and queue.proposals[-1].interaction is Interaction.DELETE


def test_writes_need_a_justification_and_the_policys_consent(writes, mint):
    http, _ = writes
    headers = _headers(mint)
    del headers["X-His-Justification"]
    missing = http.post("/Observation", content=json.dumps(OBSERVATION), headers=headers)
    assert missing.status_code == 400
    assert missing.json()["issue"][0]["expression"] == ["justification"]
    read_only = {**_headers(mint), "Authorization": f"Bearer {mint()}"}
    denied = http.post("/Observation", content=json.dumps(OBSERVATION), headers=read_only)
    assert denied.status_code == 403
    unknown = http.get("/Task/t999", headers={"Authorization": f"Bearer {mint()}"})
    assert unknown.status_code == 404
