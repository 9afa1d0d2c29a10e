import asyncio
import contextlib

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.servicerequest import ServiceRequest
from hl7v2_helpers import Client, adt

import his_sdk.errors
from adapters.hl7v2 import MessageFilter, OutboundStatus, build_ack, parse_message
from adapters.hl7v2._mllp import END_BLOCK, frame
from his_sdk.adapter import ApprovedWrite, Interaction


class Partner:
    """A scripted MLLP peer: answers per ``script`` entry ('AA', 'AE', 'AR', 'late', 'drop',
    'never'); the last entry repeats."""

    def __init__(self, script):
        self.script = list(script)
        self.received = []
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self):
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer):
        try:
            while True:
                data = await reader.readuntil(END_BLOCK)
                msg = parse_message(data[1:-2])
                self.received.append(msg.control_id)
                step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
                if step == "drop":
                    break
                if step == "never":
                    continue
                if step == "late":
                    await asyncio.sleep(0.6)
                    step = "AA"
                ack = build_ack(
                    step,
                    msg,
                    text="" if step == "AA" else "order refused",
                    error_code="" if step == "AA" else "207",
                )
                writer.write(frame(ack.to_er7().encode()))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _med(patient_id):
    return MedicationRequest.model_validate(
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{patient_id}"},
            "medicationCodeableConcept": {
                "coding": [
                    {
                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                        "code": "197361",
                        "display": "Amlodipine 5 MG Oral Tablet",
                    }
                ]
            },
            "dosageInstruction": [
                {
                    "text": "1 tablet daily",
                    "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
                }
            ],
        }
    )


async def _sender_adapter(make_adapter, port, **outbound):
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "ack_timeout_seconds": 0.3,
        "max_attempts": 3,
        "backoff_initial_seconds": 0.01,
        "backoff_max_seconds": 0.02,
        **outbound,
    }
    adapter = await make_adapter(outbound=settings)
    client = Client(adapter.listener_port)
    await client.send(adt("PAT", mrn="W1"))
    await client.close()
    from his_sdk.search import SearchQuery

    page = await adapter.search(SearchQuery("Patient"))
    patient = page.resources[0]
    return adapter, patient.id


async def test_write_back_to_real_peer(make_adapter):
    receiver = await make_adapter()
    sender, patient_id = await _sender_adapter(make_adapter, receiver.listener_port)
    write = ApprovedWrite(
        "approval-1", Interaction.CREATE, "MedicationRequest", resource=_med(patient_id)
    )
    outcome = await sender.execute(write)
    assert outcome.resource_type == "MedicationRequest" and "AA" in outcome.message
    stored = await sender.read("MedicationRequest", outcome.resource_id)
    assert stored.medicationCodeableConcept.coding[0].code == "197361"
    # The receiving instance converted the RDE^O11 into its own FHIR store.
    rows = await receiver.find_messages(MessageFilter(message_code="RDE"))
    assert len(rows) == 1 and rows[0].status.value == "converted"
    # Idempotent: the same key does not send twice.
    again = await sender.execute(write)
    assert again.resource_id == outcome.resource_id
    assert len(await receiver.find_messages(MessageFilter(message_code="RDE"))) == 1
    sr = ServiceRequest.model_validate(
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": f"Patient/{patient_id}"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "24317-0"}]},
        }
    )
    await sender.execute(
        ApprovedWrite("approval-2", Interaction.CREATE, "ServiceRequest", resource=sr)
    )
    oml = await receiver.find_messages(MessageFilter(message_code="OML"))
    assert oml[0].status.value == "converted"


@pytest.mark.parametrize("answer", ["AE", "AR"])
async def test_error_ack_reaches_caller(make_adapter, answer):
    partner = Partner([answer])
    port = await partner.start()
    sender, patient_id = await _sender_adapter(make_adapter, port)
    with pytest.raises(his_sdk.errors.PreconditionFailedError) as info:
        await sender.execute(
            ApprovedWrite(
                "k-" + answer, Interaction.CREATE, "MedicationRequest", resource=_med(patient_id)
            )
        )
    assert answer in info.value.message and "order refused" in info.value.diagnostics
    assert len(partner.received) == 1
    [record] = await sender.outbound_messages()
    assert record.status is OutboundStatus.REJECTED
    await partner.close()


@pytest.mark.parametrize("script", [["late", "AA"], ["drop", "AA"], ["never", "AA"]])
async def test_retry_keeps_control_id(make_adapter, script):
    partner = Partner(script)
    port = await partner.start()
    sender, patient_id = await _sender_adapter(make_adapter, port)
    outcome = await sender.execute(
        ApprovedWrite("retry", Interaction.CREATE, "MedicationRequest", resource=_med(patient_id))
    )
    assert "AA" in outcome.message
    assert len(partner.received) == 2 and len(set(partner.received)) == 1
    await partner.close()


async def test_never_answers_dead_letter_then_resend(make_adapter):
    partner = Partner(["never"])
    port = await partner.start()
    sender, patient_id = await _sender_adapter(make_adapter, port)
    write = ApprovedWrite(
        "dead", Interaction.CREATE, "MedicationRequest", resource=_med(patient_id)
    )
    with pytest.raises(his_sdk.errors.UpstreamUnavailableError):
        await sender.execute(write)
    assert len(partner.received) == 3
    [record] = await sender.outbound_messages(OutboundStatus.DEAD)
    assert record.attempts == 3 and "no acknowledgment" in record.last_error
    partner.script = ["AA"]
    outcome = await sender.execute(write)
    assert "AA" in outcome.message
    assert set(partner.received) == {record.control_id}
    await partner.close()
