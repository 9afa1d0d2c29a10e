"""Every transition writes its AuditEvent in the same transaction, and fails closed."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation

import his_sdk.errors
from his_sdk.audit import AuditSettings, KafkaSettings, verify
from tests.approval_service.conftest import medication_request, observation, wait_for


@pytest.fixture
def gateway_audit(kafka_bootstrap, settings):
    return AuditSettings(
        outbox_url=settings.state.url,
        instance_id="approvals-test",
        kafka=KafkaSettings(
            bootstrap_servers=[kafka_bootstrap],
            topic=f"his.audit.approvals.{uuid.uuid4().hex[:10]}",
            partitions=1,
            delivery_timeout_seconds=5.0,
            request_timeout_seconds=2.0,
        ),
    )


def _events(url: str) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT payload FROM his_audit_outbox ORDER BY chain_id, seq")
            ).all()
    finally:
        engine.dispose()
    return [json.loads(row.payload) for row in rows]


def _codes(event: dict) -> set[str]:
    return {c["code"] for c in event.get("subtype", [])}


def test_each_transition_is_audited_with_who_and_for_whom(agent, reviewer, queue_url, gateway):
    task = agent.propose_create(
        MedicationRequest.model_validate(medication_request()), justification="start"
    )
    reviewer("dr.two").decide(task.id, "approve")
    reviewer("rx.three", "pharmacist").decide(task.id, "approve")
    wait_for(lambda: agent.get_task(task.id).status == "completed")
    events = _events(queue_url)
    operations = [next(iter(_codes(e) - {"operation"}), None) for e in events]
    assert operations[:3] == ["approval-propose", "approval-approve", "approval-approve"]
    create = events[-1]
    assert create["action"] == "C" and _codes(create) == {"create"}
    assert create["outcome"] == "0"
    agents = create["agent"]
    verifiers = [
        a
        for a in agents
        if any(c.get("code") == "VRF" for t in [a["type"]] for c in t.get("coding", []))
    ]
    assert {v["who"]["identifier"]["value"] for v in verifiers} == {"dr.two", "rx.three"}
    patients = [
        e["what"]["reference"] for e in create["entity"] if e.get("what", {}).get("reference")
    ]
    assert "Patient/p1" in patients
    assert any(r.startswith("MedicationRequest/w") for r in patients)
    report = verify(_chained(queue_url))
    assert report.ok


def _chained(url: str):
    from his_sdk.audit import ChainedEvent

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT event_id, chain_id, seq, prev_hash, hash, patient_key, payload "
                    "FROM his_audit_outbox ORDER BY chain_id, seq"
                )
            ).all()
    finally:
        engine.dispose()
    return [
        ChainedEvent(
            event_id=r.event_id,
            chain_id=r.chain_id,
            seq=r.seq,
            prev_hash=r.prev_hash,
            hash=r.hash,
            patient_key=r.patient_key,
            event=json.loads(r.payload),
        )
        for r in rows
    ]


def test_a_failed_audit_write_rolls_the_decision_back(agent, reviewer, queue_url, adapter):
    task = agent.propose_create(Observation.model_validate(observation()), justification="hr")
    engine = sa.create_engine(queue_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE his_audit_outbox RENAME TO his_audit_outbox_away"))
    try:
        with pytest.raises(his_sdk.errors.HisError) as raised:
            reviewer("dr.two").decide(task.id, "approve")
        assert raised.value.grpc_status_code.name == "UNAVAILABLE"
        with pytest.raises(his_sdk.errors.HisError):
            agent.propose_create(Observation.model_validate(observation(99)), justification="x")
        with engine.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT COUNT(*) FROM his_approval_decisions")).scalar() == 0
            )
            assert conn.execute(sa.text("SELECT COUNT(*) FROM his_approval_requests")).scalar() == 1
        assert agent.get_task(task.id).status == "requested"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE his_audit_outbox_away RENAME TO his_audit_outbox"))
        engine.dispose()
    reviewer("dr.two").decide(task.id, "approve")
    wait_for(lambda: agent.get_task(task.id).status == "completed")
    assert adapter.executions == 1
