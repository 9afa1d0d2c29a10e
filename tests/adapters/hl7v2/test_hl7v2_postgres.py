import pytest
from hl7v2_helpers import Client, adt, sample

from adapters.hl7v2 import MessageFilter, MessageStatus, read_ack
from his_sdk.search import SearchQuery, parse_criteria

pytestmark = pytest.mark.postgres


async def test_ingest_duplicate_and_search_on_postgres(make_adapter, pg_url):
    adapter = await make_adapter(database_url=pg_url)
    client = Client(adapter.listener_port)
    assert read_ack(await client.send(adt("PG1", mrn="PGM"))).code == "AA"
    assert read_ack(await client.send(adt("PG1", mrn="PGM"))).code == "AA"
    assert read_ack(await client.send(sample("LAB-ORU-1.hl7"))).code == "AA"
    rows = await adapter.find_messages(MessageFilter(control_id="PG1"))
    assert [r.status for r in rows] == [MessageStatus.CONVERTED, MessageStatus.DUPLICATE]
    defs = adapter.capabilities().types["Observation"].search_params
    query = SearchQuery(
        "Observation",
        parse_criteria("Observation", [("code", "11273-0"), ("date", "ge2014")], defs),
        10,
    )
    page = await adapter.search(query)
    assert len(page.resources) == 1
    names = adapter.capabilities().types["Patient"].search_params
    page = await adapter.search(
        SearchQuery(
            "Patient", parse_criteria("Patient", [("name", "DUCK")], names), 10, include_total=True
        )
    )
    assert page.total == 1
    await client.close()
