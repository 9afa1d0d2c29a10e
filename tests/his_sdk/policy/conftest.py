"""The shipped policy and principals built the way the token verifier builds them."""

from __future__ import annotations

import datetime

import pytest

from his_sdk.auth import Actor, Principal, parse_scopes
from his_sdk.config import PolicySettings
from his_sdk.policy import PolicyEngine


@pytest.fixture(scope="session")
def engine() -> PolicyEngine:
    return PolicyEngine.from_settings(PolicySettings())


@pytest.fixture(scope="session")
def principal():
    def make(
        scopes: str,
        *,
        roles=(),
        patient: str | None = None,
        act: str | None = None,
        fhir_user: str | None = None,
    ) -> Principal:
        resource_scopes, other = parse_scopes(scopes)
        return Principal(
            client_id="ward-agent",
            subject="ward-agent",
            on_behalf_of=Actor(subject=act, fhir_user=act) if act else None,
            fhir_user=fhir_user,
            scopes=resource_scopes,
            other_scopes=other,
            roles=frozenset(roles),
            patient=patient,
            token_id="jti-1",
            issuer="https://idp.example.test",
            expires_at=datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC),
        )

    return make
