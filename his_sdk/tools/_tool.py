"""What a tool is to the registry: a descriptor and an async ``run`` over one call."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fhir.resources.R4B.task import Task

from his_sdk.tools._model import ToolDescriptor

if TYPE_CHECKING:
    from his_sdk.server._context import CallContext

__all__ = [
    "FunctionTool",
    "ModelToolSource",
    "Tool",
    "ToolCall",
    "ToolFunction",
    "ToolOutcome",
    "load_function_tool",
]

ToolFunction = Callable[[Mapping[str, Any]], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
"""An integrator tool: the validated arguments object in, the result object out."""


@dataclass(frozen=True)
class ToolCall:
    """One authorized, validated invocation.

    Attributes:
        call: The transport's call context (its principal is the caller).
        arguments: The arguments object, valid against the tool's input schema.
        justification: Why the agent calls the tool (required for high-risk tools).
        idempotency_key: The caller's key; repeating it returns the first outcome.
    """

    call: CallContext
    arguments: Mapping[str, Any]
    justification: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ToolOutcome:
    """A tool's answer: a result object, or the Task of an approval request.

    Attributes:
        result: The result object (valid against the output schema) when the tool ran.
        task: The FHIR Task tracking the approval when the call was queued.
        replayed: True when an earlier call with the same idempotency key was returned.
        patients: Patient compartments the tool touched, for the audit record.
    """

    result: dict[str, Any] | None = None
    task: Task | None = None
    replayed: bool = False
    patients: tuple[str, ...] = field(default=(), compare=False)


@runtime_checkable
class Tool(Protocol):
    """A tool the registry serves.

    ``proposes`` is True for tools whose ``run`` hands the call to the approval queue and
    answers with a Task (the FHIR write tools); a high-risk tool that does not propose cannot
    run, because nothing would hold it for a human decision.
    """

    @property
    def descriptor(self) -> ToolDescriptor:
        """The tool's descriptor."""
        ...

    @property
    def proposes(self) -> bool:
        """Whether ``run`` queues the call for approval instead of acting."""
        ...

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Run the tool (or queue it); raise ``his_sdk.errors.HisError`` subclasses."""
        ...


@runtime_checkable
class ModelToolSource(Protocol):
    """Tools offered by a gateway extension (the inference bridge's catalog models).

    The gateway passes the extension's source to the registry, so this package never imports
    the extension: each tool it yields is served and governed like any other.
    """

    def tools(self) -> Iterable[Tool]:
        """The tools to serve; names must not collide with other tools."""
        ...


class FunctionTool:
    """A tool implemented by a plain or async function of the arguments object.

    Blocking functions run in a worker thread so they never stall the event loop.
    """

    def __init__(self, descriptor: ToolDescriptor, function: ToolFunction) -> None:
        self._descriptor = descriptor
        self._function = function
        self._is_async = inspect.iscoroutinefunction(function)

    @property
    def descriptor(self) -> ToolDescriptor:
        """The tool's descriptor."""
        return self._descriptor

    @property
    def proposes(self) -> bool:
        """Always False: a function acts when called."""
        return False

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Call the function with the arguments object."""
        if self._is_async:
            result = await self._function(call.arguments)  # type: ignore[misc]
        else:
            result = await asyncio.to_thread(self._function, call.arguments)
        if isinstance(result, Awaitable):
            result = await result
        return ToolOutcome(result=dict(result))


def load_function_tool(implementation: str, descriptor: Path) -> FunctionTool:
    """Import ``module:function`` and pair it with the descriptor in a YAML file.

    Raises:
        ValueError: The import string is malformed or does not name a callable.
        FileNotFoundError: The descriptor file does not exist.
        pydantic.ValidationError: The descriptor is invalid.
    """
    module_name, _, attr = implementation.partition(":")
    if not module_name or not attr:
        raise ValueError(f"a tool implementation must be 'module:function', got {implementation!r}")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import tool {implementation!r}: {exc}") from exc
    if not callable(function):
        raise ValueError(f"tool {implementation!r} is not callable")
    return FunctionTool(ToolDescriptor.from_yaml(descriptor), function)
