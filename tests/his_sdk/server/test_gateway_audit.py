"""Every gateway call leaves IHE BALP AuditEvents in the outbox and on Kafka."""

from __future__ import annotations

import base64
import itertools
import uuid

import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

import his_sdk
from his_sdk.audit import AuditSettings, KafkaSettings, read_topic
from his_sdk.server import Gateway
from tests.conftest import GatewayThread

CLINICIAN = dict(roles=("clinician",), act_subject="dr.one", act_fhir_user="Practitioner/dr1")
SCOPES = "user/Patient.rs user/Observation.rs"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


@pytest.fixture
def kafka(kafka_bootstrap):
    return KafkaSettings(
        bootstrap_servers=[kafka_bootstrap],
        topic=f"his.audit.gw.{uuid.uuid4().hex[:10]}",
        partitions=2,
        delivery_timeout_seconds=5.0,
        request_timeout_seconds=2.0,
    )


@pytest.fixture
def audited(settings, adapter, kafka, tmp_path):
    configured = settings.model_copy(
        update={
            "audit": AuditSettings(
                outbox_url=settings.state.url,
                kafka=kafka,
                instance_id="gw-test",
                write_interval_seconds=0.01,
                publish_interval_seconds=0.05,
            )
        }
    )
    with GatewayThread(Gateway(configured, adapters=[("memory", adapter)])) as gw:
        yield gw


def _events(gateway):
    gateway.audit.flush()
    return [row.event for row in gateway.audit.outbox.events()]


def _roles(event):
    return {
        (a.get("requestor"), c["code"])
        for a in event["agent"]
        for c in a.get("type", {}).get("coding", [])
    }


def test_each_call_kind_leaves_the_right_balp_shape(audited, mint):
    target = f"127.0.0.1:{audited.port}"
    with his_sdk.HisClient.connect(target, token=mint(SCOPES, **CLINICIAN)) as c:
        c.read(Patient, "p1")
        c.search(Observation, {"patient": "p1", "category": "laboratory"})
        with pytest.raises(his_sdk.PermissionDeniedError):
            c.read(Patient, "p2")
        with pytest.raises(his_sdk.UnsupportedParameterError):
            c.search(Observation, {"patient": "p1", "value-quantity": "gt1"})
    events = _events(audited)
    for event in events:
        AuditEvent.model_validate(event)
    read, search, denied, invalid = events
    assert read["action"] == "R" and read["outcome"] == "0"
    assert read["subtype"][0]["code"] == "read"
    assert any(code == "110152" for _, code in _roles(read)), "read: client is Destination"
    assert any(code == "110153" for _, code in _roles(search)), "query: client is Source"
    assert search["action"] == "E" and search["subtype"][0]["code"] == "search-type"
    query = next(e for e in search["entity"] if e.get("query"))
    assert "category=laboratory" in base64.b64decode(query["query"]).decode()
    assert not any(
        e.get("what", {}).get("reference", "").startswith("Observation/") for e in search["entity"]
    ), "a search records its query, never its results"
    assert denied["outcome"] == "4" and "care team" in denied["outcomeDesc"]
    assert any(e.get("what", {}).get("reference") == "Patient/p2" for e in denied["entity"]), (
        "a denial names the patient it was about"
    )
    assert invalid["outcome"] == "4" and "value-quantity" in invalid["outcomeDesc"]
    agent_ids = {a.get("who", {}).get("identifier", {}).get("value") for a in read["agent"]}
    assert "test-agent" in agent_ids and "dr.one" in agent_ids


def test_events_reach_kafka_keyed_by_patient_and_chained(audited, mint, kafka):
    target = f"127.0.0.1:{audited.port}"
    with his_sdk.HisClient.connect(target, token=mint(SCOPES, **CLINICIAN)) as c:
        for _ in range(3):
            c.read(Patient, "p1")
    audited.audit.flush()
    audited.audit.publisher.drain(10)
    assert audited.audit.outbox.backlog() == 0
    published = list(read_topic(kafka, kafka.bootstrap_servers))
    assert len(published) == 3
    assert {e.patient_key for e in published} == {"p1"}
    ordered = sorted(published, key=lambda e: e.seq)
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(ordered))
