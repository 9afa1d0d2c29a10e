"""The approval queue end to end: agent SDK -> gateway -> queue -> reviewers -> adapter."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation

import his_sdk.errors
from approval_service import DecisionAction, RequestStatus
from tests.approval_service.conftest import medication_request, observation, wait_for


def test_a_proposal_becomes_a_requested_task(agent, adapter):
    task = agent.propose_create(
        MedicationRequest.model_validate(medication_request()),
        justification="BP above target on two visits; start amlodipine",
    )
    assert task.status == "requested"
    assert task.intent == "proposal"
    assert task.focus.reference == "#proposed"
    assert task.contained[0].get_resource_type() == "MedicationRequest"
    assert task.reasonCode.text.startswith("BP above target")
    assert task.note[0].text == task.reasonCode.text
    assert task.for_fhir.reference == "Patient/p1"
    assert task.requester.identifier.value == "agent-1"
    on_behalf = task.requester.extension[0].valueReference
    assert on_behalf.reference == "Practitioner/dr1"
    assert adapter.executions == 0
    assert agent.get_task(task.id).status == "requested"


def test_proposing_the_same_write_twice_returns_the_same_task(agent, adapter):
    resource = MedicationRequest.model_validate(medication_request())
    first = agent.propose_create(resource, justification="start amlodipine")
    again = agent.propose_create(resource, justification="start amlodipine (retry)")
    assert again.id == first.id
    keyed = agent.propose_create(
        Observation.model_validate(observation(80)), justification="hr", idempotency_key="k-1"
    )
    assert (
        agent.propose_create(
            Observation.model_validate(observation(80)), justification="hr", idempotency_key="k-1"
        ).id
        == keyed.id
    )
    with pytest.raises(his_sdk.errors.ConflictError):
        agent.propose_create(
            Observation.model_validate(observation(95)), justification="hr", idempotency_key="k-1"
        )
    assert keyed.id != first.id


def test_a_write_needs_a_justification_and_the_policy(target, agent, mint):
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="justification"):
        agent.propose_create(Observation.model_validate(observation()), justification="  ")
    readonly = mint("user/Observation.rs", roles=("agent-readonly",), client_id="agent-ro")
    with his_sdk.HisClient.connect(target, token=readonly) as client:
        with pytest.raises(his_sdk.errors.PermissionDeniedError):
            client.propose_create(Observation.model_validate(observation()), justification="x")
    with pytest.raises(his_sdk.errors.PermissionDeniedError, match="care team"):
        agent.propose_create(
            Observation.model_validate(observation(patient="p2")), justification="not my patient"
        )


def test_neither_the_agent_nor_its_human_may_approve(agent, reviewer, agent_token, target):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    human = reviewer("dr.one", "clinician", fhir_user="Practitioner/dr1")
    with pytest.raises(his_sdk.errors.PermissionDeniedError, match="proposed"):
        human.decide(task.id, "approve")
    from approval_service import ApprovalClient

    with ApprovalClient.connect(target, token=agent_token) as itself:
        with pytest.raises(his_sdk.errors.PermissionDeniedError, match="agents"):
            itself.decide(task.id, "approve")
    # The agent's client id under a person's token is still the requester.
    same_client = reviewer("dr.four", "clinician", client="agent-1")
    with pytest.raises(his_sdk.errors.PermissionDeniedError, match="proposed"):
        same_client.decide(task.id, "approve")
    assert agent.get_task(task.id).status == "requested"


def test_the_role_must_fit_the_risk_tier(agent, reviewer):
    task = agent.propose_create(
        MedicationRequest.model_validate(medication_request()), justification="start"
    )
    with pytest.raises(his_sdk.errors.PermissionDeniedError, match="high-risk"):
        reviewer("nurse.n", "nurse").decide(task.id, "approve")
    with pytest.raises(his_sdk.errors.PermissionDeniedError):
        reviewer("audit.a", "compliance").decide(task.id, "approve")
    request = reviewer("audit.a", "compliance").get(task.id)
    assert request.risk.value == "high" and request.approvals_required == 2
    assert set(request.reviewer_roles) == {"clinician", "pharmacist"}


def test_the_highest_tier_needs_two_distinct_approvers(agent, reviewer, adapter):
    task = agent.propose_create(
        MedicationRequest.model_validate(medication_request()), justification="start"
    )
    first = reviewer("dr.two", "clinician")
    after_one = first.decide(task.id, "approve")
    assert after_one.status is RequestStatus.PENDING and after_one.approvals_given == 1
    # The same person approving again (another client, same subject) is not a second approver.
    replay = reviewer("dr.two", "clinician", client="cli").decide(task.id, "approve")
    assert replay.status is RequestStatus.PENDING and replay.approvals_given == 1
    assert agent.get_task(task.id).businessStatus.text == "pending: 1 of 2 approvals"
    done = reviewer("rx.three", "pharmacist").decide(task.id, "approve")
    assert done.status in (RequestStatus.APPROVED, RequestStatus.EXECUTED)
    final = wait_for(lambda: (t := agent.get_task(task.id)).status == "completed" and t)
    assert final.output[0].valueReference.reference.startswith("MedicationRequest/w")
    assert adapter.executions == 1 and len(adapter.writes) == 1


def test_an_edit_is_a_new_version_with_its_diff_and_is_what_executes(agent, reviewer, adapter):
    task = agent.propose_create(
        Observation.model_validate(observation(720)), justification="hr from monitor"
    )
    edited = observation(72)
    dr = reviewer("dr.two", "clinician")
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="reason"):
        dr.decide(task.id, "approve_with_edits", edited_resource=edited)
    result = dr.decide(
        task.id, DecisionAction.APPROVE_WITH_EDITS, reason="unit slip", edited_resource=edited
    )
    assert result.current_version == 2
    wait_for(lambda: agent.get_task(task.id).status == "completed")
    request = dr.get(task.id)
    assert [v.number for v in request.versions] == [1, 2]
    assert request.versions[1].diff == [
        {"op": "replace", "path": "/valueQuantity/value", "value": 72}
    ]
    assert request.versions[1].reason == "unit slip"
    assert request.versions[0].resource["valueQuantity"]["value"] == 720
    assert adapter.writes[0].resource.valueQuantity.value == 72
    assert (
        adapter.resources[("Observation", request.outcome.resource_id)]["valueQuantity"]["value"]
        == 72
    )


def test_an_edit_may_not_move_the_write_to_another_patient(agent, reviewer):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="patient"):
        reviewer("dr.two").decide(
            task.id, "approve_with_edits", reason="x", edited_resource=observation(patient="p2")
        )


def test_a_rejection_needs_a_reason_and_never_executes(agent, reviewer, adapter):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    dr = reviewer("dr.two")
    with pytest.raises(his_sdk.errors.InvalidRequestError, match="reason"):
        dr.decide(task.id, "reject")
    rejected = dr.decide(task.id, "reject", reason="duplicate of this morning's reading")
    assert rejected.status is RequestStatus.REJECTED
    again = dr.decide(task.id, "reject", reason="duplicate of this morning's reading")
    assert again.status is RequestStatus.REJECTED
    with pytest.raises(his_sdk.errors.PreconditionFailedError):
        reviewer("dr.three").decide(task.id, "approve")
    seen = agent.get_task(task.id)
    assert seen.status == "rejected"
    assert seen.statusReason.text == "duplicate of this morning's reading"
    assert adapter.executions == 0


def test_updates_and_deletes_carry_the_current_ehr_version(agent, reviewer, adapter):
    current = agent.read(Observation, "obs1")
    current.status = "final"
    task = agent.propose_update(current, justification="verified by nurse")
    request = reviewer("dr.two").get(task.id)
    assert request.current_resource["status"] == "preliminary"
    assert request.proposed["status"] == "final"
    reviewer("dr.two").decide(task.id, "approve")
    wait_for(lambda: agent.get_task(task.id).status == "completed")
    assert adapter.writes[-1].expected_version == "3"
    gone = agent.propose_delete("Observation/obs1", justification="entered on the wrong chart")
    assert gone.contained[0].id == "proposed"
    assert reviewer("dr.two").get(gone.id).risk.value == "high"


def test_watch_streams_each_status_until_terminal(agent, reviewer):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    stream = agent.watch(task.id, timeout=20)
    assert next(stream).status == "requested"
    reviewer("dr.two").decide(task.id, "approve")
    statuses = [t.status for t in stream]
    assert statuses[-1] == "completed"
    assert set(statuses) <= {"accepted", "completed"}


async def test_async_watch_and_propose(target, agent_token, reviewer):
    import asyncio

    async with his_sdk.AsyncHisClient.connect(target, token=agent_token) as client:
        task = await client.propose_create(
            Observation.model_validate(observation(61)), justification="hr"
        )
        seen = []

        async def follow():
            async for update in client.watch(task.id):
                seen.append(update.status)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.2)
        await asyncio.to_thread(reviewer("dr.two").decide, task.id, "approve")
        await asyncio.wait_for(follower, 20)
        assert seen[0] == "requested" and seen[-1] == "completed"
        assert (await client.get_task(task.id)).status == "completed"


def test_a_failed_execution_records_the_ehr_error(agent, reviewer, adapter):
    adapter.fail.append(
        his_sdk.errors.PreconditionFailedError(
            "the EHR rejected this order (AR)", diagnostics="ORC-1: unknown order control"
        )
    )
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    reviewer("dr.two").decide(task.id, "approve")
    failed = wait_for(lambda: (t := agent.get_task(task.id)).status == "failed" and t)
    assert "the EHR rejected this order (AR)" in failed.statusReason.text
    assert "ORC-1" in failed.output[-1].valueString
    outcome = reviewer("dr.two").get(task.id).outcome
    assert outcome.error.startswith("business-rule: the EHR rejected this order")


def test_a_transient_ehr_failure_is_retried(agent, reviewer, adapter):
    adapter.fail.append(his_sdk.errors.UpstreamUnavailableError("EHR down"))
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    reviewer("dr.two").decide(task.id, "approve")
    wait_for(lambda: agent.get_task(task.id).status == "completed")
    assert adapter.executions == 2 and len(adapter.writes) == 1


def test_another_agent_cannot_see_the_task(agent, target, mint):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    other = mint("user/Observation.rs", roles=("clinician",), client_id="agent-2")
    with his_sdk.HisClient.connect(target, token=other) as client:
        with pytest.raises(his_sdk.errors.NotFoundError):
            client.get_task(task.id)
