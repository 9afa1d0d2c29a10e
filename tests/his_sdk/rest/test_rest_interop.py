"""Clients nobody here wrote read, search and page through the facade: fhirpy and fhirclient."""

from __future__ import annotations

import pytest
from fhirclient.models.bundle import Bundle as FcBundle
from fhirclient.models.observation import Observation as FcObservation
from fhirclient.models.patient import Patient as FcPatient
from fhirclient.server import FHIRServer, FHIRUnauthorizedException
from fhirpy import AsyncFHIRClient, SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ForbiddenError, OperationOutcome

ALL_P1 = sorted([f"lab{i}" for i in range(5)] + [f"vs{i}" for i in range(3)])


def test_fhirpy_sync_reads_searches_and_pages(base, mint):
    client = SyncFHIRClient(base, authorization=f"Bearer {mint()}")
    patient = client.reference("Patient", "p1").to_resource()
    assert patient["name"][0]["family"] == "One" and patient.id == "p1"
    labs = client.resources("Observation").search(patient="p1", category="laboratory")
    assert labs.count() == 5
    # limit() sets _count; fetch_all() follows the Bundle's next links to the end.
    everything = client.resources("Observation").search(patient="p1").limit(3).fetch_all()
    assert sorted(o.id for o in everything) == ALL_P1
    first_page = client.resources("Observation").search(patient="p1").limit(3).fetch()
    assert len(first_page) == 3


def test_fhirpy_sync_sees_policy_denials(base, mint):
    client = SyncFHIRClient(base, authorization=f"Bearer {mint()}")
    with pytest.raises(ForbiddenError, match="care team"):
        client.reference("Patient", "p2").to_resource()
    with pytest.raises(AuthorizationError):
        SyncFHIRClient(base).resources("Patient").search(_id="p1").fetch()
    with pytest.raises(OperationOutcome, match="not-supported"):
        client.resources("Observation").search(patient="p1", **{"value-quantity": "5"}).fetch()


async def test_fhirpy_async_reads_searches_and_pages(base, mint):
    client = AsyncFHIRClient(base, authorization=f"Bearer {mint()}")
    patient = await client.reference("Patient", "p1").to_resource()
    assert patient["gender"] == "female"
    seen = [o.id async for o in client.resources("Observation").search(patient="p1").limit(2)]
    assert sorted(seen) == ALL_P1
    vitals = client.resources("Observation").search(category="vital-signs", patient="p1")
    assert await vitals.count() == 3
    elements = await client.resources("Observation").search(patient="p1").elements("code").fetch()
    assert all("valueQuantity" not in o for o in elements)


def _fhirclient_server(base: str, token: str | None) -> FHIRServer:
    server = FHIRServer(None, base_uri=base + "/")
    if token:
        server.session.headers["Authorization"] = f"Bearer {token}"
    return server


def test_fhirclient_reads_searches_and_pages(base, mint, gateway):
    server = _fhirclient_server(base, mint())
    try:
        patient = FcPatient.read("p1", server)
        assert patient.name[0].family == "One" and patient.gender == "female"
        pages = FcObservation.where(struct={"patient": "p1", "_count": "3"}).perform_iter(server)
        bundles = list(pages)
        assert all(isinstance(b, FcBundle) for b in bundles)
        assert [len(b.entry) for b in bundles] == [3, 3, 2]
        ids = [
            o.id
            for o in FcObservation.where(
                struct={"patient": "p1", "_count": "3"}
            ).perform_resources_iter(server)
        ]
        assert sorted(ids) == ALL_P1
        statement = server.capabilityStatement
        assert {r.type for r in statement.rest[0].resource} == {"Patient", "Observation"}
        # fhirclient found the token endpoint in the SMART oauth-uris extension.
        assert (
            server.auth is not None
            and server.auth._token_uri == gateway.settings.rest.token_endpoint
        )
    finally:
        server.session.close()


def test_fhirclient_without_token_is_unauthorized(base):
    server = _fhirclient_server(base, None)
    try:
        with pytest.raises(FHIRUnauthorizedException):
            FcPatient.read("p1", server)
    finally:
        server.session.close()
