"""The gateway server: assembly, the FHIR service core and its handler chain."""

from his_sdk.server._app import Gateway, serve
from his_sdk.server._context import CallContext, current_call
from his_sdk.server._handlers import CallHandler, ReadInput, SearchInput
from his_sdk.server._service import FhirService, SearchResult, Shaping

__all__ = [
    "CallContext",
    "CallHandler",
    "FhirService",
    "Gateway",
    "ReadInput",
    "SearchInput",
    "SearchResult",
    "Shaping",
    "current_call",
    "serve",
]
