"""Each tool invocation leaves an IHE BALP AuditEvent naming the tool, allowed or refused."""

from __future__ import annotations

import uuid

import pytest

import his_sdk
from his_sdk.audit import AuditSettings, KafkaSettings
from his_sdk.audit._balp import OPERATION_SYSTEM
from his_sdk.server import Gateway
from tests.conftest import AUDIENCE, GatewayThread
from tests.fixtures import MemoryAdapter
from tests.his_sdk.server.conftest import CARE_TEAMS, RESOURCES
from tests.his_sdk.tools.conftest import READONLY, READONLY_SCOPES, tool_settings


@pytest.fixture
def audited(issuer, tmp_path, kafka_bootstrap):
    settings = tool_settings(issuer, tmp_path)
    settings = settings.model_copy(
        update={
            "audit": AuditSettings(
                outbox_url=settings.state.url,
                kafka=KafkaSettings(
                    bootstrap_servers=[kafka_bootstrap],
                    topic=f"his.audit.tools.{uuid.uuid4().hex[:10]}",
                    partitions=1,
                    delivery_timeout_seconds=5.0,
                    request_timeout_seconds=2.0,
                ),
                instance_id="gw-tools",
                write_interval_seconds=0.01,
                publish_interval_seconds=0.05,
            )
        }
    )
    adapter = MemoryAdapter(RESOURCES, care_teams=CARE_TEAMS)
    with GatewayThread(Gateway(settings, adapters=[("memory", adapter)])) as gw:
        yield gw


def _operations(event: dict) -> list[str]:
    return [c["code"] for c in event.get("subtype", []) if c.get("system") == OPERATION_SYSTEM]


def test_invocations_are_audited_as_operations(audited, issuer):
    token = issuer.mint(audience=AUDIENCE, scopes=READONLY_SCOPES, client_id="agent-2", **READONLY)
    with his_sdk.HisClient.connect(f"127.0.0.1:{audited.port}", token=token) as client:
        client.invoke_tool("qtc_bazett", {"qt_interval": 400, "heart_rate": 75})
        with pytest.raises(his_sdk.PermissionDeniedError):
            client.invoke_tool("cha2ds2_vasc", {"age": 70, "sex": "female"})
    audited.audit.flush()
    events = [row.event for row in audited.audit.outbox.events()]
    by_tool = {op: e for e in events for op in _operations(e)}
    assert set(by_tool) == {"tool:qtc_bazett", "tool:cha2ds2_vasc"}
    assert by_tool["tool:qtc_bazett"]["outcome"] == "0"
    assert by_tool["tool:cha2ds2_vasc"]["outcome"] != "0"
    assert "agent-2" in str(by_tool["tool:qtc_bazett"]["agent"])
