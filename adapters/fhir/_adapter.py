"""``FhirAdapter``: an upstream FHIR R4 server served as the gateway's EHR."""

from __future__ import annotations

import json
import logging
import ssl
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self
from urllib.parse import urljoin

import httpx
from fhir.resources.R4B.resource import Resource
from fhirpy.base.searchset import Raw

import his_sdk.adapter
import his_sdk.errors
import his_sdk.search
from his_sdk._fhir import parse_resource, resource_to_dict

from ._capabilities import UpstreamCapabilities, declared_types
from ._client import UpstreamFhirClient
from ._params import query_parameters
from ._resilience import BreakerState
from ._settings import FhirSettings, load_settings
from ._smart import BackendServicesAuth
from ._transport import UpstreamHttp, UpstreamResponse

__all__ = ["WRITE_TAG_SYSTEM", "FhirAdapter"]

_log = logging.getLogger(__name__)

WRITE_TAG_SYSTEM = "urn:his-sdk:approved-write"
"""``meta.tag`` system marking resources written for an approval; the code is the write key."""

_FACTS_PAGE = 100
_INTERACTIONS = {
    his_sdk.adapter.Interaction.READ: "read",
    his_sdk.adapter.Interaction.SEARCH: "search-type",
    his_sdk.adapter.Interaction.CREATE: "create",
    his_sdk.adapter.Interaction.UPDATE: "update",
}


class FhirAdapter:
    """Serves a FHIR R4 server (a hospital's own, or another gateway's facade) to the gateway.

    Reads and searches go through fhirpy over one pooled HTTP client, with SMART Backend
    Services tokens, timeouts, retries honouring ``Retry-After`` and a circuit breaker (see
    :class:`adapters.fhir._transport.UpstreamHttp`). At :meth:`start` the adapter reads the
    upstream's ``/metadata``: each configured type must be declared there with its
    interactions, and the type's search parameters become exactly those the upstream declares
    (or the configured subset), so the gateway refuses any other before calling out.
    Approved writes are executed with ``If-Match`` (updates) and ``If-None-Exist`` (creates)
    and tagged with their key, so a write runs once and never overwrites a newer version.
    Patient facts for the policy come from the upstream's Patient (``generalPractitioner``),
    CareTeam and Consent resources, as far as the upstream serves them.

    Args:
        settings: The validated settings.
        transport: The HTTP transport (the I/O edge); httpx's default when None.
    """

    def __init__(
        self, settings: FhirSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._base = settings.base_url
        self._transport = transport
        types, self._params = declared_types(settings.types, settings.writes)
        self._capabilities = his_sdk.adapter.AdapterCapabilities(types)
        self._http: httpx.AsyncClient | None = None
        self._upstream: UpstreamHttp | None = None
        self._client: UpstreamFhirClient | None = None
        self._auth: BackendServicesAuth | None = None
        # CareTeam/Consent -> their upstream search parameters, when searchable by patient.
        self._facts_sources: dict[str, frozenset[str]] = {}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from the config entry's settings (:class:`adapters.fhir.FhirSettings` keys).

        Raises:
            adapters.fhir.SettingsError: A setting is invalid.
        """
        return cls(load_settings(settings))

    def capabilities(self) -> his_sdk.adapter.AdapterCapabilities:
        """The configured types; their search parameters are filled at :meth:`start`."""
        return self._capabilities

    @property
    def upstream(self) -> UpstreamHttp:
        """The transport (breaker state, for health and tests).

        Raises:
            RuntimeError: The adapter is not started.
        """
        if self._upstream is None:
            raise RuntimeError("the FHIR adapter is not started")
        return self._upstream

    @property
    def auth(self) -> BackendServicesAuth | None:
        """The SMART Backend Services token source, when configured and started."""
        return self._auth

    async def start(self) -> None:
        """Connect, obtain a token when configured, and read the upstream's capabilities.

        Raises:
            his_sdk.errors.UpstreamUnavailableError: The upstream or its authorization server
                cannot be reached, or refused the gateway's credentials.
            his_sdk.errors.PreconditionFailedError: The upstream does not serve a configured
                type, interaction or search parameter.
            ValueError: The signing key cannot be used.
        """
        settings = self._settings
        self._http = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
            verify=_verify(settings.verify_tls),
        )
        try:
            if settings.auth is not None:
                self._auth = BackendServicesAuth(
                    settings.auth, fhir_base=self._base, http=self._http
                )
                await self._auth.token()
            self._upstream = UpstreamHttp(settings, auth=self._auth, http=self._http)
            self._client = UpstreamFhirClient(self._base, self._upstream)
            statement = await self._client.execute("metadata", method="get")
            self._discover(UpstreamCapabilities(statement))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection pool; :meth:`start` opens a new one."""
        http, self._http = self._http, None
        self._upstream = self._client = self._auth = None
        if http is not None:
            await http.aclose()

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        """One resource by logical id.

        Raises:
            his_sdk.errors.NotFoundError: The upstream has no such resource.
            his_sdk.errors.GoneError: The upstream deleted it.
            his_sdk.errors.UpstreamUnavailableError: The upstream cannot be reached or the
                circuit is open.
            his_sdk.errors.UpstreamDataError: The answer is not a valid resource of the type.
        """
        try:
            data = await self._fhirpy().get(resource_type, resource_id)
        except his_sdk.errors.GoneError as exc:
            raise his_sdk.errors.GoneError(
                f"{resource_type}/{resource_id} was deleted", diagnostics=exc.diagnostics
            ) from exc
        except his_sdk.errors.NotFoundError as exc:
            raise his_sdk.errors.NotFoundError(
                f"{resource_type}/{resource_id} not found", diagnostics=exc.diagnostics
            ) from exc
        return _resource_of(resource_type, data)

    async def search(self, query: his_sdk.search.SearchQuery) -> his_sdk.adapter.SearchPage:
        """One page: the first from the criteria, the next ones from the upstream's links.

        Raises:
            his_sdk.errors.InvalidRequestError: ``query.position`` is not this upstream's link.
            his_sdk.errors.HisError: The upstream's refusal or failure, mapped.
        """
        client = self._fhirpy()
        if query.position is not None:
            bundle = await client.execute(self._checked_link(query.position), method="get")
        else:
            grouped: dict[str, list[str]] = defaultdict(list)
            for name, value in query_parameters(query.criteria):
                grouped[name].append(value)
            raw = Raw(**grouped)  # type: ignore[no-untyped-call]
            searchset = client.resources(query.resource_type).search(raw)
            searchset = searchset.limit(max(query.count, 0))
            if query.include_total:
                searchset = searchset.clone(_total="accurate", override=True)
            bundle = await client.execute(
                query.resource_type, method="get", params=dict(searchset.params)
            )
        return self._page(query, bundle)

    async def execute(self, write: his_sdk.adapter.ApprovedWrite) -> his_sdk.adapter.WriteOutcome:
        """Create or update on the upstream, once per ``write.key``.

        A create is conditional on no resource carrying the write's tag (``If-None-Exist``),
        so a retried create finds the first one. An update must name the version it was
        approved against and is sent with ``If-Match``; when the upstream reports a newer
        version, the write succeeded earlier only if that version carries the write's tag.

        Raises:
            his_sdk.errors.UnsupportedError: Writes are off, or the interaction is not create
                or update.
            his_sdk.errors.InvalidRequestError: The write lacks its resource, id or version.
            his_sdk.errors.ConflictError: The resource changed since the approval.
        """
        interaction = his_sdk.adapter.Interaction
        if not self._settings.writes or write.resource_type not in self._params:
            raise his_sdk.errors.UnsupportedError(
                f"the FHIR adapter does not write {write.resource_type} (settings: writes, types)"
            )
        if write.interaction not in (interaction.CREATE, interaction.UPDATE):
            raise his_sdk.errors.UnsupportedError(
                f"the FHIR adapter does not execute {write.interaction.value}"
            )
        if write.resource is None:
            raise his_sdk.errors.InvalidRequestError(
                "an approved create or update must carry its resource"
            )
        body = _tagged(write.resource, write.key)
        if write.interaction is interaction.CREATE:
            body.pop("id", None)
            response = await self.upstream.request(
                "POST",
                f"{self._base}/{write.resource_type}",
                action=f"creating {write.resource_type}",
                body=body,
                headers={
                    "If-None-Exist": f"_tag={WRITE_TAG_SYSTEM}|{write.key}",
                    "Prefer": "return=representation",
                },
            )
            done = "created" if response.status == 201 else "already created"
            return _outcome(write.resource_type, response, done)
        if not write.resource_id or not write.expected_version:
            raise his_sdk.errors.InvalidRequestError(
                "an approved update must name the resource id and the version it was approved "
                "against"
            )
        body["id"] = write.resource_id
        target = f"{write.resource_type}/{write.resource_id}"
        response = await self.upstream.request(
            "PUT",
            f"{self._base}/{target}",
            action=f"updating {target}",
            body=body,
            headers={
                "If-Match": f'W/"{write.expected_version}"',
                "Prefer": "return=representation",
            },
            accept=(409, 412),
        )
        if response.status in (409, 412):
            current = await self.read(write.resource_type, write.resource_id)
            if _carries_key(current, write.key):
                return _from_resource(current, "already applied")
            version = current.meta.versionId if current.meta is not None else None
            raise his_sdk.errors.ConflictError(
                f"{target} changed since the approval; review it again",
                diagnostics=f"approved against version {write.expected_version}, "
                f"upstream has version {version or 'unknown'}",
            )
        return _outcome(write.resource_type, response, "updated")

    async def health(self) -> his_sdk.adapter.HealthStatus:
        """NOT_SERVING while the circuit is open or /metadata fails, DEGRADED while half open."""
        states = his_sdk.adapter.HealthState
        if self._upstream is None or self._client is None:
            return his_sdk.adapter.HealthStatus(states.NOT_SERVING, "not started")
        breaker = self._upstream.breaker.state
        if breaker is BreakerState.OPEN:
            return his_sdk.adapter.HealthStatus(states.NOT_SERVING, "circuit open")
        try:
            await self._upstream.request(
                "GET", f"{self._base}/metadata", action="health check", attempts=1
            )
        except his_sdk.errors.HisError as exc:
            return his_sdk.adapter.HealthStatus(states.NOT_SERVING, exc.message)
        if breaker is BreakerState.HALF_OPEN:
            return his_sdk.adapter.HealthStatus(states.DEGRADED, "circuit half open")
        return his_sdk.adapter.HealthStatus(states.SERVING)

    async def patient_facts(self, patient_id: str) -> his_sdk.adapter.PatientFacts:
        """Care team and consent of one patient, from the upstream.

        The care team is the Patient's ``generalPractitioner`` plus the practitioners of its
        active CareTeams; the patient opted out when an active Consent denies (``provision.type
        = deny``). CareTeam and Consent are asked only when the upstream serves them with a
        ``patient`` search parameter.
        """
        try:
            patient = await self.read("Patient", patient_id)
        except his_sdk.errors.NotFoundError:
            return his_sdk.adapter.PatientFacts(patient_id, exists=False)
        team = {
            ref.reference
            for ref in getattr(patient, "generalPractitioner", None) or []
            if ref.reference and ref.reference.startswith("Practitioner/")
        }
        if "CareTeam" in self._facts_sources:
            for care_team in await self._facts("CareTeam", patient_id):
                for participant in care_team.get("participant") or []:
                    reference = (participant.get("member") or {}).get("reference", "")
                    if str(reference).startswith("Practitioner/"):
                        team.add(str(reference))
        opted_out = False
        if "Consent" in self._facts_sources:
            consents = await self._facts("Consent", patient_id)
            opted_out = any((c.get("provision") or {}).get("type") == "deny" for c in consents)
        return his_sdk.adapter.PatientFacts(
            patient_id, exists=True, care_team=frozenset(team), consent_opt_out=opted_out
        )

    # Internals.

    def _fhirpy(self) -> UpstreamFhirClient:
        if self._client is None:
            raise his_sdk.errors.UpstreamUnavailableError("the FHIR adapter is not started")
        return self._client

    def _discover(self, upstream: UpstreamCapabilities) -> None:
        problems: list[str] = []
        for name, capability in self._capabilities.types.items():
            if not upstream.serves(name):
                problems.append(f"{name} is not declared")
                continue
            missing = [
                code
                for interaction, code in _INTERACTIONS.items()
                if interaction in capability.interactions
                and code not in upstream.interactions(name)
            ]
            if missing:
                problems.append(f"{name} lacks {', '.join(missing)}")
                continue
            wanted = self._settings.search_params.get(name)
            self._params[name].replace(upstream.search_params(name, wanted))
        if problems:
            raise his_sdk.errors.PreconditionFailedError(
                f"the upstream FHIR server at {self._base} does not serve what is configured",
                diagnostics="; ".join(problems),
            )
        self._facts_sources = {}
        for name in ("CareTeam", "Consent"):
            params = frozenset(upstream.search_params(name, None))
            if "search-type" in upstream.interactions(name) and "patient" in params:
                self._facts_sources[name] = params
        _log.info(
            "upstream FHIR %s at %s: serving %s",
            upstream.fhir_version or "server",
            self._base,
            ", ".join(sorted(self._params)),
        )

    def _checked_link(self, position: str) -> str:
        link = urljoin(self._base + "/", position)
        for alias in self._settings.url_aliases:
            if link.startswith(alias + "/"):
                link = self._base + link[len(alias) :]
                break
        if not link.startswith(self._base + "/"):
            raise his_sdk.errors.InvalidRequestError("paging position is not this upstream's")
        return link

    def _page(self, query: his_sdk.search.SearchQuery, bundle: Any) -> his_sdk.adapter.SearchPage:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise his_sdk.errors.UpstreamDataError(
                f"the upstream answered a {query.resource_type} search without a Bundle"
            )
        resources = [
            _resource_of(query.resource_type, entry.get("resource"))
            for entry in bundle.get("entry") or []
            if isinstance(entry, dict)
            and (entry.get("search") or {}).get("mode", "match") == "match"
        ]
        next_link = next(
            (
                str(link.get("url"))
                for link in bundle.get("link") or []
                if isinstance(link, dict) and link.get("relation") == "next" and link.get("url")
            ),
            None,
        )
        if next_link is not None:
            next_link = self._checked_link(next_link)
        total = bundle.get("total") if query.include_total else None
        return his_sdk.adapter.SearchPage(
            resources,
            next_position=next_link if resources or query.count else None,
            total=total if isinstance(total, int) else None,
        )

    async def _facts(self, resource_type: str, patient_id: str) -> list[dict[str, Any]]:
        params: dict[str, list[str]] = {"patient": [patient_id], "_count": [str(_FACTS_PAGE)]}
        if "status" in self._facts_sources[resource_type]:
            params["status"] = ["active"]
        bundle = await self._fhirpy().execute(resource_type, method="get", params=params)
        entries = bundle.get("entry") or [] if isinstance(bundle, dict) else []
        return [
            e["resource"]
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("resource"), dict)
            and e["resource"].get("resourceType") == resource_type
        ]


def _verify(setting: bool | Path) -> bool | ssl.SSLContext:
    if isinstance(setting, bool):
        return setting
    return ssl.create_default_context(cafile=str(setting))


def _resource_of(resource_type: str, data: Any) -> Resource:
    if not isinstance(data, dict) or data.get("resourceType") != resource_type:
        raise his_sdk.errors.UpstreamDataError(
            f"the upstream answered with something other than a {resource_type}"
        )
    return parse_resource(resource_type, data)


def _tagged(resource: Resource, key: str) -> dict[str, Any]:
    body = resource_to_dict(resource)
    meta = dict(body.get("meta") or {})
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    tags = [t for t in meta.get("tag") or [] if t.get("system") != WRITE_TAG_SYSTEM]
    meta["tag"] = [*tags, {"system": WRITE_TAG_SYSTEM, "code": key}]
    body["meta"] = meta
    return body


def _carries_key(resource: Resource, key: str) -> bool:
    tags = resource.meta.tag if resource.meta is not None and resource.meta.tag else []
    return any(t.system == WRITE_TAG_SYSTEM and t.code == key for t in tags)


def _from_resource(resource: Resource, message: str) -> his_sdk.adapter.WriteOutcome:
    version = resource.meta.versionId if resource.meta is not None else None
    return his_sdk.adapter.WriteOutcome(
        resource.get_resource_type(), resource.id or "", version, message
    )


def _outcome(
    resource_type: str, response: UpstreamResponse, message: str
) -> his_sdk.adapter.WriteOutcome:
    if response.content:
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("resourceType") == resource_type:
            resource = parse_resource(resource_type, data)
            return _from_resource(resource, message)
    # Without a body, the Location header names the id and version (.../Type/id/_history/v).
    location = response.headers.get("location") or response.headers.get("content-location")
    parts = location.rstrip("/").split("/") if location else []
    if len(parts) >= 4 and parts[-2] == "_history" and parts[-4] == resource_type:
        return his_sdk.adapter.WriteOutcome(resource_type, parts[-3], parts[-1], message)
    if len(parts) >= 2 and parts[-2] == resource_type:
        return his_sdk.adapter.WriteOutcome(resource_type, parts[-1], None, message)
    raise his_sdk.errors.UpstreamDataError(
        f"the upstream confirmed the {resource_type} write without naming the resource"
    )
