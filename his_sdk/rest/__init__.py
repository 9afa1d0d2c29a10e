"""The FHIR R4 REST facade: the gateway's service core over HTTP for standard FHIR clients."""

from his_sdk.rest._app import IDEMPOTENCY_HEADER, JUSTIFICATION_HEADER, FhirRestApp
from his_sdk.rest._bundle import CURSOR_PARAMETER
from his_sdk.rest._media import FHIR_JSON
from his_sdk.rest._problems import http_status_of
from his_sdk.rest._server import RestServer

__all__ = [
    "CURSOR_PARAMETER",
    "FHIR_JSON",
    "IDEMPOTENCY_HEADER",
    "JUSTIFICATION_HEADER",
    "FhirRestApp",
    "RestServer",
    "http_status_of",
]
