"""Agent → SDK → gateway → SQL adapter → legacy database seeded from Synthea, on each backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

import adapters.sql
import his_sdk
from his_sdk.config import AdapterSettings, PolicySettings
from his_sdk.server import Gateway
from tests.adapters.sql.sql_helpers import SMALL_BUNDLE, database
from tests.conftest import GatewayThread

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def legacy_url(request, tmp_path_factory):
    with database(request.param, tmp_path_factory.mktemp("legacy")) as url:
        adapters.sql.seed_synthea(url, [SMALL_BUNDLE])
        yield url


@pytest.fixture
def sql_gateway(settings, legacy_url):
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
        }
    )
    with GatewayThread(Gateway(configured)) as gw:
        yield gw


@pytest.fixture
def system_client(sql_gateway, mint):
    token = mint("system/*.rs", roles=("system",), client_id="integration-service")
    with his_sdk.HisClient.connect(f"127.0.0.1:{sql_gateway.port}", token=token) as client:
        yield client


def _treating_clinician(client, patient_id):
    for encounter in client.search_all(Encounter, {"patient": patient_id}):
        for participant in encounter.participant or []:
            if participant.individual and participant.individual.reference:
                return participant.individual.reference
    raise AssertionError("no encounter names a practitioner")


def test_agent_reads_a_legacy_chart_for_its_clinician(sql_gateway, system_client, mint):
    patient = next(iter(system_client.search(Patient, {"name": "Aaron"})))
    clinician = _treating_clinician(system_client, patient.id)
    token = mint(
        "user/Patient.rs user/Observation.rs user/Condition.rs",
        roles=("clinician",),
        act_subject="dr.house",
        act_fhir_user=clinician,
    )
    with his_sdk.HisClient.connect(f"127.0.0.1:{sql_gateway.port}", token=token) as agent:
        chart = agent.read(Patient, patient.id)
        vitals = list(
            agent.search_all(
                Observation, {"patient": patient.id, "category": "vital-signs"}, count=7
            )
        )
        recent = agent.search(
            Observation, {"patient": patient.id, "date": "ge2019-01-01"}, total=True
        )
        conditions = agent.search(Condition, {"patient": patient.id})
    assert isinstance(chart, Patient) and chart.birthDate is not None
    assert vitals and all(o.subject.reference == f"Patient/{patient.id}" for o in vitals)
    assert len({o.id for o in vitals}) == len(vitals)
    assert all(str(o.effectiveDateTime) >= "2019" for o in recent)
    assert recent.total is not None and recent.total >= len(recent)
    assert all(isinstance(c, Condition) for c in conditions)


def test_care_team_from_legacy_data_decides(sql_gateway, system_client, mint):
    patient = next(iter(system_client.search(Patient, {"name": "Aaron"})))
    stranger = mint(
        "user/Patient.rs",
        roles=("clinician",),
        act_subject="dr.who",
        act_fhir_user="Practitioner/999999",
    )
    with his_sdk.HisClient.connect(f"127.0.0.1:{sql_gateway.port}", token=stranger) as agent:
        with pytest.raises(his_sdk.PermissionDeniedError, match="care team"):
            agent.read(Patient, patient.id)


def test_consent_opt_out_in_the_legacy_database_takes_effect(
    sql_gateway, system_client, mint, legacy_url
):
    patient = next(iter(system_client.search(Patient, {"name": "Aaron"})))
    clinician = _treating_clinician(system_client, patient.id)
    token = mint(
        "user/Patient.rs", roles=("clinician",), act_subject="dr.house", act_fhir_user=clinician
    )
    target = f"127.0.0.1:{sql_gateway.port}"
    engine = sa.create_engine(legacy_url)
    try:
        with his_sdk.HisClient.connect(target, token=token) as agent:
            assert agent.read(Patient, patient.id).id == patient.id
            with engine.begin() as conn:
                conn.execute(
                    sa.text("UPDATE patient_data SET allow_health_info_ex = 'NO' WHERE pid = :pid"),
                    {"pid": int(patient.id)},
                )
            with pytest.raises(his_sdk.PermissionDeniedError, match="declined"):
                agent.read(Patient, patient.id)
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE patient_data SET allow_health_info_ex = 'YES' WHERE pid = :pid"),
                {"pid": int(patient.id)},
            )
        engine.dispose()


def test_patient_token_cannot_reach_another_patients_rows(sql_gateway, system_client, mint):
    patient = next(iter(system_client.search(Patient, {"name": "Aaron"})))
    token = mint("patient/*.rs", patient="424242")
    with his_sdk.HisClient.connect(f"127.0.0.1:{sql_gateway.port}", token=token) as app:
        with pytest.raises(his_sdk.PermissionDeniedError):
            app.search(Observation, {"patient": patient.id})
        with pytest.raises(his_sdk.PermissionDeniedError):
            app.read(Patient, patient.id)
        assert app.search(Observation).resources == []
