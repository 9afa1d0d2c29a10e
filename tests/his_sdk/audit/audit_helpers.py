"""Shared values for the audit tests: a principal and context builders."""

from __future__ import annotations

import pytest

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


# kafka-python 3.0.12 does not close a socket whose connect() is refused (kafka/net/inet.py,
# sock_connect raises without sock.close()), so every reconnect attempt while a broker is down
# leaves a socket for the garbage collector, which reports it as a ResourceWarning. Tests that
# take a broker away ignore exactly that warning, and request the `kafka_outage` fixture so the
# sockets are collected before the test ends rather than inside a later test.
BROKER_OUTAGE = [
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
    ),
    pytest.mark.usefixtures("kafka_outage"),
]


def broker_outage(test):
    """Apply the BROKER_OUTAGE marks to one test."""
    for mark in BROKER_OUTAGE:
        test = mark(test)
    return test
