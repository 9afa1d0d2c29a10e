"""Settings of the upstream FHIR adapter (the ``settings:`` mapping of its config entry)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "BackendAuthSettings",
    "BreakerSettings",
    "FhirSettings",
    "RetrySettings",
    "SettingsError",
    "load_settings",
]


class SettingsError(ValueError):
    """The adapter's settings are invalid; the message names the bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Section):
    """Retries of idempotent calls on 429, 502, 503, 504, timeouts and broken connections."""

    attempts: int = Field(3, ge=1, le=10)
    """Tries per call, the first included."""
    backoff_seconds: float = Field(0.2, ge=0)
    """First backoff; doubled on each further try, with jitter."""
    backoff_max_seconds: float = Field(5.0, ge=0)
    """Longest backoff between two tries."""
    max_retry_after_seconds: float = Field(10.0, ge=0)
    """Longest ``Retry-After`` honoured; a longer one fails the call at once."""


class BreakerSettings(_Section):
    """The circuit breaker that fails calls fast while the upstream is down."""

    failure_threshold: int = Field(5, ge=1)
    """Consecutive failed attempts (5xx, timeout, connection error) that open the circuit."""
    reset_seconds: float = Field(30.0, gt=0)
    """How long the circuit stays open before one probe call may try the upstream."""


class BackendAuthSettings(_Section):
    """SMART Backend Services: client credentials with a ``private_key_jwt`` assertion."""

    client_id: str
    """The gateway's client id registered with the upstream's authorization server."""
    private_key_file: Path
    """The signing key: a private JWK (JSON) or a PEM file."""
    algorithm: Literal["RS384", "ES384"] = "RS384"
    """Assertion signing algorithm; SMART requires servers to support RS384 and ES384."""
    key_id: str | None = None
    """``kid`` of the key as registered; the JWK's ``kid`` or its thumbprint when empty."""
    scope: str = "system/*.rs"
    """Scopes requested for the gateway's access token."""
    token_endpoint: str | None = None
    """Token endpoint; discovered from ``.well-known/smart-configuration`` when empty."""
    refresh_margin_seconds: float = Field(30.0, ge=0)
    """Fetch a new token this long before the cached one expires."""


class FhirSettings(_Section):
    """Everything :class:`adapters.fhir.FhirAdapter` needs."""

    base_url: str
    """The upstream FHIR R4 server's base URL (``https://ehr.example.org/fhir``)."""
    url_aliases: list[str] = Field(default_factory=list)
    """Other base URLs the upstream puts in its links (its address behind a reverse proxy);
    links under them are rewritten onto ``base_url``, links elsewhere are refused."""
    types: list[str] = Field(min_length=1)
    """Resource types to serve; the upstream must declare each in its CapabilityStatement."""
    search_params: dict[str, list[str]] = Field(default_factory=dict)
    """Per type, the search parameters to offer; every one the upstream declares when absent."""
    writes: bool = False
    """Execute approved creates and updates against the upstream (needs its create/update)."""
    timeout_seconds: float = Field(10.0, gt=0)
    """Per-try limit for reading the upstream's answer."""
    connect_timeout_seconds: float = Field(3.0, gt=0)
    """Per-try limit for opening a connection."""
    call_timeout_seconds: float = Field(30.0, gt=0)
    """Budget of one call including retries; no retry starts after it."""
    max_connections: int = Field(20, ge=1)
    """Connections kept to the upstream."""
    verify_tls: bool | Path = True
    """Verify the upstream's certificate (or with this CA bundle)."""
    retry: RetrySettings = Field(default_factory=RetrySettings)
    """Retries with backoff."""
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    """The circuit breaker."""
    auth: BackendAuthSettings | None = None
    """SMART Backend Services authorization; None calls the upstream without a token."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers sent on every call."""

    @field_validator("base_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("url_aliases")
    @classmethod
    def _strip_all(cls, values: list[str]) -> list[str]:
        return [_http_url(v) for v in values]


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def load_settings(settings: Mapping[str, Any]) -> FhirSettings:
    """Validate the adapter's settings mapping.

    Raises:
        SettingsError: A key is unknown or missing, or a value is invalid.
    """
    try:
        return FhirSettings.model_validate(dict(settings))
    except pydantic.ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}"
            for error in exc.errors()
        ]
        raise SettingsError("fhir adapter settings:\n  " + "\n  ".join(lines)) from None
