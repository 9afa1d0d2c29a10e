"""AI-native HIS middleware SDK: FHIR-shaped gRPC gateway and client over legacy EHRs.

Agents use :class:`HisClient` or :class:`AsyncHisClient`; errors are ``his_sdk.errors`` types.
"""

__version__ = "0.1.0"

from his_sdk.client import AsyncHisClient, HisClient, SearchPage, TlsConfig
from his_sdk.errors import (
    AuthenticationError,
    HisError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedError,
    UnsupportedParameterError,
    UpstreamUnavailableError,
)

__all__ = [
    "AsyncHisClient",
    "AuthenticationError",
    "HisClient",
    "HisError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "SearchPage",
    "TlsConfig",
    "UnsupportedError",
    "UnsupportedParameterError",
    "UpstreamUnavailableError",
    "__version__",
]
