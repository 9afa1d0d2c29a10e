"""Shared values for the audit tests: a principal and context builders."""

from __future__ import annotations

from his_sdk.audit import AuditAction, AuditContext, AuditPrincipal, AuditUser

PRINCIPAL = AuditPrincipal(
    client_id="agent-7",
    issuer="http://127.0.0.1/test-issuer",
    token_id="jti-123",
    user=AuditUser("user-42", "Practitioner/dr1", "Dr One"),
    roles=("clinician",),
    purpose_of_use=("TREAT",),
)


def read_ctx(patient: str, resource_id: str, **kwargs) -> AuditContext:
    return AuditContext(
        action=AuditAction.READ,
        principal=PRINCIPAL,
        resource_type="Observation",
        resource_ids=(resource_id,),
        patient_ids=(patient,),
        client_address="ipv4:127.0.0.1:40000",
        **kwargs,
    )
