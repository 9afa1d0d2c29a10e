"""Gateway settings: YAML file, then ``HIS_`` environment variables (``HIS_SERVER__PORT=50052``).

Every field has a default that runs the embedded demo, so an empty config file is valid.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from his_sdk.audit._settings import AuditSettings

__all__ = [
    "AdapterSettings",
    "ApprovalSettings",
    "AuditSettings",
    "AuthSettings",
    "ConsoleOidcSettings",
    "ConsoleSettings",
    "GatewaySettings",
    "PagingSettings",
    "PolicySettings",
    "RegisteredToolSettings",
    "RestSettings",
    "ServerSettings",
    "StateSettings",
    "ToolSettings",
    "load_settings",
]


class _Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never falls back to a default."""

    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    """The gRPC listener."""

    host: str = "127.0.0.1"
    """Address to bind; use 0.0.0.0 only behind TLS termination or with ``tls_cert``."""
    port: int = 50051
    """TCP port; 0 picks a free one (tests)."""
    reflection: bool = True
    """Serve gRPC server reflection so ``grpcurl`` can list services."""
    tls_cert: Path | None = None
    """PEM certificate chain; TLS is on when this and ``tls_key`` are set."""
    tls_key: Path | None = None
    """PEM private key for ``tls_cert``."""
    max_message_bytes: int = 16 * 1024 * 1024
    """Largest request or response message."""
    grace_seconds: float = 5.0
    """How long in-flight calls may finish at shutdown."""


class RestSettings(_Section):
    """The FHIR R4 REST facade, served beside gRPC over the same service core."""

    enabled: bool = False
    """Serve the REST facade (``his serve`` starts it beside the gRPC listener)."""
    host: str = "127.0.0.1"
    """Address to bind; TLS uses ``server.tls_cert``/``server.tls_key`` when those are set."""
    port: int = 8080
    """TCP port; 0 picks a free one (tests)."""
    base_url: str | None = None
    """Public base URL for ``fullUrl`` and Bundle links (set it behind a proxy); when empty
    it is taken from each request's scheme, host and root path."""
    token_endpoint: str | None = None
    """The identity provider's OAuth2 token endpoint, published in
    ``/.well-known/smart-configuration`` and ``/metadata``; without it that document is 404."""
    authorization_endpoint: str | None = None
    """The identity provider's authorization endpoint, for SMART App Launch clients."""
    smart_capabilities: list[str] = Field(
        default_factory=lambda: ["client-confidential-asymmetric", "permission-v2"]
    )
    """SMART ``capabilities`` advertised in the SMART configuration."""
    max_body_bytes: int = 1024 * 1024
    """Largest request body accepted by ``POST`` and ``PUT``."""
    access_log: bool = False
    """Log one line per request; off by default because URLs carry patient ids."""
    grace_seconds: float = 5.0
    """How long in-flight requests may finish at shutdown."""


class AuthSettings(_Section):
    """Bearer-token verification (OAuth2 access tokens as JWTs)."""

    issuer: str = "http://127.0.0.1/his-dev-issuer"
    """Required ``iss`` claim."""
    audience: str = "his-gateway"
    """Required ``aud`` claim (one of, when the token lists several)."""
    jwks_file: Path | None = Path(".his/dev-issuer/jwks.json")
    """Local JWKS with the issuer's public keys (used when ``jwks_url`` is empty)."""
    jwks_url: str | None = None
    """Issuer's JWKS endpoint; fetched and cached, refetched on an unknown ``kid``."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "RS384", "ES256", "ES384"])
    """Allowed JWS algorithms. ``none`` and every HMAC algorithm are always refused."""
    leeway_seconds: int = 30
    """Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
    jwks_cache_seconds: int = 300
    """How long a fetched JWKS is trusted before refetching."""
    jwks_min_refresh_seconds: int = 30
    """Least time between refetches caused by unknown ``kid`` values (stops key-probing floods)."""
    max_token_lifetime_seconds: int = 24 * 3600
    """Tokens whose ``exp - iat`` exceeds this are refused."""
    roles_claim: str = "roles"
    """Claim holding the caller's roles (a list of strings)."""


class PolicySettings(_Section):
    """The Oso authorization policy."""

    files: list[Path] = Field(default_factory=list)
    """Polar files replacing the shipped policy; empty uses the shipped one."""
    patient_facts_ttl_seconds: float = 5.0
    """How long care-team and consent facts for a patient are cached."""
    population_roles: list[str] = Field(default_factory=lambda: ["researcher", "system"])
    """Roles allowed to search clinical types without naming one patient (policy input)."""


class AdapterSettings(_Section):
    """One EHR adapter."""

    name: str = "ehr"
    """Name used in logs, health and metrics."""
    implementation: str = "adapters.sql:SqlAdapter"
    """Import string ``module:Class`` of an :class:`his_sdk.adapter.Adapter`."""
    settings: dict[str, Any] = Field(
        default_factory=lambda: {"url": "sqlite:///.his/legacy.db", "mapping": "openemr"}
    )
    """Passed as is to ``Class.from_settings``."""


class PagingSettings(_Section):
    """Search paging."""

    default_count: int = 20
    """Page size when the caller gives no ``_count``."""
    max_count: int = 200
    """Largest page; larger ``_count`` values are clamped."""
    cursor_secret: str | None = None
    """HMAC key that signs cursors; a random one per process when empty."""


class StateSettings(_Section):
    """The gateway's own database (break-glass records; later the audit outbox)."""

    url: str = "sqlite:///.his/gateway.db"
    """SQLAlchemy URL: SQLite by default, PostgreSQL in production."""


class ApprovalSettings(_Section):
    """The approval queue every write passes before an adapter executes it."""

    enabled: bool = True
    """Queue writes for approval when a configured adapter executes writes; off refuses writes."""
    implementation: str = "approval_service:ApprovalService"
    """Import string ``module:Class`` of the queue (a ``his_sdk.server.WriteQueue``)."""
    url: str | None = None
    """SQLAlchemy URL of the queue's database (SQLite or PostgreSQL); empty uses ``state.url``.
    The AuditEvents of its transitions go to an outbox in the same database."""
    migrate: bool = True
    """Upgrade the queue's schema to the newest migration at start; turn off where migrations
    run as a deployment step."""
    expiry: datetime.timedelta = datetime.timedelta(hours=24)
    """How long a request waits for a decision before it expires (expiry is a rejection)."""
    max_lifetime: datetime.timedelta = datetime.timedelta(days=7)
    """Longest time from proposal to expiry that extensions may reach."""
    policy_files: list[Path] = Field(default_factory=list)
    """Polar files replacing the shipped risk-tier and reviewer policy."""
    execution_lease_seconds: float = 300.0
    """How long an executor owns an approved request; after a crash another replica re-claims
    it once the lease ran out. Keep it above the adapter's longest write."""
    max_attempts: int = 5
    """Executions ending in a transient EHR failure before the request is marked failed."""
    retry_seconds: float = 10.0
    """Pause before re-executing after a transient EHR failure."""
    sweep_interval_seconds: float = 5.0
    """How often expiry and the recovery of approved, unexecuted requests run."""
    watch_poll_seconds: float = 1.0
    """How often a watch re-reads a request changed by another replica."""
    page_size: int = 50
    """Requests per page when a list call gives no page size."""
    publish_audit: bool = True
    """Publish the queue's outbox to Kafka from this process; turn off where another process
    publishes it."""


class ConsoleOidcSettings(_Section):
    """Reviewer login at the hospital's OpenID Connect issuer (authorization-code flow, PKCE)."""

    issuer: str
    """The issuer URL; ``<issuer>/.well-known/openid-configuration`` is read at the first login."""
    client_id: str
    """The console's client id at the issuer (the ``aud`` of its ID tokens)."""
    client_secret: str | None = None
    """The client secret (``client_secret_basic``); None for a public client using PKCE only.
    Prefer ``HIS_CONSOLE__OIDC__CLIENT_SECRET`` to writing it in the YAML file."""
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile"])
    """Scopes requested at login (``openid`` is always sent)."""
    roles_claim: str = "roles"
    """ID-token claim holding the reviewer's roles (a dotted name reaches into objects)."""
    name_claim: str = "name"
    """ID-token claim with the reviewer's display name."""
    fhir_user_claim: str = "fhirUser"
    """ID-token claim with the reviewer's FHIR identity (``Practitioner/12``)."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "PS256", "ES256"])
    """ID-token signature algorithms accepted."""
    leeway_seconds: int = 30
    """Clock skew allowed when checking ``exp``, ``iat`` and ``nbf``."""


class ConsoleSettings(_Section):
    """The reviewer web console for the approval queue, served on its own listener."""

    enabled: bool = False
    """Serve the console (needs the approval queue)."""
    implementation: str = "approval_service.console:create_app"
    """Import string ``module:factory`` of the console app; called with the queue and these
    settings, it returns an ASGI app."""
    host: str = "127.0.0.1"
    """Address to bind; TLS uses ``server.tls_cert``/``server.tls_key`` when those are set."""
    port: int = 8081
    """TCP port; 0 picks a free one (tests)."""
    base_url: str | None = None
    """Public base URL (behind a proxy); the OIDC redirect URI is ``<base_url>/auth/callback``.
    When empty it is taken from each request."""
    session_secret: str | None = None
    """Key signing session cookies (32+ random bytes, e.g. ``HIS_CONSOLE__SESSION_SECRET``).
    Every replica needs the same one; when empty a random key per process is used, so
    sessions end at a restart."""
    idle_timeout: datetime.timedelta = datetime.timedelta(minutes=15)
    """A session without a request for this long ends."""
    absolute_timeout: datetime.timedelta = datetime.timedelta(hours=8)
    """A session ends this long after login, active or not."""
    secure_cookie: bool | None = None
    """Mark the session cookie ``Secure``; None: when the console serves TLS (set it to true
    behind a TLS-terminating proxy)."""
    oidc: ConsoleOidcSettings | None = None
    """Production login; None disables it."""
    dev_login: bool = False
    """Offer a login form that lets anyone pick a reviewer identity and roles (demo only)."""
    dev_roles: list[str] = Field(
        default_factory=lambda: ["clinician", "pharmacist", "nurse", "compliance"]
    )
    """Roles offered by the dev login."""
    access_log: bool = False
    """Log one line per request."""
    grace_seconds: float = 5.0
    """How long in-flight requests may finish at shutdown."""


class RegisteredToolSettings(_Section):
    """One integrator tool: the callable that runs it and the descriptor that documents it."""

    implementation: str
    """Import string ``module:function`` of a function taking the arguments object (a dict)
    and returning the result object, plain or async."""
    descriptor: Path
    """YAML file with the tool's descriptor (``his_sdk.tools.ToolDescriptor``)."""


class ToolSettings(_Section):
    """The governed tool registry served as ``ToolRegistry`` and by ``his mcp``."""

    enabled: bool = True
    """Serve the ToolRegistry gRPC service."""
    fhir: bool = True
    """Offer read and search tools per served type, and propose-create tools per writable one."""
    calculators: bool = True
    """Offer the shipped clinical calculators (``his_sdk.tools.calculators``)."""
    registered: list[RegisteredToolSettings] = Field(default_factory=list)
    """Integrator tools."""


class InferenceGatewaySettings(_Section):
    """The inference bridge, loaded by import string so the core never depends on it."""

    enabled: bool = False
    """Serve InferenceService (specialist models on Triton or local torch)."""
    implementation: str = "inference_bridge:gateway_extension"
    """Import string of the factory that builds the bridge."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Passed to the bridge's settings model (see docs/inference.md)."""


class GatewaySettings(BaseSettings):
    """Everything ``his serve`` needs."""

    model_config = SettingsConfigDict(
        env_prefix="HIS_", env_nested_delimiter="__", extra="forbid", yaml_file=None
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    """The gRPC listener."""
    rest: RestSettings = Field(default_factory=RestSettings)
    """The FHIR REST facade."""
    auth: AuthSettings = Field(default_factory=AuthSettings)
    """Token verification."""
    policy: PolicySettings = Field(default_factory=PolicySettings)
    """Authorization policy."""
    adapters: list[AdapterSettings] = Field(default_factory=lambda: [AdapterSettings()])
    """EHR adapters; each resource type is served by the first adapter that declares it."""
    paging: PagingSettings = Field(default_factory=PagingSettings)
    """Search paging."""
    state: StateSettings = Field(default_factory=StateSettings)
    """The gateway's own database."""
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    """The approval queue for writes."""
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    """The reviewer web console."""
    audit: AuditSettings = Field(default_factory=AuditSettings)
    """The audit trail."""
    tools: ToolSettings = Field(default_factory=ToolSettings)
    """The tool registry."""
    inference: InferenceGatewaySettings = Field(default_factory=InferenceGatewaySettings)
    """The inference bridge."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Root log level."""

    @model_validator(mode="after")
    def _check(self) -> GatewaySettings:
        if not self.adapters:
            raise ValueError("at least one adapter must be configured")
        names = [a.name for a in self.adapters]
        if len(set(names)) != len(names):
            raise ValueError(f"adapter names must be unique, got {names}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order: explicit arguments, then ``HIS_`` environment, then the YAML file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_file = settings_cls.model_config.get("yaml_file")
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)


def load_settings(path: Path | None = None, **overrides: Any) -> GatewaySettings:
    """Load settings from a YAML file (optional), ``HIS_`` variables and keyword overrides.

    Raises:
        FileNotFoundError: ``path`` was given but does not exist.
        pydantic.ValidationError: A value is invalid; the message names the field.
    """
    if path is None:
        return GatewaySettings(**overrides)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")

    class _FromFile(GatewaySettings):
        model_config = SettingsConfigDict(yaml_file=path)

    loaded = _FromFile(**overrides)
    return GatewaySettings.model_validate(loaded.model_dump())
