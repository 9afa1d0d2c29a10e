"""A gateway on 127.0.0.1:0 with a writable in-memory adapter and an in-memory approval queue."""

from __future__ import annotations

import pytest

from his_sdk.audit import AuditSettings
from his_sdk.config import (
    ApprovalSettings,
    AuthSettings,
    GatewaySettings,
    RestSettings,
    ServerSettings,
    StateSettings,
)
from his_sdk.server import Gateway
from tests.conftest import AUDIENCE, ISSUER, GatewayThread
from tests.his_sdk.rest.rest_helpers import MemoryWriteQueue, WritableMemoryAdapter
from tests.his_sdk.server.conftest import CARE_TEAMS, RESOURCES

CLINICIAN = dict(roles=("clinician",), act_subject="dr.one", act_fhir_user="Practitioner/dr1")
CLINICIAN_SCOPES = "user/Patient.rs user/Observation.cruds user/Condition.rs"
READONLY = dict(roles=("agent-readonly",), act_subject="dr.one", act_fhir_user="Practitioner/dr1")
READONLY_SCOPES = "user/Patient.rs user/Observation.rs"


def tool_settings(issuer, tmp_path, **updates) -> GatewaySettings:
    settings = GatewaySettings(
        server=ServerSettings(port=0, grace_seconds=0),
        auth=AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=issuer.jwks_path),
        state=StateSettings(url=f"sqlite:///{tmp_path}/state.db"),
        audit=AuditSettings(enabled=False),
        approvals=ApprovalSettings(
            implementation="tests.his_sdk.rest.rest_helpers:MemoryWriteQueue"
        ),
        rest=RestSettings(enabled=False, port=0),
    )
    return settings.model_copy(update=updates)


@pytest.fixture(scope="module")
def gateway(issuer, tmp_path_factory):
    settings = tool_settings(issuer, tmp_path_factory.mktemp("tools"))
    adapter = WritableMemoryAdapter(RESOURCES, care_teams=CARE_TEAMS, opted_out={"p3"})
    with GatewayThread(Gateway(settings, adapters=[("memory", adapter)])) as gw:
        yield gw


@pytest.fixture(scope="module")
def target(gateway) -> str:
    return f"127.0.0.1:{gateway.port}"


@pytest.fixture(scope="module")
def queue(gateway) -> MemoryWriteQueue:
    (found,) = [q for q in MemoryWriteQueue.instances if q is gateway.approvals]
    return found


@pytest.fixture(scope="module")
def clinician_token(issuer) -> str:
    return issuer.mint(audience=AUDIENCE, scopes=CLINICIAN_SCOPES, client_id="agent-1", **CLINICIAN)


@pytest.fixture(scope="module")
def readonly_token(issuer) -> str:
    return issuer.mint(audience=AUDIENCE, scopes=READONLY_SCOPES, client_id="agent-2", **READONLY)
