"""Exactly-once execution: concurrent and replayed decisions, crashes, competing replicas."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.observation import Observation

import his_sdk.errors
from approval_service import DecisionAction, RequestStatus
from tests.approval_service.conftest import (
    CARE_TEAMS,
    RESOURCES,
    WritableMemoryAdapter,
    observation,
    wait_for,
)
from tests.approval_service.service_helpers import NoAutoExecute, person, propose, start_service


@pytest.fixture
def queue_url(db_url):
    return db_url


def test_twenty_concurrent_approvals_and_replays_execute_once(agent, reviewer, adapter):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    clients = [reviewer(f"dr.{i}", "clinician") for i in range(20)]
    start = threading.Barrier(len(clients))

    def approve(client):
        start.wait()
        try:
            return client.decide(task.id, "approve").status
        except his_sdk.errors.PreconditionFailedError:
            return "refused"

    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(approve, clients))
    winners = [r for r in results if r != "refused"]
    assert len(winners) == 1
    wait_for(lambda: agent.get_task(task.id).status == "completed")
    # The winner replays its decision, twice at once: the same answer, no second execution.
    winner = clients[results.index(winners[0])]
    with ThreadPoolExecutor(2) as pool:
        replays = list(pool.map(lambda _: winner.decide(task.id, "approve"), range(2)))
    assert all(r.status is RequestStatus.EXECUTED for r in replays)
    assert adapter.executions == 1 and len(adapter.writes) == 1
    request = winner.get(task.id)
    assert len([d for d in request.decisions if d.action is DecisionAction.APPROVE]) == 1
    assert [e.kind for e in request.history].count("executed") == 1


async def test_a_crash_between_decision_and_execution_is_recovered(queue_url):
    ehr = WritableMemoryAdapter(RESOURCES, care_teams=CARE_TEAMS)
    crashed = await start_service(queue_url, ehr.execute, cls=NoAutoExecute)
    request_id = await propose(crashed, observation())
    decided = await crashed.decide(person("dr.two"), request_id, DecisionAction.APPROVE)
    assert decided.status is RequestStatus.APPROVED
    await crashed.close()
    assert ehr.executions == 0
    restarted = await start_service(queue_url, ehr.execute)
    try:
        # Its first sweep runs at start; an explicit one may race it, never double it.
        await restarted.recover()
        request = await _executed(restarted, request_id)
        assert request.outcome.resource_id.startswith("w")
        assert await restarted.recover() == 0
        assert ehr.executions == 1 and len(ehr.writes) == 1
    finally:
        await restarted.close()


async def test_a_crash_after_the_ehr_wrote_reuses_the_first_result(queue_url):
    ehr = WritableMemoryAdapter(RESOURCES, care_teams=CARE_TEAMS)
    ehr.after_write_hold = asyncio.Event()  # the EHR wrote; the process dies before recording
    first = await start_service(queue_url, ehr.execute, execution_lease_seconds=0.5)
    request_id = await propose(first, observation())
    await first.decide(person("dr.two"), request_id, DecisionAction.APPROVE)
    for _ in range(200):
        if ehr.writes:
            break
        await asyncio.sleep(0.01)
    await first.close()
    ehr.after_write_hold = None
    second = await start_service(queue_url, ehr.execute, execution_lease_seconds=0.5)
    try:
        assert await second.recover() == 0  # the dead replica's lease still holds
        await asyncio.sleep(0.6)
        await second.recover()
        request = await _executed(second, request_id)
        assert ehr.executions == 2 and len(ehr.writes) == 1
        assert request.outcome.resource_id == ehr.outcomes[request_id].resource_id
    finally:
        await second.close()


async def test_replicas_racing_to_execute_run_it_once(queue_url):
    ehr = WritableMemoryAdapter(RESOURCES, care_teams=CARE_TEAMS)
    one = await start_service(queue_url, ehr.execute, cls=NoAutoExecute)
    two = await start_service(queue_url, ehr.execute, cls=NoAutoExecute)
    try:
        ids = [await propose(one, observation(60 + i)) for i in range(5)]
        for request_id in ids:
            await one.decide(person("dr.two"), request_id, DecisionAction.APPROVE)
        results = await asyncio.gather(
            *(svc.execute(i) for i in ids for svc in (one, two, one, two)),
            one.recover(),
            two.recover(),
        )
        executed = sum(1 for r in results[:-2] if r) + results[-2] + results[-1]
        assert executed == len(ids)
        assert ehr.executions == len(ids) and len(ehr.writes) == len(ids)
    finally:
        await one.close()
        await two.close()


@pytest.mark.postgres
async def test_executors_skip_rows_another_transaction_holds(postgres_url):
    ehr = WritableMemoryAdapter(RESOURCES, care_teams=CARE_TEAMS)
    service = await start_service(postgres_url, ehr.execute, cls=NoAutoExecute)
    try:
        request_id = await propose(service, observation())
        await service.decide(person("dr.two"), request_id, DecisionAction.APPROVE)
        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(
                sa.text("SELECT id FROM his_approval_requests WHERE id = :id FOR UPDATE"),
                {"id": request_id},
            )
            # Another replica holds the row: SKIP LOCKED passes it by instead of waiting.
            assert await asyncio.wait_for(service.execute(request_id), 5) is False
            assert await asyncio.wait_for(service.recover(), 5) == 0
        engine.dispose()
        assert await service.execute(request_id) is True
        assert ehr.executions == 1
    finally:
        await service.close()


async def _executed(service, request_id):
    for _ in range(500):
        request = await service.get_request(person("dr.two"), request_id)
        if request.status is RequestStatus.EXECUTED:
            return request
        await asyncio.sleep(0.01)
    raise AssertionError(f"request {request_id} was not executed")
