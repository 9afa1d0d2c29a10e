"""The REST facade over a real gateway: reads, searches, paging, errors and negotiation."""

from __future__ import annotations

import json
import socket
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fhir.resources.R4B.observation import Observation

import his_sdk
from his_sdk.config import (
    AuthSettings,
    GatewaySettings,
    RestSettings,
    ServerSettings,
    StateSettings,
)
from his_sdk.rest import FHIR_JSON
from tests.fixtures import MemoryAdapter
from tests.his_sdk.rest.rest_helpers import running_gateway

FHIR_JSON_UTF8 = f"{FHIR_JSON}; charset=utf-8"
LAB_ORDER = [f"lab{i}" for i in range(5)]


def outcome(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


def test_metadata_is_public_and_lists_types_parameters_and_oauth_uris(http, gateway):
    response = http.get("/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == FHIR_JSON_UTF8
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["implementation"]["url"] == str(http.base_url).rstrip("/")
    rest = statement["rest"][0]
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == {"Patient", "Observation"}
    assert {p["name"] for p in resources["Observation"]["searchParam"]} == {
        "_id",
        "patient",
        "code",
        "category",
    }
    (extension,) = rest["security"]["extension"]
    assert extension["extension"] == [
        {"url": "token", "valueUri": gateway.settings.rest.token_endpoint}
    ]


def test_smart_configuration_names_the_token_endpoint_and_assertion_algorithms(http, gateway):
    response = http.get("/.well-known/smart-configuration")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["token_endpoint"] == gateway.settings.rest.token_endpoint
    assert document["grant_types_supported"] == ["client_credentials"]
    assert document["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(document["token_endpoint_auth_signing_alg_values_supported"]) == {
        "RS384",
        "ES384",
    }
    assert "permission-v2" in document["capabilities"]


def test_read_returns_the_resource_with_version_headers(http, auth):
    response = http.get("/Patient/p1", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == FHIR_JSON_UTF8
    assert response.headers["etag"] == 'W/"7"'
    assert response.headers["last-modified"] == "Wed, 01 May 2024 10:00:00 GMT"
    assert response.headers["x-request-id"]
    assert response.json()["name"][0]["family"] == "One"
    again = http.get("/Patient/p1", headers={**auth, "If-None-Match": 'W/"7"'})
    assert again.status_code == 304 and again.content == b""
    changed = http.get("/Patient/p1", headers={**auth, "If-None-Match": 'W/"6"'})
    assert changed.status_code == 200


def test_read_applies_elements_and_summary(http, auth):
    slim = http.get("/Observation/lab1", params={"_elements": "code"}, headers=auth).json()
    assert "valueQuantity" not in slim and slim["code"]["coding"][0]["code"] == "2345-7"
    assert slim["status"] == "final"  # mandatory elements stay
    assert slim["meta"]["tag"][-1]["code"] == "SUBSETTED"
    bad = http.get("/Observation/lab1", params={"_count": "2"}, headers=auth)
    assert bad.status_code == 400 and outcome(bad)["expression"] == ["_count"]


def test_search_returns_a_searchset_bundle_with_total_and_links(http, auth, base):
    params = {"patient": "p1", "category": "laboratory", "_total": "accurate"}
    response = http.get("/Observation", params=params, headers=auth)
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == 5
    assert [e["resource"]["id"] for e in bundle["entry"]] == LAB_ORDER
    assert bundle["entry"][0]["fullUrl"] == f"{base}/Observation/lab0"
    assert bundle["entry"][0]["search"] == {"mode": "match"}
    (link,) = bundle["link"]
    assert link["relation"] == "self"
    assert parse_qs(urlsplit(link["url"]).query) == {k: [v] for k, v in params.items()}


def test_next_links_page_through_every_match_once(http, auth):
    url: str | None = "/Observation?patient=p1&_count=3"
    ids, pages = [], 0
    while url:
        bundle = http.get(url, headers=auth).json()
        ids += [e["resource"]["id"] for e in bundle.get("entry", [])]
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        url = links.get("next")
        pages += 1
        if url:
            assert "_cursor=" in url and "_count=3" in url
    assert pages == 3
    assert sorted(ids) == sorted(LAB_ORDER + [f"vs{i}" for i in range(3)])


def test_post_search_matches_get_search(http, auth):
    form = {"patient": "p1", "category": "vital-signs"}
    response = http.post("/Observation/_search", data=form, headers=auth)
    assert response.status_code == 200
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["vs0", "vs1", "vs2"]
    wrong = http.post("/Observation/_search", json=form, headers=auth)
    assert wrong.status_code == 415


def test_summary_count_and_elements_shape_the_page(http, auth):
    counted = http.get("/Observation", params={"patient": "p1", "_summary": "count"}, headers=auth)
    body = counted.json()
    assert body["total"] == 8 and "entry" not in body
    slim = http.get(
        "/Observation", params={"patient": "p1", "_elements": "code", "_count": "1"}, headers=auth
    ).json()
    resource = slim["entry"][0]["resource"]
    assert "valueQuantity" not in resource and "subject" not in resource


def test_cursors_are_bound_to_the_query_and_cannot_be_forged(http, auth):
    bundle = http.get("/Observation?patient=p1&_count=3", headers=auth).json()
    next_url = {link["relation"]: link["url"] for link in bundle["link"]}["next"]
    cursor = parse_qs(urlsplit(next_url).query)["_cursor"][0]
    other = http.get(
        "/Observation",
        params={"patient": "p1", "category": "laboratory", "_count": "3", "_cursor": cursor},
        headers=auth,
    )
    assert other.status_code == 400 and "different search" in outcome(other)["details"]["text"]
    forged = http.get(
        "/Observation",
        params={"patient": "p1", "_count": "3", "_cursor": cursor[:-3] + "AAA"},
        headers=auth,
    )
    assert forged.status_code == 400 and outcome(forged)["expression"] == ["cursor"]


def test_rest_cursor_continues_over_grpc_because_both_call_one_service(http, mint, gateway):
    token = mint()
    bundle = http.get(
        "/Observation?patient=p1&_count=3", headers={"Authorization": f"Bearer {token}"}
    ).json()
    cursor = parse_qs(urlsplit(bundle["link"][1]["url"]).query)["_cursor"][0]
    with his_sdk.HisClient.connect(f"127.0.0.1:{gateway.port}", token=token, timeout=10) as c:
        page = c.search(Observation, {"patient": "p1"}, count=3, cursor=cursor)
    assert [o.id for o in page] == ["lab3", "lab4", "vs0"]


@pytest.mark.parametrize(
    ("params", "code", "expression"),
    [
        ({"patient": "p1", "value-quantity": "gt5"}, "not-supported", ["value-quantity"]),
        ({"patient": "p1", "_sort": "date"}, "not-supported", ["_sort"]),
        ({"patient": "p1", "_count": "many"}, "invalid", ["_count"]),
    ],
)
def test_bad_search_parameters_are_400_with_an_outcome(http, auth, params, code, expression):
    response = http.get("/Observation", params=params, headers=auth)
    assert response.status_code == 400
    issue = outcome(response)
    assert issue["code"] == code and issue["expression"] == expression


def test_missing_or_bad_tokens_are_401_with_a_bearer_challenge(http, mint):
    missing = http.get("/Patient/p1")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="his-gateway-rest-test"'
    assert outcome(missing)["code"] == "login"
    expired = http.get("/Patient/p1", headers={"Authorization": f"Bearer {mint(ttl_seconds=-120)}"})
    assert expired.status_code == 401
    challenge = expired.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge and "expired" in challenge
    garbage = http.get("/Patient/p1", headers={"Authorization": "Bearer not.a.jwt"})
    assert garbage.status_code == 401


def test_policy_denials_are_403_and_name_what_would_allow_them(http, mint):
    no_scope = http.get(
        "/Observation",
        params={"patient": "p1"},
        headers={"Authorization": f"Bearer {mint('user/Patient.rs')}"},
    )
    assert no_scope.status_code == 403
    assert "Observation" in outcome(no_scope)["details"]["text"]
    assert 'error="insufficient_scope"' in no_scope.headers["www-authenticate"]
    token = {"Authorization": f"Bearer {mint()}"}
    not_mine = http.get("/Patient/p2", headers=token)
    assert not_mine.status_code == 403 and "care team" in outcome(not_mine)["details"]["text"]
    glass = http.get(
        "/Patient/p2", headers={**token, "X-His-Break-Glass": "unconscious patient in ED"}
    )
    assert glass.status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/Observation/nope", 404, "not-found"),
        ("/Observation/gone", 410, "deleted"),
        ("/Observation/busy", 429, "throttled"),
        ("/Observation/down", 503, "transient"),
        ("/Observation/bad-rule", 422, "business-rule"),
        ("/Observation/bad_id!", 400, "invalid"),
        ("/NotAType/x", 400, "invalid"),
        ("/Encounter/e1", 501, "not-supported"),
    ],
)
def test_errors_map_to_http_statuses(http, auth, path, status, code):
    response = http.get(path, headers=auth)
    assert response.status_code == status
    assert outcome(response)["code"] == code


def test_unexpected_errors_are_500_without_details(http, auth, caplog):
    response = http.get("/Observation/boom", headers=auth)
    assert response.status_code == 500
    text = outcome(response)["details"]["text"]
    assert text == f"internal error; quote request id {response.headers['x-request-id']}"
    assert "injected" not in response.text
    assert "injected boom fault" in caplog.text


def test_content_negotiation(http, auth):
    plain = http.get("/Patient/p1", headers={**auth, "Accept": "application/json"})
    assert plain.headers["content-type"] == "application/json; charset=utf-8"
    weighted = http.get(
        "/Patient/p1",
        headers={**auth, "Accept": "application/fhir+xml, application/fhir+json;q=0.5"},
    )
    assert weighted.status_code == 200
    assert weighted.headers["content-type"] == FHIR_JSON_UTF8
    xml = http.get("/Patient/p1", headers={**auth, "Accept": "application/fhir+xml"})
    assert xml.status_code == 406 and "XML" in outcome(xml)["details"]["text"]
    by_format = http.get("/Patient/p1", params={"_format": "xml"}, headers=auth)
    assert by_format.status_code == 406
    unencoded = http.get("/Patient/p1?_format=application/fhir+json", headers=auth)
    assert unencoded.status_code == 200
    json_format = http.get(
        "/Patient/p1", params={"_format": "json", "_pretty": "true"}, headers=auth
    )
    assert json_format.status_code == 200 and json_format.text.startswith('{\n  "resourceType"')


def test_writes_check_the_body_then_need_an_adapter_that_writes(http, auth):
    # The memory adapter is read-only, so this gateway runs no approval queue.
    observation = http.get("/Observation/lab1", headers=auth).json()
    created = http.post(
        "/Observation", content=json.dumps(observation), headers={**auth, "Content-Type": FHIR_JSON}
    )
    assert created.status_code == 501
    assert "create is not supported" in outcome(created)["details"]["text"]
    updated = http.put(
        "/Observation/lab1",
        content=json.dumps(observation),
        headers={**auth, "Content-Type": FHIR_JSON},
    )
    assert updated.status_code == 501
    mismatched = http.put(
        "/Observation/lab2",
        content=json.dumps(observation),
        headers={**auth, "Content-Type": FHIR_JSON},
    )
    assert mismatched.status_code == 400
    invalid = http.post(
        "/Observation",
        content=json.dumps({"resourceType": "Observation", "status": 12}),
        headers={**auth, "Content-Type": FHIR_JSON},
    )
    assert invalid.status_code == 422 and outcome(invalid)["code"] == "invalid"
    wrong_type = http.post(
        "/Observation", content="status=final", headers={**auth, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    anonymous = http.post("/Observation", json=observation)
    assert anonymous.status_code == 401
    task = http.get("/Task/t1", headers=auth)
    assert task.status_code == 501 and "approval queue" in outcome(task)["details"]["text"]


def test_oversized_bodies_are_413(http, auth):
    big = {"resourceType": "Observation", "id": "lab1", "note": [{"text": "x" * 1_100_000}]}
    response = http.post("/Observation", json=big, headers={**auth, "Content-Type": FHIR_JSON})
    assert response.status_code == 413


def test_unknown_paths_and_methods_answer_with_outcomes(http, auth):
    missing = http.get("/Patient/p1/_history/1/x", headers=auth)
    assert missing.status_code == 404 and outcome(missing)["code"] == "not-found"
    patch = http.patch("/Patient/p1", headers=auth)
    assert patch.status_code == 405 and outcome(patch)["code"] == "not-supported"


def test_stopping_the_gateway_closes_the_rest_port(loop, issuer, tmp_path):
    settings = GatewaySettings(
        server=ServerSettings(port=0),
        rest=RestSettings(enabled=True, port=0),
        auth=AuthSettings(issuer=issuer.issuer, jwks_file=issuer.jwks_path),
        state=StateSettings(url=f"sqlite:///{tmp_path}/state.db"),
    )
    with running_gateway(loop, settings, [("memory", MemoryAdapter([]))]) as gw:
        port = gw.rest_port
        assert httpx.get(f"http://127.0.0.1:{port}/metadata").status_code == 200
        assert (
            httpx.get(f"http://127.0.0.1:{port}/.well-known/smart-configuration").status_code == 404
        )
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
