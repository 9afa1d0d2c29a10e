"""The reviewer console driven in headless Chromium: login, decisions, CSRF, XSS, expiry."""

from __future__ import annotations

import datetime
import re
import uuid

import pytest
from console_helpers import XSS, ConsoleServer, login
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation

from approval_service import RequestStatus
from approval_service.console import Reviewer
from his_sdk.adapter import Interaction
from his_sdk.server import CallContext

pytestmark = pytest.mark.browser


def medication_request(drug: str = "Amoxicillin 500 mg", **extra) -> MedicationRequest:
    return MedicationRequest.model_validate(
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/pat-1"},
            "medicationCodeableConcept": {"text": drug},
            **extra,
        }
    )


def observation(value: float, obs_id: str = "obs-1") -> Observation:
    return Observation.model_validate(
        {
            "resourceType": "Observation",
            "id": obs_id,
            "status": "final",
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}
                ]
            },
            "subject": {"reference": "Patient/pat-2"},
            "valueQuantity": {"value": value, "unit": "/min"},
        }
    )


AUDITOR = Reviewer("auditor", "test", None, None, ("compliance",)).principal(
    client_id="console-tests",
    session_id="tests",
    expires_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1),
)


def status_of(console: ConsoleServer, request_id: str) -> RequestStatus:
    assert console.service is not None
    call = CallContext(principal=AUDITOR, request_id=uuid.uuid4().hex)
    return console.run(console.service.get_request(call, request_id)).status


def card(page, request_id: str):
    return page.locator(f"article.card[data-request-id='{request_id}']")


def test_login_and_queue_lists_the_request(console, new_page, tmp_path):
    justification = f"Community-acquired pneumonia, started on ward round {uuid.uuid4().hex[:6]}"
    request_id = console.propose(
        medication_request(note=[{"text": "Check penicillin allergy first"}]),
        user="dr-grey",
        justification=justification,
    )
    page = new_page()
    page.goto("/queue")
    assert "/login" in page.url
    login(page, "nurse-lee", ["clinician"], display="Lee Park")
    assert page.locator("[data-testid=reviewer]").inner_text() == "Lee Park"
    item = card(page, request_id)
    text = item.inner_text()
    assert "pat-1" in text
    assert "ward-agent" in text and "dr-grey" in text
    assert "HIGH RISK" in text.upper()
    assert justification in text
    assert item.locator("table.fields").get_by_text("Amoxicillin 500 mg").count() == 1
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)
    print(f"queue screenshot: {tmp_path / 'queue.png'}")


def test_high_tier_needs_a_second_reviewer(console, new_page):
    request_id = console.propose(medication_request("Warfarin 5 mg"), user="dr-grey")
    first = new_page()
    login(first, "dr-adams", ["clinician"])
    first.goto(f"/requests/{request_id}")
    first.click("form.decision button[value=approve]")
    assert first.locator(".flash").inner_text() == "Decision recorded."
    assert "1 of 2 approvals" in first.locator("dl.facts").inner_text()
    assert status_of(console, request_id) is RequestStatus.PENDING

    # The same reviewer approving again does not count twice.
    first.click("form.decision button[value=approve]")
    assert status_of(console, request_id) is RequestStatus.PENDING

    second = new_page()
    login(second, "ph-baker", ["pharmacist"])
    second.goto(f"/requests/{request_id}")
    second.click("form.decision button[value=approve]")
    history = second.locator("table.history").inner_text()
    assert "approved" in history
    decisions = second.locator("section.panel").filter(has_text="Decisions").inner_text()
    assert "dr-adams" in decisions and "ph-baker" in decisions
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=10)
    while status_of(console, request_id) is not RequestStatus.EXECUTED:
        assert datetime.datetime.now() < deadline, "the approved write never executed"
        second.wait_for_timeout(100)
    assert [w.key for w in console.executed].count(request_id) == 1


def test_reject_requires_a_reason(console, new_page):
    request_id = console.propose(medication_request("Ibuprofen 400 mg"), user="dr-grey")
    page = new_page()
    login(page, "dr-adams", ["clinician"])
    page.goto(f"/requests/{request_id}")
    with page.expect_response(re.compile(r"/decide$")) as response:
        page.click("form.decision button[value=reject]")
    assert response.value.status == 400
    assert "reason is required" in page.locator("[data-testid=error]").inner_text()
    assert status_of(console, request_id) is RequestStatus.PENDING

    page.fill("form.decision textarea[name=reason]", "Renal impairment: avoid NSAIDs")
    page.click("form.decision button[value=reject]")
    assert status_of(console, request_id) is RequestStatus.REJECTED
    assert "Renal impairment: avoid NSAIDs" in page.locator("table.log").first.inner_text()
    assert page.locator("form.decision").count() == 0


def test_edit_and_approve_shows_the_diff(console, new_page):
    obs_id = f"obs-{uuid.uuid4().hex[:8]}"
    request_id = console.propose(
        observation(72, obs_id),
        interaction=Interaction.UPDATE,
        resource_id=obs_id,
        current=observation(64, obs_id),
        patient_id="pat-2",
        user="dr-grey",
    )
    page = new_page()
    login(page, "dr-adams", ["clinician"])
    page.goto(f"/requests/{request_id}")
    ehr_diff = page.locator("table.diff").first
    assert "valueQuantity" in ehr_diff.inner_text()
    assert ehr_diff.locator("tr.changed td.before").first.inner_text() == "64 /min"
    assert ehr_diff.locator("tr.changed td.after").first.inner_text() == "72 /min"

    page.click("details.edit summary")
    edited = page.locator("details.edit textarea[name=edited_resource]").input_value()
    page.fill(
        "details.edit textarea[name=edited_resource]",
        edited.replace('"value": 72', '"value": 76'),
    )
    page.fill("details.edit textarea[name=reason]", "Transcription error, monitor says 76")
    page.click("details.edit button[type=submit]")
    versions = page.locator("section.panel").filter(has_text="Versions")
    text = versions.inner_text()
    assert "Version 2 by dr-adams" in text
    assert "Transcription error, monitor says 76" in text
    row = versions.locator("table.diff tr.changed")
    assert row.locator("td.before").inner_text() == "72 /min"
    assert row.locator("td.after").inner_text() == "76 /min"
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=10)
    while status_of(console, request_id) is not RequestStatus.EXECUTED:
        assert datetime.datetime.now() < deadline, "the edited write never executed"
        page.wait_for_timeout(100)
    executed = [w for w in console.executed if w.key == request_id]
    assert len(executed) == 1
    assert executed[0].resource.valueQuantity.value == 76


def test_posts_without_the_right_csrf_token_are_refused(console, new_page):
    request_id = console.propose(medication_request("Paracetamol 1 g"), user="dr-grey")
    page = new_page()
    login(page, "dr-adams", ["clinician"])
    page.goto(f"/requests/{request_id}")
    token = page.locator("form.decision input[name=csrf_token]").input_value()
    url = f"/requests/{request_id}/decide"
    for form in (
        {"action": "approve"},
        {"action": "approve", "csrf_token": "forged-" + token[:10]},
        {"action": "approve", "csrf_token": ""},
    ):
        response = page.request.post(url, form=form, max_redirects=0)
        assert response.status == 403
        assert "did not come from here" in response.text()
    assert page.request.post("/logout", form={}, max_redirects=0).status == 403
    assert status_of(console, request_id) is RequestStatus.PENDING
    # The real token works, so the refusals above were about the token alone.
    ok = page.request.post(url, form={"action": "approve", "csrf_token": token}, max_redirects=0)
    assert ok.status == 303


def test_xss_payload_renders_inert(console, new_page):
    request_id = console.propose(
        medication_request(
            f"Amoxicillin {XSS}",
            note=[{"text": f"Note {XSS}"}],
            text={
                "status": "generated",
                "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{XSS}</div>',
            },
        ),
        user="dr-grey",
        justification=f"Because {XSS}",
    )
    page = new_page()
    login(page, "dr-adams", ["clinician"])
    for path in ("/queue", f"/requests/{request_id}"):
        page.goto(path)
        if page.locator("details.narrative").count():
            page.click("details.narrative summary")
        page.wait_for_timeout(200)
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.locator("img").count() == 0
        body = page.inner_text("body")
        assert f"Amoxicillin {XSS}" in body
        assert f"Because {XSS}" in body
    assert f"Note {XSS}" in body
    narrative = page.locator("details.narrative pre").inner_text()
    assert XSS in narrative and narrative.startswith("<div")


def test_session_expiry_redirects_to_login(console, new_page):
    page = new_page()
    login(page, "dr-adams", ["clinician"])
    page.goto("/queue")
    assert page.url.endswith("/queue")
    console.clock.offset = console.settings.idle_timeout + datetime.timedelta(seconds=5)
    page.goto("/queue?status=pending")
    assert "/login" in page.url and "expired=1" in page.url
    assert "Your session expired" in page.inner_text("body")
    cookies = {c["name"] for c in page.context.cookies()}
    assert "his_console_session" in cookies  # a fresh anonymous session for the login form
    # Logging in again works and returns to the page asked for.
    page.fill("input[name=subject]", "dr-adams")
    page.check("input[name=roles][value=clinician]")
    page.click("form.dev-login button[type=submit]")
    page.wait_for_url("**/queue?status=pending")


def test_self_approval_ban_holds_in_the_ui(console, new_page):
    request_id = console.propose(medication_request("Morphine 10 mg"), user="dr-self")
    page = new_page()
    login(page, "dr-self", ["clinician"])
    page.goto(f"/requests/{request_id}")
    assert page.locator("[data-testid=own-request]").is_visible()
    assert page.locator("form.decision").count() == 0
    token = page.locator("input[name=csrf_token]").first.input_value()
    response = page.request.post(
        f"/requests/{request_id}/decide",
        form={"action": "approve", "csrf_token": token},
        max_redirects=0,
    )
    assert response.status == 403
    assert "propos" in response.text().lower()
    assert status_of(console, request_id) is RequestStatus.PENDING
