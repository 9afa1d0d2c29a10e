"""The tool registry core: list, describe and invoke tools under the gateway's policy and audit.

Every transport (the ToolRegistry gRPC servicer; ``his mcp`` through it) enters here. An
invocation is authorized like a FHIR call (the SMART scope of the tool's required permission,
then the Oso policy on its ``action:Type``), validated against the tool's input schema, and
recorded as an ``AuditAction.OPERATION`` named ``tool:<name>``, refused or not. High-risk
tools never act directly: those that propose (the FHIR write tools) queue the call for human
approval and answer with the Task; any other high-risk tool is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jsonschema

import his_sdk.errors
from his_sdk.adapter import TypeCapability
from his_sdk.audit import AuditAction
from his_sdk.auth import Principal
from his_sdk.config import ToolSettings
from his_sdk.policy import AccessRequest, PolicyEngine
from his_sdk.tools._fhir_tools import fhir_tools
from his_sdk.tools._model import RiskLevel, ToolDescriptor, ValidationStatus
from his_sdk.tools._tool import ModelToolSource, Tool, ToolCall, ToolOutcome, load_function_tool
from his_sdk.tools.calculators import SHIPPED_CALCULATORS

if TYPE_CHECKING:
    from his_sdk.server._auditing import CallAuditor
    from his_sdk.server._context import CallContext
    from his_sdk.server._service import FhirService

__all__ = ["ToolRegistry"]

# Denials that hold whatever patient the call is about: the caller may not use the tool at
# all. Other denials (care team, consent, population) depend on the patient and are decided
# per call by the FHIR service.
_TOOL_LEVEL_DENIALS = frozenset(
    {
        "unsupported_action",
        "insufficient_scope",
        "patient_context_missing",
        "patient_context_mismatch",
        "role_not_permitted",
        "system_role_required",
    }
)
_MAX_ARGUMENT_BYTES = 1024 * 1024
_MAX_JUSTIFICATION = 4000


class ToolRegistry:
    """The tools of one gateway, and the one way to invoke them.

    Args:
        tools: The tools served; names must be unique.
        policy: The gateway's policy engine.
        auditor: Records each invocation (a no-op auditor when auditing is off).
        approvals_configured: Whether an approval queue takes proposed writes.

    Raises:
        ValueError: Two tools share a name.
    """

    def __init__(
        self,
        tools: Iterable[Tool],
        *,
        policy: PolicyEngine,
        auditor: CallAuditor,
        approvals_configured: bool,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            name = tool.descriptor.name
            if name in self._tools:
                raise ValueError(f"tool {name!r} is registered twice")
            self._tools[name] = tool
        self._policy = policy
        self._auditor = auditor
        self._approvals = approvals_configured
        self._validators = {
            name: jsonschema.Draft202012Validator(tool.descriptor.input_schema)
            for name, tool in self._tools.items()
        }
        self._output_validators = {
            name: jsonschema.Draft202012Validator(tool.descriptor.output_schema)
            for name, tool in self._tools.items()
        }

    @classmethod
    def from_settings(
        cls,
        settings: ToolSettings,
        *,
        service: FhirService,
        types: Mapping[str, TypeCapability],
        max_count: int,
        policy: PolicyEngine,
        auditor: CallAuditor,
        approvals_configured: bool,
        model_tools: ModelToolSource | None = None,
    ) -> ToolRegistry:
        """The FHIR tools of the served types, the shipped calculators and integrator tools.

        ``model_tools`` adds the tools of an extension (the inference bridge's models).

        Raises:
            ValueError: An integrator tool cannot be imported, or names collide.
            FileNotFoundError: A descriptor file is missing.
            pydantic.ValidationError: A descriptor is invalid.
        """
        tools: list[Tool] = []
        if settings.fhir:
            tools.extend(fhir_tools(service, types, max_count=max_count))
        if settings.calculators:
            tools.extend(load_function_tool(i, d) for i, d in SHIPPED_CALCULATORS)
        tools.extend(
            load_function_tool(t.implementation, t.descriptor) for t in settings.registered
        )
        if model_tools is not None:
            tools.extend(model_tools.tools())
        return cls(tools, policy=policy, auditor=auditor, approvals_configured=approvals_configured)

    def names(self) -> list[str]:
        """Every tool name, sorted."""
        return sorted(self._tools)

    def list_tools(
        self,
        call: CallContext,
        *,
        max_risk: RiskLevel | None = None,
        category: str | None = None,
        validation_status: ValidationStatus | None = None,
        invocable_only: bool = False,
    ) -> list[ToolDescriptor]:
        """Descriptors matching every filter given, by name.

        Args:
            call: The calling context (an authenticated principal is required).
            max_risk: Only tools at this risk or lower.
            category: Only this category (``calculator``, ``fhir.search``, ...).
            validation_status: Only tools with this validation status.
            invocable_only: Only tools the caller's scopes and roles permit.

        Raises:
            his_sdk.errors.AuthenticationError: No principal.
        """
        principal = _require_principal(call)
        found = []
        for name in sorted(self._tools):
            descriptor = self._tools[name].descriptor
            if max_risk is not None and descriptor.risk.rank > max_risk.rank:
                continue
            if category and descriptor.category != category:
                continue
            if validation_status is not None and descriptor.validation.status != validation_status:
                continue
            if invocable_only and self._denial(principal, descriptor) is not None:
                continue
            found.append(descriptor)
        return found

    def get_tool(self, call: CallContext, name: str) -> ToolDescriptor:
        """One tool's descriptor.

        Raises:
            his_sdk.errors.AuthenticationError: No principal.
            his_sdk.errors.NotFoundError: No such tool.
        """
        _require_principal(call)
        return self._tool(name).descriptor

    async def invoke(
        self,
        call: CallContext,
        name: str,
        arguments: Mapping[str, Any] | str | bytes,
        *,
        justification: str | None = None,
        idempotency_key: str | None = None,
    ) -> ToolOutcome:
        """Authorize, validate and run one tool call, or queue it for approval.

        Args:
            call: The calling context.
            name: The tool.
            arguments: The arguments object (or its JSON text).
            justification: Why the agent calls the tool; required for high-risk tools.
            idempotency_key: Repeating a high-risk call with the same key returns the same Task.

        Raises:
            his_sdk.errors.AuthenticationError: No principal.
            his_sdk.errors.NotFoundError: No such tool.
            his_sdk.errors.PermissionDeniedError: The caller may not invoke the tool.
            his_sdk.errors.InvalidRequestError: Arguments do not match the input schema or
                fail the tool's own checks; a high-risk call without justification.
            his_sdk.errors.PreconditionFailedError: A high-risk tool with no approval queue
                to hold it.
        """
        tool = self._tool(name)
        descriptor = tool.descriptor
        resource_type = descriptor.permission.resource_type
        async with self._auditor.audit(
            call, AuditAction.OPERATION, resource_type, operation=f"tool:{name}"
        ) as notes:
            principal = _require_principal(call)
            denial = self._denial(principal, descriptor)
            if denial is not None:
                raise his_sdk.errors.PermissionDeniedError(
                    f"tool {name} is not permitted: {denial}",
                    diagnostics=f"requires {descriptor.permission.smart_scope} and "
                    f"{descriptor.permission.oso_permission}",
                )
            parsed = self._arguments(name, arguments)
            if descriptor.risk is RiskLevel.HIGH:
                justification = _check_justification(name, justification)
                if not tool.proposes:
                    raise his_sdk.errors.PreconditionFailedError(
                        f"tool {name} is high risk and needs human approval, but the approval "
                        "queue holds FHIR writes only; ask an integrator to lower its risk or "
                        "offer it as a FHIR write"
                    )
                if not self._approvals:
                    raise his_sdk.errors.PreconditionFailedError(
                        f"tool {name} is high risk and needs human approval, but approvals "
                        "are not configured on this gateway"
                    )
            outcome = await tool.run(ToolCall(call, parsed, justification, idempotency_key))
            notes.add_patients(outcome.patients)
            if outcome.result is not None:
                self._check_output(name, outcome.result)
            return outcome

    def _tool(self, name: str) -> Tool:
        tool = self._tools.get(name)
        if tool is None:
            raise his_sdk.errors.NotFoundError(
                f"no tool named {name!r}; list the tools to see what this gateway offers"
            )
        return tool

    def _denial(self, principal: Principal, descriptor: ToolDescriptor) -> str | None:
        permission = descriptor.permission
        missing = [
            letter
            for letter in permission.scope_letters
            if not principal.scopes_for(permission.scope_type, letter)
        ]
        if missing:
            return (
                f"token lacks a scope granting {''.join(missing)} on {permission.scope_type} "
                f"(e.g. {permission.smart_scope})"
            )
        request = AccessRequest(permission.action, permission.resource_type, principal.patient)
        decision = self._policy.decide(principal, request, None)
        if decision.allowed or decision.reason_code not in _TOOL_LEVEL_DENIALS:
            return None
        return decision.message or "access denied by policy"

    def _arguments(self, name: str, arguments: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
        if isinstance(arguments, str | bytes):
            if len(arguments) > _MAX_ARGUMENT_BYTES:
                raise his_sdk.errors.InvalidRequestError(
                    f"the arguments of {name} are larger than {_MAX_ARGUMENT_BYTES} bytes"
                )
            try:
                parsed = json.loads(arguments) if arguments else {}
            except ValueError as exc:
                raise his_sdk.errors.InvalidRequestError(
                    f"the arguments of {name} are not valid JSON"
                ) from exc
        else:
            parsed = dict(arguments)
        if not isinstance(parsed, dict):
            raise his_sdk.errors.InvalidRequestError(f"the arguments of {name} must be an object")
        error = jsonschema.exceptions.best_match(self._validators[name].iter_errors(parsed))
        if error is not None:
            where = _path(error.absolute_path)
            raise his_sdk.errors.InvalidRequestError(
                f"invalid arguments for {name}: {error.message}"
                + (f" (at {where})" if where else ""),
                expression=[where] if where else None,
            )
        return parsed

    def _check_output(self, name: str, result: dict[str, Any]) -> None:
        error = jsonschema.exceptions.best_match(self._output_validators[name].iter_errors(result))
        if error is not None:
            raise his_sdk.errors.HisError(
                f"tool {name} returned a result that does not match its output schema",
                diagnostics=error.message,
            )


def _require_principal(call: CallContext) -> Principal:
    if call.principal is None:
        raise his_sdk.errors.AuthenticationError("a bearer token is required")
    return call.principal


def _check_justification(name: str, text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        raise his_sdk.errors.InvalidRequestError(
            f"tool {name} is high risk: give a justification a reviewer can judge",
            expression=["justification"],
        )
    if len(text) > _MAX_JUSTIFICATION:
        raise his_sdk.errors.InvalidRequestError(
            f"the justification is longer than {_MAX_JUSTIFICATION} characters",
            expression=["justification"],
        )
    return text


def _path(parts: Sequence[Any] | Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts)
