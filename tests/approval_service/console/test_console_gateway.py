"""The gateway serves the console when ``console.enabled``: an agent's gRPC proposal shows up."""

from __future__ import annotations

import re

import httpx
import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from his_sdk.config import ConsoleSettings
from tests.approval_service.conftest import medication_request, wait_for


@pytest.fixture
def settings(settings):
    console = ConsoleSettings(enabled=True, dev_login=True, port=0, session_secret="g" * 32)
    return settings.model_copy(update={"console": console})


def test_gateway_serves_the_console_over_the_same_queue(gateway, agent, adapter):
    task = agent.propose_create(
        MedicationRequest.model_validate(medication_request()),
        justification="BP above target on two visits; start amlodipine",
    )
    assert gateway.console_port > 0
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.console_port}") as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        login = client.post(
            "/login/dev",
            data={"csrf_token": token.group(1), "subject": "dr.two", "roles": "clinician"},
        )
        assert login.status_code == 303
        queue = client.get("/queue")
        assert queue.status_code == 200
        assert f'data-request-id="{task.id}"' in queue.text
        assert "agent-1" in queue.text and "dr.one" in queue.text

    # The human the agent acts for may not approve it through the console either.
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.console_port}") as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        client.post(
            "/login/dev",
            data={"csrf_token": token.group(1), "subject": "dr.one", "roles": "clinician"},
        )
        page = client.get(f"/requests/{task.id}")
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        refused = client.post(
            f"/requests/{task.id}/decide", data={"csrf_token": csrf.group(1), "action": "approve"}
        )
        assert refused.status_code == 403
    assert adapter.executions == 0
    wait_for(lambda: agent.get_task(task.id).status == "requested")
