"""The bridge as a gateway extension: built from the gateway's settings, audited by its trail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

import his_sdk.adapter
import his_sdk.policy
from his_sdk.audit import (
    AuditAction,
    AuditContext,
    AuditOutcome,
    AuditPrincipal,
    AuditTrail,
    outcome_for_error,
)
from inference_bridge._audit import InferenceAuditRecord
from inference_bridge._bridge import InferenceBridge
from inference_bridge._servicer import INFERENCE_SERVICE, add_to_server
from inference_bridge._settings import InferenceSettings
from inference_bridge._tools import ModelTools

__all__ = ["GatewayInference", "gateway_extension"]

_ANONYMOUS = AuditPrincipal(client_id="unauthenticated")


class _TrailSink:
    """Turns each model run into an audited OPERATION (``$infer`` or ``$consult``)."""

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail

    async def __call__(self, record: InferenceAuditRecord) -> None:
        principal = (
            AuditPrincipal.from_principal(record.principal) if record.principal else _ANONYMOUS
        )
        outcome, text = (
            (AuditOutcome.SUCCESS, None)
            if record.error is None
            else outcome_for_error(record.error)
        )
        prefix = f"{record.output_type}/" if record.output_type else ""
        ids = tuple(r.removeprefix(prefix) for r in record.result_ids if r.startswith(prefix))
        context = AuditContext(
            action=AuditAction.OPERATION,
            operation=f"${record.operation}",
            principal=principal,
            resource_type=record.output_type or None,
            resource_ids=ids if prefix else (),
            patient_ids=(record.patient_id,) if record.patient_id else (),
            request_id=record.request_id,
            outcome=outcome,
            outcome_text=text,
        )
        await self._trail.record(context)


class GatewayInference:
    """Lifecycle and gRPC registration of a bridge inside a gateway."""

    def __init__(self, bridge: InferenceBridge) -> None:
        self.bridge = bridge

    async def start(self) -> None:
        """Open the backends' channels and load the local models."""
        await self.bridge.start()

    async def close(self) -> None:
        """Close every backend."""
        await self.bridge.close()

    def tool_source(self) -> ModelTools:
        """The catalog's models as tools of the gateway's registry (``infer_<model>``)."""
        return ModelTools(self.bridge)

    def add_to_server(self, server: grpc.aio.Server) -> list[str]:
        """Register InferenceService; return the service names for reflection."""
        add_to_server(server, self.bridge)
        return [INFERENCE_SERVICE]


def gateway_extension(
    settings: Mapping[str, Any],
    *,
    policy: his_sdk.policy.PolicyEngine,
    facts: his_sdk.adapter.PatientFactsProvider | None,
    audit: AuditTrail | None,
    facts_ttl_seconds: float,
) -> GatewayInference:
    """Build the bridge from the ``inference.settings`` mapping of the gateway config.

    Raises:
        pydantic.ValidationError: The settings are invalid; the message names the key.
    """
    parsed = InferenceSettings.model_validate(dict(settings))
    bridge = InferenceBridge(
        parsed,
        policy=policy,
        facts=facts,
        audit=_TrailSink(audit) if audit is not None else None,
        facts_ttl_seconds=facts_ttl_seconds,
    )
    return GatewayInference(bridge)
