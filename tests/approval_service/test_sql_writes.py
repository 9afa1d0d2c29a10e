"""Approved writes land in the legacy SQL database and read back through the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.patient import Patient

import adapters.sql
import his_sdk
import his_sdk.errors
from approval_service import ApprovalClient
from his_sdk.adapter import ApprovedWrite, Interaction
from his_sdk.config import AdapterSettings, PolicySettings
from his_sdk.server import Gateway
from tests.adapters.sql.sql_helpers import SMALL_BUNDLE, database
from tests.approval_service.conftest import approval_settings, medication_request, wait_for
from tests.conftest import GatewayThread

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def legacy_url(request, tmp_path_factory):
    with database(request.param, tmp_path_factory.mktemp("legacy")) as url:
        adapters.sql.seed_synthea(url, [SMALL_BUNDLE])
        yield url


@pytest.fixture
def sql_gateway(settings, legacy_url, sqlite_url):
    configured = settings.model_copy(
        update={
            "adapters": [
                AdapterSettings(
                    name="openemr",
                    implementation="adapters.sql:SqlAdapter",
                    settings={"url": legacy_url, "mapping": "openemr"},
                )
            ],
            "policy": PolicySettings(patient_facts_ttl_seconds=0),
            "approvals": approval_settings(sqlite_url),
        }
    )
    with GatewayThread(Gateway(configured)) as gw:
        yield gw


def _clinician_and_patient(target, mint):
    token = mint("system/*.rs", roles=("system",), client_id="integration-service")
    with his_sdk.HisClient.connect(target, token=token) as system:
        patient = next(iter(system.search(Patient, {"name": "Aaron"})))
        for encounter in system.search_all(Encounter, {"patient": patient.id}):
            for participant in encounter.participant or []:
                if participant.individual and participant.individual.reference:
                    return participant.individual.reference, patient.id
    raise AssertionError("no encounter names a practitioner")


def test_approved_orders_and_problems_are_written_and_read_back(sql_gateway, mint):
    target = f"127.0.0.1:{sql_gateway.port}"
    clinician, patient_id = _clinician_and_patient(target, mint)
    token = mint(
        "user/Patient.rs user/MedicationRequest.crs user/Condition.crs",
        client_id="agent-sql",
        roles=("clinician",),
        act_subject="dr.treating",
        act_fhir_user=clinician,
    )
    order = medication_request(patient_id, drug="Lisinopril 10 MG Oral Tablet")
    order["requester"] = {"reference": clinician}
    problem = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "38341003", "display": "Hypertension"}
            ],
            "text": "Hypertension",
        },
        "onsetDateTime": "2024-03-01",
    }
    reviewer = mint(
        "openid", client_id="console", roles=("clinician",), extra_claims={"sub": "dr.review"}
    )
    pharmacist = mint(
        "openid", client_id="console", roles=("pharmacist",), extra_claims={"sub": "rx.check"}
    )
    with (
        his_sdk.HisClient.connect(target, token=token) as agent,
        ApprovalClient.connect(target, token=reviewer) as dr,
        ApprovalClient.connect(target, token=pharmacist) as rx,
    ):
        order_task = agent.propose_create(
            MedicationRequest.model_validate(order), justification="BP above target"
        )
        problem_task = agent.propose_create(
            Condition.model_validate(problem), justification="three high readings"
        )
        dr.decide(order_task.id, "approve")
        rx.decide(order_task.id, "approve")
        dr.decide(problem_task.id, "approve")
        done = wait_for(lambda: (t := agent.get_task(order_task.id)).status == "completed" and t)
        written = done.output[0].valueReference.reference
        assert written.startswith("MedicationRequest/")
        read = agent.read(MedicationRequest, written.split("/")[1])
        assert read.medicationCodeableConcept.text == "Lisinopril 10 MG Oral Tablet"
        assert read.subject.reference == f"Patient/{patient_id}"
        assert read.requester.reference == clinician
        problem_done = wait_for(
            lambda: (t := agent.get_task(problem_task.id)).status == "completed" and t
        )
        condition_id = problem_done.output[0].valueReference.reference.split("/")[1]
        found = agent.search(Condition, {"patient": patient_id, "code": "38341003"})
        assert condition_id in {c.id for c in found}


async def test_the_adapter_writes_once_per_key(legacy_url):
    adapter = adapters.sql.SqlAdapter(legacy_url)
    await adapter.start()
    try:
        patients = await adapter.search(his_sdk.search.SearchQuery("Patient", count=1))
        resource = MedicationRequest.model_validate(
            medication_request(patients.resources[0].id, drug="Metformin 500 MG")
        )
        write = ApprovedWrite("key-once", Interaction.CREATE, "MedicationRequest", None, resource)
        first = await adapter.execute(write)
        again = await adapter.execute(write)
        assert again.resource_id == first.resource_id
        assert again.message == "already written for this key"
        engine = sa.create_engine(legacy_url)
        with engine.connect() as conn:
            count = conn.execute(
                sa.text("SELECT COUNT(*) FROM prescriptions WHERE drug = 'Metformin 500 MG'")
            ).scalar()
        engine.dispose()
        assert count == 1
        bad = medication_request(patients.resources[0].id)
        bad["status"] = "on-hold"
        with pytest.raises(his_sdk.errors.InvalidRequestError, match="value map"):
            await adapter.execute(
                ApprovedWrite(
                    "key-bad",
                    Interaction.CREATE,
                    "MedicationRequest",
                    None,
                    MedicationRequest.model_validate(bad),
                )
            )
        with pytest.raises(his_sdk.errors.UnsupportedError):
            await adapter.execute(
                ApprovedWrite("key-x", Interaction.DELETE, "MedicationRequest", "1")
            )
    finally:
        await adapter.close()


def test_mapping_errors_in_the_write_section_name_the_key(tmp_path):
    shipped = Path(adapters.sql.__path__[0]) / "mappings" / "openemr.yaml"
    mapping = shipped.read_text().replace("source: prescriptions\n", "source: nowhere\n", 1)
    mapping = mapping.replace("map: prescription_status, required", "map: nope, required")
    path = tmp_path / "broken.yaml"
    path.write_text(mapping)
    with pytest.raises(adapters.sql.MappingError) as raised:
        adapters.sql.SqlAdapter("sqlite://", mapping=path)
    message = str(raised.value)
    assert "resources.MedicationRequest.write.create.source: no source named 'nowhere'" in message
    assert "write.create.values.active.map: unknown value map 'nope'" in message
