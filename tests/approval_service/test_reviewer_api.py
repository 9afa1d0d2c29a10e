"""The reviewer side over gRPC and the CLI: list, show, decide, extend, escalate, expiry."""

from __future__ import annotations

import datetime
import json

import pytest
from click.testing import CliRunner
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation

import his_sdk.errors
from approval_service import RequestQuery, RequestStatus, RiskTier, approvals
from tests.approval_service.conftest import medication_request, observation, wait_for


def _propose_some(agent):
    observations = [
        agent.propose_create(Observation.model_validate(observation(60 + i)), justification="hr")
        for i in range(5)
    ]
    order = agent.propose_create(
        MedicationRequest.model_validate(medication_request()), justification="start"
    )
    return observations, order


def test_list_filters_and_pages(agent, reviewer):
    _, order = _propose_some(agent)
    dr = reviewer("dr.two")
    first = dr.list(RequestQuery(statuses=(RequestStatus.PENDING,), page_size=4))
    assert len(first.requests) == 4 and first.next_page_token
    second = dr.list(
        RequestQuery(
            statuses=(RequestStatus.PENDING,), page_size=4, page_token=first.next_page_token
        )
    )
    ids = [r.id for r in first.requests + second.requests]
    assert len(ids) == len(set(ids)) == 6 and second.next_page_token is None
    assert ids[0] == order.id  # newest first
    high = dr.list(RequestQuery(risks=(RiskTier.HIGH,)))
    assert [r.id for r in high.requests] == [order.id]
    assert high.requests[0].task.status == "requested"
    assert len(dr.list(RequestQuery(patient_id="p1")).requests) == 6
    assert len(dr.list(RequestQuery(patient_id="p2")).requests) == 0
    assert len(dr.list(RequestQuery(requester="agent-1")).requests) == 6
    assert len(dr.list(RequestQuery(requester="dr.one")).requests) == 6
    assert len(dr.list(RequestQuery(requester="someone-else")).requests) == 0
    assert len(dr.list(RequestQuery(min_age=datetime.timedelta(hours=1))).requests) == 0
    assert len(dr.list(RequestQuery(max_age=datetime.timedelta(hours=1))).requests) == 6
    # A nurse sees only what a nurse may decide (medium-risk observations here).
    nurse = reviewer("nurse.n", "nurse").list()
    assert {r.resource_type for r in nurse.requests} == {"Observation"}
    with pytest.raises(his_sdk.errors.PermissionDeniedError):
        reviewer("x.y", "researcher").list()
    with pytest.raises(his_sdk.errors.InvalidRequestError):
        dr.list(RequestQuery(page_token="not-a-token"))


def test_extend_and_escalate(agent, reviewer):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    dr = reviewer("dr.two")
    before = dr.get(task.id)
    extended = dr.extend(task.id, datetime.timedelta(hours=2), reason="waiting for labs")
    assert extended.expires_at > before.expires_at
    longest = dr.extend(task.id, datetime.timedelta(days=30), reason="as long as allowed")
    assert longest.expires_at == longest.created_at + datetime.timedelta(days=2)
    with pytest.raises(his_sdk.errors.PreconditionFailedError, match="max_lifetime"):
        dr.extend(task.id, datetime.timedelta(hours=1))
    with pytest.raises(his_sdk.errors.InvalidRequestError):
        dr.escalate(task.id, reason="  ")
    nurse = reviewer("nurse.n", "nurse")
    escalated = reviewer("audit.a", "compliance").escalate(task.id, reason="unusual value")
    assert escalated.risk is RiskTier.HIGH and escalated.approvals_required == 2
    assert escalated.escalated
    with pytest.raises(his_sdk.errors.PermissionDeniedError):
        nurse.decide(task.id, "approve")
    with pytest.raises(his_sdk.errors.PreconditionFailedError):
        dr.escalate(task.id, reason="again", to_risk="medium")
    kinds = [e.kind for e in dr.get(task.id).history]
    assert kinds == ["proposed", "extended", "extended", "escalated"]


def test_a_nurse_approval_stops_counting_when_escalated(agent, reviewer):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    # Medium risk needs one approval; hold it by escalating before the nurse's approval counts.
    dr = reviewer("dr.two")
    dr.escalate(task.id, reason="second opinion", to_risk="high")
    with pytest.raises(his_sdk.errors.PermissionDeniedError):
        reviewer("nurse.n", "nurse").decide(task.id, "approve")
    assert dr.decide(task.id, "approve").approvals_given == 1


@pytest.fixture
def approvals_overrides():
    return {"max_lifetime": datetime.timedelta(days=2)}


def test_the_cli_lists_shows_and_decides(agent, reviewer_token, target):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr 61")
    runner = CliRunner()
    base = ["--target", target, "--token", reviewer_token("dr.two")]
    listed = runner.invoke(approvals, [*base, "list"])
    assert listed.exit_code == 0, listed.output
    assert task.id in listed.output and "medium" in listed.output
    as_json = runner.invoke(approvals, [*base, "list", "--json", "--risk", "medium"])
    assert json.loads(as_json.output)["requests"][0]["id"] == task.id
    shown = runner.invoke(approvals, [*base, "show", task.id])
    detail = json.loads(shown.output)
    assert detail["justification"] == "hr 61" and detail["history"][0]["kind"] == "proposed"
    refused = runner.invoke(approvals, [*base, "decide", task.id, "reject"])
    assert refused.exit_code != 0 and "reason" in refused.output
    decided = runner.invoke(approvals, [*base, "decide", task.id, "approve"])
    assert decided.exit_code == 0, decided.output
    assert "approved" in decided.output or "executed" in decided.output
    wait_for(lambda: agent.get_task(task.id).status == "completed")


class TestExpiry:
    @pytest.fixture
    def approvals_overrides(self):
        return {"expiry": datetime.timedelta(milliseconds=300), "sweep_interval_seconds": 0.1}

    def test_an_undecided_request_expires_as_a_rejection(self, agent, reviewer, adapter):
        task = agent.propose_create(Observation.model_validate(observation()), justification="x")
        updates = list(agent.watch(task.id, timeout=20))
        assert [u.status for u in updates] == ["requested", "cancelled"]
        assert "expiry is a rejection" in updates[-1].statusReason.text
        assert updates[-1].businessStatus.coding[0].code == "expired"
        with pytest.raises(his_sdk.errors.PreconditionFailedError):
            reviewer("dr.two").decide(task.id, "approve")
        assert reviewer("dr.two").get(task.id).status is RequestStatus.EXPIRED
        assert adapter.executions == 0
