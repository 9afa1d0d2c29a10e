"""Upstream FHIR adapter: a FHIR R4 server, reached through fhirpy, served as the gateway's EHR.

``FhirAdapter`` implements :class:`his_sdk.adapter.Adapter` and
:class:`his_sdk.adapter.PatientFactsProvider`; ``FhirSettings`` documents its settings.
"""

from ._adapter import WRITE_TAG_SYSTEM, FhirAdapter
from ._resilience import BreakerState, CircuitBreaker
from ._settings import BackendAuthSettings, FhirSettings, SettingsError
from ._smart import BackendServicesAuth

__all__ = [
    "WRITE_TAG_SYSTEM",
    "BackendAuthSettings",
    "BackendServicesAuth",
    "BreakerState",
    "CircuitBreaker",
    "FhirAdapter",
    "FhirSettings",
    "SettingsError",
]
