import asyncio

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from hl7v2_helpers import adt, sample

import his_sdk.errors
from adapters.hl7v2 import Hl7v2Adapter, MessageFilter, MessageStatus, read_ack
from his_sdk.adapter import Adapter, Interaction
from his_sdk.search import SearchQuery, parse_criteria


def q(adapter, rtype, *params, count=50, position=None, total=False):
    defs = adapter.capabilities().types[rtype].search_params
    return SearchQuery(rtype, parse_criteria(rtype, params, defs), count, position, total)


async def _load(adapter, client):
    await client.conn.connect()
    for data in (
        adt("A1", mrn="MRN1"),
        adt("A2", mrn="MRN2"),
        sample("LAB-ORU-1.hl7"),
        sample("VXU.hl7"),
        sample("MDM-T02-01.hl7"),
        sample("siu_s12_ex1.hl7"),
        sample("rde_o01_ex3.hl7"),
        sample("oml_o21_ex1.hl7"),
    ):
        await client.conn.send(data)
    # VXU asks for commit ACKs only on error (MSH-15 ER): count the replies that come.
    await client.conn.send(adt("LAST", mrn="MRN9"))
    codes = []
    while not codes or read_ack(codes[-1]).control_id != "LAST":
        codes.append(await client.conn.receive(10))
    assert len(codes) == 8
    # The enhanced-mode VXU converts in the background: wait until nothing is pending.
    for _ in range(100):
        if not await asyncio.to_thread(adapter.store.pending_ids, 1):
            break
        await asyncio.sleep(0.02)


def test_protocol_and_capabilities():
    adapter = Hl7v2Adapter.from_settings({"database_url": "sqlite:///:memory:"})
    assert isinstance(adapter, Adapter)
    caps = adapter.capabilities()
    assert set(caps.types) >= {
        "Patient",
        "Encounter",
        "Observation",
        "DiagnosticReport",
        "MedicationRequest",
        "Immunization",
        "Appointment",
        "DocumentReference",
        "ServiceRequest",
        "AllergyIntolerance",
        "Condition",
    }
    assert Interaction.CREATE not in caps.types["MedicationRequest"].interactions
    assert caps.statement_fragment()[0]["searchParam"]


async def test_read_and_search(adapter, client):
    await _load(adapter, client)
    page = await adapter.search(q(adapter, "Patient", ("identifier", "MRN1")))
    assert len(page.resources) == 1
    patient = page.resources[0]
    assert isinstance(patient, Patient)
    assert patient.birthDate.isoformat() == "1980-02-14" and patient.gender == "female"
    again = await adapter.read("Patient", patient.id)
    assert again.id == patient.id
    assert len((await adapter.search(q(adapter, "Patient", ("family", "do")))).resources) == 3
    assert len((await adapter.search(q(adapter, "Patient", ("name:exact", "jane")))).resources)
    assert (
        await adapter.search(
            q(adapter, "Patient", ("birthdate", "ge1980-02-14"), ("gender", "female"))
        )
    ).resources
    enc = await adapter.search(q(adapter, "Encounter", ("patient", patient.id)))
    assert enc.resources[0].class_fhir.code == "IMP"
    obs = await adapter.search(q(adapter, "Observation", ("code", "http://loinc.org|11273-0")))
    assert isinstance(obs.resources[0], Observation)
    assert float(obs.resources[0].valueQuantity.value) == pytest.approx(4.06)
    dated = await adapter.search(
        q(adapter, "Observation", ("date", "ge2014-10-05"), ("date", "lt2014-10-07"))
    )
    assert len(dated.resources) >= 5
    assert not (await adapter.search(q(adapter, "Observation", ("date", "lt2000")))).resources
    for rtype in (
        "DiagnosticReport",
        "Immunization",
        "DocumentReference",
        "Appointment",
        "MedicationRequest",
        "ServiceRequest",
        "Condition",
    ):
        assert (await adapter.search(q(adapter, rtype))).resources, rtype


async def test_paging_and_total(adapter, client):
    await _load(adapter, client)
    seen = []
    position = None
    while True:
        page = await adapter.search(
            q(adapter, "Observation", count=4, position=position, total=True)
        )
        seen += [r.id for r in page.resources]
        assert page.total == 10 + 4 + 0 or page.total >= len(seen)
        position = page.next_position
        if position is None:
            break
    assert len(seen) == len(set(seen)) == page.total


async def test_errors(adapter):
    with pytest.raises(his_sdk.errors.NotFoundError):
        await adapter.read("Patient", "nope")
    with pytest.raises(his_sdk.errors.UnsupportedError):
        await adapter.read("Medication", "x")
    with pytest.raises(his_sdk.errors.UnsupportedParameterError):
        q(adapter, "Patient", ("colour", "red"))
    with pytest.raises(his_sdk.errors.UnsupportedError):
        from his_sdk.adapter import ApprovedWrite

        await adapter.execute(ApprovedWrite("k", Interaction.CREATE, "MedicationRequest"))
    assert (await adapter.health()).state.value == "serving"


async def test_merge_a40(adapter, client):
    old_adt = adt("M-old", mrn="56789").replace(b"^^^HOSP^MR", b"^^^BCBS^MR")
    await client.send(old_adt.replace(b"20240102030405+0000", b"20180101000000+0000", 1))
    await client.conn.send(sample("ADT-A40-02.hl7"))  # MSH-15 NE: no commit ACK
    assert read_ack(await client.send(adt("sync"))).control_id == "sync"
    # Enhanced-mode messages convert after the commit ACK, in the background.
    for _ in range(100):
        rows = await adapter.find_messages(MessageFilter(control_id="8919-40"))
        if rows and rows[0].status is MessageStatus.CONVERTED:
            break
        await asyncio.sleep(0.05)
    merged = await adapter.search(q(adapter, "Patient", ("active", "false")))
    old = next(p for p in merged.resources if p.identifier[0].value == "56789")
    survivor = old.link[0].other.reference
    assert old.link[0].type == "replaced-by"
    assert old.name[0].family == "Doe"  # the rest of the old record is kept
    current = await adapter.read("Patient", survivor.split("/")[1])
    assert current.link[0].type == "replaces"


async def test_out_of_order_update_does_not_overwrite(adapter, client):
    newer = (
        adt("O2", mrn="OO")
        .replace(b"Doe^Jane", b"Newer^Name")
        .replace(b"20240102030405+0000", b"20240105000000+0000", 1)
    )
    await client.send(newer)
    await client.send(adt("O1", mrn="OO"))
    page = await adapter.search(q(adapter, "Patient", ("identifier", "OO")))
    assert page.resources[0].name[0].family == "Newer"


async def test_concept_map(make_adapter, tmp_path):
    cmap = tmp_path / "gender.json"
    cmap.write_text("""{"resourceType": "ConceptMap", "status": "active", "version": "3",
      "group": [{"source": "urn:hl7v2:authority:codesystem:LOCAL", "target": "http://loinc.org",
        "element": [{"code": "HGB", "target": [{"code": "718-7", "equivalence": "equivalent"}]}]
      }]}""")
    adapter = await make_adapter(concept_maps=[str(cmap)])
    from hl7v2_helpers import Client, hl7

    client = Client(adapter.listener_port)
    await client.send(
        hl7(
            "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|CM1|P|2.5.1",
            "PID|1||P1^^^H^MR||X^Y",
            "OBR|1|ORD1||PANEL^Panel^LOCAL",
            "OBX|1|NM|HGB^Hemoglobin^LOCAL||13.5|g/dL^^UCUM|||||F",
        )
    )
    page = await adapter.search(q(adapter, "Observation", ("code", "http://loinc.org|718-7")))
    assert len(page.resources) == 1
    rows = await adapter.find_messages()
    assert rows[0].mapping_version == adapter.mapping_version
    await client.close()
