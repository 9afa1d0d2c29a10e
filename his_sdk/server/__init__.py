"""The gateway server: assembly, the FHIR service core and its handler chain."""

from his_sdk.server._app import Gateway, serve
from his_sdk.server._context import CallContext, current_call
from his_sdk.server._handlers import (
    ApprovalGateHandler,
    CallHandler,
    ReadInput,
    SearchInput,
    WriteInput,
)
from his_sdk.server._service import FhirService, SearchResult, Shaping
from his_sdk.server._writes import (
    ProposalResult,
    ProposedWrite,
    WriteExecutor,
    WriteQueue,
    load_write_queue,
)

__all__ = [
    "ApprovalGateHandler",
    "CallContext",
    "CallHandler",
    "FhirService",
    "Gateway",
    "ProposalResult",
    "ProposedWrite",
    "ReadInput",
    "SearchInput",
    "SearchResult",
    "Shaping",
    "WriteExecutor",
    "WriteInput",
    "WriteQueue",
    "current_call",
    "load_write_queue",
    "serve",
]
