"""The MCP server: the gateway's tool registry, as the calling agent may use it.

Nothing here holds an identity of its own. Every MCP request is answered by calling the
gateway's ToolRegistry over gRPC with the agent's own bearer token (fixed for stdio, taken
from each HTTP request for streamable HTTP), so the tool list is what that agent may invoke
and each call is authorized and audited by the gateway as the agent's.
"""

from __future__ import annotations

import contextvars
from typing import Any

import mcp.types as types
from fhir.resources.R4B.task import Task
from mcp.server.lowlevel import Server

import his_sdk
import his_sdk.errors
from his_sdk._fhir import resource_to_dict
from his_sdk.client import AsyncHisClient, TlsConfig
from his_sdk.mcp._budget import DEFAULT_MAX_RESULT_BYTES, budget_result, compact_json
from his_sdk.tools import RiskLevel, ToolDescriptor

__all__ = ["HisMcpServer"]

_JUSTIFICATION = {
    "type": "string",
    "minLength": 1,
    "maxLength": 4000,
    "description": "Why you call this tool; a human reviewer reads it before approving.",
}
_IDEMPOTENCY_KEY = {
    "type": "string",
    "maxLength": 200,
    "description": "Repeat a call with the same key to get the same approval Task back.",
}


class HisMcpServer:
    """Serves a gateway's tools over MCP, acting with the calling agent's token.

    Create it inside a running event loop (it opens a gRPC channel) and ``await close()``.

    Args:
        target: The gateway's gRPC ``host:port``.
        token: The agent's bearer token for every request (stdio); None takes it from each
            HTTP request's ``Authorization`` header (streamable HTTP).
        tls: TLS settings for the gateway channel.
        timeout: Deadline of each gateway call, in seconds.
        max_result_bytes: The context budget of one tool result.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: TlsConfig | None = None,
        timeout: float = 30.0,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        self._fixed_token = token
        self._current_token: contextvars.ContextVar[str] = contextvars.ContextVar("his_mcp_token")
        self._client = AsyncHisClient.connect(
            target, token=self._current_token.get, tls=tls, timeout=timeout
        )
        self._max_result_bytes = max_result_bytes
        self.server: Server[Any, Any] = Server(
            "his-gateway-tools",
            version=his_sdk.__version__,
            instructions=(
                "Tools of a hospital information system gateway. Every call is authorized "
                "and audited as yours. Search results are summaries, one page per call: pass "
                "'next_cursor' back as 'cursor' for more. High-risk tools do not act: they "
                "queue a request for human approval and return its FHIR Task."
            ),
        )
        # The SDK leaves its decorator factories unannotated.
        self.server.list_tools()(self._list_tools)  # type: ignore[no-untyped-call]
        self.server.call_tool(validate_input=False)(self._call_tool)

    async def close(self) -> None:
        """Close the gateway channel."""
        await self._client.close()

    def _use_callers_token(self) -> None:
        token = self._fixed_token
        if token is None:
            request = self.server.request_context.request
            header = request.headers.get("authorization", "") if request is not None else ""
            scheme, _, token = str(header).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise his_sdk.errors.AuthenticationError("a bearer token is required")
        self._current_token.set(token.strip())

    async def _list_tools(self) -> list[types.Tool]:
        self._use_callers_token()
        descriptors = await self._client.list_tools(invocable_only=True)
        return [_mcp_tool(d) for d in descriptors]

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        arguments = dict(arguments)
        justification = arguments.pop("justification", None)
        idempotency_key = arguments.pop("idempotency_key", None)
        try:
            self._use_callers_token()
            outcome = await self._client.invoke_tool(
                name,
                arguments,
                justification=str(justification) if justification is not None else None,
                idempotency_key=str(idempotency_key) if idempotency_key is not None else None,
            )
        except his_sdk.errors.HisError as exc:
            return _error_result(exc)
        if isinstance(outcome, Task):
            payload = _task_summary(outcome)
        else:
            read_tool = _read_tool_for(name)
            payload = budget_result(outcome, self._max_result_bytes, read_tool)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=compact_json(payload))],
            structuredContent=payload,
            isError=False,
        )


def _read_tool_for(name: str) -> str | None:
    if name.startswith("search_"):
        return "read_" + name.removeprefix("search_")
    return None


def _mcp_tool(descriptor: ToolDescriptor) -> types.Tool:
    schema = dict(descriptor.input_schema)
    description = descriptor.description
    facts = [
        f"Risk: {descriptor.risk.value}.",
        f"Validation: {descriptor.validation.status.value}.",
        f"Source: {descriptor.provenance.source or descriptor.provenance.owner} "
        f"(version {descriptor.provenance.version}).",
    ]
    if descriptor.risk is RiskLevel.HIGH:
        properties = dict(schema.get("properties", {}))
        properties["justification"] = _JUSTIFICATION
        properties["idempotency_key"] = _IDEMPOTENCY_KEY
        schema["properties"] = properties
        schema["required"] = [*schema.get("required", []), "justification"]
        facts.insert(1, "Needs human approval: returns the FHIR Task of the request.")
    annotations = descriptor.annotations
    return types.Tool(
        name=descriptor.name,
        title=descriptor.title,
        description=f"{description}\n\n{' '.join(facts)}",
        inputSchema=schema,
        annotations=types.ToolAnnotations(
            title=descriptor.title,
            readOnlyHint=annotations.read_only_hint,
            destructiveHint=annotations.destructive_hint,
            idempotentHint=annotations.idempotent_hint,
            openWorldHint=annotations.open_world_hint,
        ),
    )


def _task_summary(task: Task) -> dict[str, Any]:
    data = resource_to_dict(task)
    return {
        "task": {"reference": f"Task/{task.id}", "status": task.status},
        "note": (
            "queued for human approval; nothing was written yet. The Task's status changes "
            "to accepted, rejected, completed or failed as reviewers decide."
        ),
        "resource": data,
    }


def _error_result(error: his_sdk.errors.HisError) -> types.CallToolResult:
    outcome = error.operation_outcome()
    status = error.grpc_status_code.name
    text = f"{status}: {error.message}"
    if error.diagnostics:
        text += f" ({error.diagnostics})"
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structuredContent={"operationOutcome": outcome, "status": status},
        isError=True,
    )
