"""Building an ApprovalService directly (no gateway), for crash and concurrency tests."""

from __future__ import annotations

import datetime
import uuid

from approval_service import ApprovalService, Database
from his_sdk.adapter import Interaction
from his_sdk.audit import AuditSettings, AuditTrail
from his_sdk.auth import Actor, Principal
from his_sdk.server import CallContext, ProposedWrite
from tests.approval_service.conftest import approval_settings


def principal(
    client_id: str,
    subject: str | None = None,
    *,
    roles: tuple[str, ...] = ("clinician",),
    act: str | None = None,
) -> Principal:
    return Principal(
        client_id=client_id,
        subject=subject or client_id,
        on_behalf_of=Actor(act, f"Practitioner/{act}") if act else None,
        fhir_user=None,
        scopes=(),
        other_scopes=(),
        roles=frozenset(roles),
        patient=None,
        token_id=uuid.uuid4().hex,
        issuer="http://127.0.0.1/test-issuer",
        expires_at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
    )


def call(who: Principal) -> CallContext:
    return CallContext(principal=who, request_id=uuid.uuid4().hex, peer="ipv4:127.0.0.1:1")


AGENT = principal("agent-1", act="dr.one")


def person(name: str, *roles: str) -> CallContext:
    return call(principal("console", name, roles=roles or ("clinician",)))


class NoAutoExecute(ApprovalService):
    """A replica that dies right after a decision commits: nothing executes it."""

    def _spawn_execution(self, request_id: str) -> None:
        return None


async def start_service(url, executor, *, cls=ApprovalService, **overrides) -> ApprovalService:
    overrides.setdefault("sweep_interval_seconds", 3600)
    database = Database(url)
    trail = AuditTrail(AuditSettings(instance_id="test"), engine=database.engine, publish=False)
    service = cls(
        database, settings=approval_settings(url, **overrides), executor=executor, audit=trail
    )
    await service.start()
    return service


async def propose(service: ApprovalService, resource, *, key: str | None = None) -> str:
    from his_sdk._fhir import model_class, patient_of

    model = model_class(resource["resourceType"]).model_validate(resource)
    result = await service.propose(
        ProposedWrite(
            call=call(AGENT),
            interaction=Interaction.CREATE,
            resource_type=resource["resourceType"],
            resource_id=None,
            resource=model,
            current=None,
            patient_id=patient_of(model),
            justification="test write",
            idempotency_key=key,
        )
    )
    return str(result.task.id)
