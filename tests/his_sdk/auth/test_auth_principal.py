"""How verified claims become a Principal, and the dev issuer's key directory."""

from __future__ import annotations

import datetime
import json
import stat

import pytest

import his_sdk.auth
import his_sdk.config
import his_sdk.errors
from his_sdk.auth import Actor, DevIssuer, TokenVerifier

AUDIENCE = "his-gateway"


def test_exports_are_pinned():
    assert set(his_sdk.auth.__all__) == {
        "INTERACTION_LETTERS",
        "SUPPORTED_ALGORITHMS",
        "Actor",
        "DevIssuer",
        "FileKeySource",
        "KeyRing",
        "KeySource",
        "Principal",
        "SmartScope",
        "TokenVerifier",
        "UrlKeySource",
        "parse_scopes",
    }
    for name in his_sdk.auth.__all__:
        assert getattr(his_sdk.auth, name) is not None


@pytest.fixture
def verify(shared_issuer, file_settings):
    async def _verify(settings_overrides=None, **mint_kwargs):
        verifier = TokenVerifier(file_settings(shared_issuer, **(settings_overrides or {})))
        mint_kwargs.setdefault("client_id", "ward-agent")
        mint_kwargs.setdefault("scopes", "user/Observation.rs")
        return await verifier.verify(shared_issuer.mint(audience=AUDIENCE, **mint_kwargs))

    return _verify


async def test_every_claim_lands_in_its_field(verify):
    principal = await verify(
        scopes="openid fhirUser launch/patient patient/Observation.rs?category=laboratory "
        "user/Patient.read",
        roles=["clinician", "nurse"],
        patient="p42",
        act_subject="dr-who",
        act_fhir_user="Practitioner/12",
        fhir_user="Device/agent-7",
        purpose_of_use=["TREAT", "ETREAT"],
        ttl_seconds=600,
    )
    assert principal.client_id == "ward-agent"
    assert principal.subject == "ward-agent"
    assert principal.on_behalf_of == Actor(subject="dr-who", fhir_user="Practitioner/12")
    assert principal.fhir_user == "Device/agent-7"
    assert [s.raw for s in principal.scopes] == [
        "patient/Observation.rs?category=laboratory",
        "user/Patient.read",
    ]
    assert principal.other_scopes == ("openid", "fhirUser", "launch/patient")
    assert principal.roles == frozenset({"clinician", "nurse"})
    assert principal.patient == "p42"
    assert principal.purpose_of_use == ("TREAT", "ETREAT")
    assert principal.issuer.startswith("https://")
    assert len(principal.token_id) == 32
    left = principal.expires_at - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(seconds=590) < left <= datetime.timedelta(seconds=600)
    assert principal.acting_user == "Practitioner/12"


async def test_client_id_falls_back_to_azp_then_sub(verify):
    principal = await verify(extra_claims={"client_id": None, "azp": "azp-agent"})
    assert principal.client_id == "azp-agent"
    principal = await verify(extra_claims={"client_id": None, "sub": "svc-account"})
    assert (principal.client_id, principal.subject) == ("svc-account", "svc-account")


async def test_acting_user_prefers_the_actor(verify):
    assert (await verify(fhir_user="Practitioner/1")).acting_user == "Practitioner/1"
    principal = await verify(fhir_user="Practitioner/1", act_fhir_user="Practitioner/2")
    assert principal.acting_user == "Practitioner/2"
    assert principal.on_behalf_of == Actor(subject="Practitioner/2", fhir_user="Practitioner/2")
    assert (await verify(act_subject="nobody")).acting_user is None


async def test_nested_act_the_outermost_is_the_current_actor(verify):
    act = {
        "sub": "dr-now",
        "fhirUser": "Practitioner/3",
        "name": "Dr Now",
        "act": {"sub": "dr-before", "act": {"sub": "scheduler-service"}},
    }
    principal = await verify(extra_claims={"act": act})
    assert principal.on_behalf_of == Actor("dr-now", "Practitioner/3", "Dr Now")
    assert principal.prior_actors == (Actor("dr-before"), Actor("scheduler-service"))
    assert principal.acting_user == "Practitioner/3"


async def test_deeply_nested_act_is_refused(verify):
    act: dict = {"sub": "last"}
    for i in range(10):
        act = {"sub": f"a{i}", "act": act}
    with pytest.raises(his_sdk.errors.AuthenticationError, match="malformed act claim"):
        await verify(extra_claims={"act": act})


async def test_purpose_of_use_and_roles_may_be_space_separated(verify):
    principal = await verify(
        extra_claims={"purpose_of_use": "TREAT HPAYMT", "roles": "nurse pharmacist"}
    )
    assert principal.purpose_of_use == ("TREAT", "HPAYMT")
    assert principal.roles == frozenset({"nurse", "pharmacist"})


async def test_roles_claim_is_configurable_and_may_be_nested(verify):
    principal = await verify(
        {"roles_claim": "realm_access.roles"},
        extra_claims={"realm_access": {"roles": ["researcher"]}, "roles": ["clinician"]},
    )
    assert principal.roles == frozenset({"researcher"})
    principal = await verify({"roles_claim": "groups"}, extra_claims={"groups": ["nurse"]})
    assert principal.roles == frozenset({"nurse"})


async def test_scp_list_is_read_when_scope_is_absent(verify):
    principal = await verify(extra_claims={"scope": None, "scp": ["user/Patient.rs", "openid"]})
    assert [s.raw for s in principal.scopes] == ["user/Patient.rs"]
    assert principal.other_scopes == ("openid",)


async def test_scopes_for_and_contexts(verify):
    principal = await verify(
        scopes="patient/Observation.rs user/Observation.r system/*.s patient/Condition.rs"
    )
    assert [s.raw for s in principal.scopes_for("Observation", "s")] == [
        "patient/Observation.rs",
        "system/*.s",
    ]
    assert principal.scope_contexts_for("Observation", "r") == ["user", "patient"]
    assert principal.scope_contexts_for("Observation", "search") == ["system", "patient"]
    assert principal.scope_contexts_for("Observation", "c") == []
    assert principal.has_role("clinician") is False


def test_dev_issuer_files_and_permissions(tmp_path):
    issuer = DevIssuer.init(tmp_path / "idp", issuer="https://idp.example.test")
    private = tmp_path / "idp" / "signing-keys.json"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "idp").stat().st_mode) == 0o700
    published = json.loads(issuer.jwks_path.read_text())
    assert [k["kid"] for k in published["keys"]] == [issuer.active_kid]
    assert all("d" not in k for k in published["keys"])
    assert published["keys"][0]["alg"] == "RS256"

    loaded = DevIssuer.load(tmp_path / "idp")
    assert (loaded.issuer, loaded.active_kid) == (issuer.issuer, issuer.active_kid)

    first = issuer.active_kid
    second = issuer.rotate()
    assert issuer.kids == (first, second)
    assert DevIssuer.load(tmp_path / "idp").active_kid == second
    with pytest.raises(ValueError, match="active key"):
        issuer.retire(second)
    issuer.retire(first)
    assert [k["kid"] for k in json.loads(issuer.jwks_path.read_text())["keys"]] == [second]
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert list((tmp_path / "idp").glob(".*tmp")) == []


def test_dev_issuer_init_replaces_and_load_refuses_empty_directories(tmp_path):
    first = DevIssuer.init(tmp_path, issuer="https://a.example")
    second = DevIssuer.init(tmp_path, issuer="https://b.example")
    assert first.active_kid != second.active_kid
    assert DevIssuer.load(tmp_path).issuer == "https://b.example"
    with pytest.raises(FileNotFoundError):
        DevIssuer.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="unsupported key type"):
        DevIssuer.init(tmp_path / "x", issuer="https://c.example", key_type="HS256")


@pytest.mark.parametrize("key_type", ["ES256", "ES384", "PS256", "Ed25519"])
async def test_dev_issuer_key_types_verify(tmp_path, key_type):
    issuer = DevIssuer.init(tmp_path, issuer="https://idp.example.test", key_type=key_type)
    settings = his_sdk.config.AuthSettings(
        issuer=issuer.issuer, audience=AUDIENCE, jwks_file=issuer.jwks_path, algorithms=[key_type]
    )
    token = issuer.mint(client_id="a", audience=AUDIENCE, scopes="user/Patient.r")
    assert (await TokenVerifier(settings).verify(token)).client_id == "a"
