"""The contract every EHR adapter implements, and the values that cross it.

An adapter wraps one legacy system (an HL7 v2 feed, a SQL database, a FHIR server) and shows it
to the gateway as FHIR R4 resources (``fhir.resources`` R4B models). The gateway does
authentication, authorization, audit and paging cursors; an adapter only reads, searches and,
once a write is approved, executes it. Adapters are picked by import string in the config
(``implementation: adapters.sql:SqlAdapter``) and built with ``Adapter.from_settings``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

from fhir.resources.R4B.resource import Resource

import his_sdk.search

__all__ = [
    "Adapter",
    "AdapterCapabilities",
    "ApprovedWrite",
    "HealthState",
    "HealthStatus",
    "Interaction",
    "PatientFacts",
    "PatientFactsProvider",
    "SearchPage",
    "TypeCapability",
    "WriteOutcome",
]


class Interaction(enum.StrEnum):
    """FHIR RESTful interactions an adapter may serve for a type."""

    READ = "read"
    SEARCH = "search-type"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class TypeCapability:
    """What an adapter serves for one resource type."""

    resource_type: str
    interactions: frozenset[Interaction]
    search_params: Mapping[str, his_sdk.search.SearchParamDef] = field(default_factory=dict)
    documentation: str = ""


@dataclass(frozen=True)
class AdapterCapabilities:
    """The CapabilityStatement fragment of one adapter: the types it serves."""

    types: Mapping[str, TypeCapability]

    def statement_fragment(self) -> list[dict[str, Any]]:
        """The ``rest[0].resource`` entries of a CapabilityStatement for these types."""
        entries = []
        for name in sorted(self.types):
            cap = self.types[name]
            entry: dict[str, Any] = {
                "type": name,
                "interaction": [{"code": i.value} for i in sorted(cap.interactions)],
            }
            if cap.documentation:
                entry["documentation"] = cap.documentation
            if cap.search_params:
                entry["searchParam"] = [
                    {"name": p.name, "type": p.type.value, "documentation": p.description}
                    if p.description
                    else {"name": p.name, "type": p.type.value}
                    for p in sorted(cap.search_params.values(), key=lambda p: p.name)
                ]
            entries.append(entry)
        return entries


@dataclass(frozen=True)
class SearchPage:
    """One page of search results.

    Attributes:
        resources: The matches on this page, in a stable order.
        next_position: The adapter's own position to continue from, or None on the last page.
            The gateway wraps it into a signed cursor; adapters never see foreign cursors.
        total: All matches, when the query asked for ``include_total``; otherwise None.
    """

    resources: list[Resource]
    next_position: str | None = None
    total: int | None = None


@dataclass(frozen=True)
class ApprovedWrite:
    """A write a reviewer approved, handed to the adapter to execute exactly once.

    Attributes:
        key: Idempotency key; executing the same key twice must not write twice.
        interaction: CREATE, UPDATE or DELETE.
        resource_type: The type written.
        resource_id: The target id (UPDATE and DELETE).
        resource: The approved resource body (CREATE and UPDATE).
        expected_version: For UPDATE/DELETE, the version the approval was made against.
    """

    key: str
    interaction: Interaction
    resource_type: str
    resource_id: str | None = None
    resource: Resource | None = None
    expected_version: str | None = None


@dataclass(frozen=True)
class WriteOutcome:
    """What executing an approved write produced."""

    resource_type: str
    resource_id: str
    version_id: str | None = None
    message: str = ""


class HealthState(enum.StrEnum):
    """Health of an adapter's upstream."""

    SERVING = "serving"
    DEGRADED = "degraded"
    NOT_SERVING = "not_serving"


@dataclass(frozen=True)
class HealthStatus:
    """An adapter's health with a short reason (no patient data)."""

    state: HealthState
    detail: str = ""


@dataclass(frozen=True)
class PatientFacts:
    """What the policy needs to know about one patient, read from the legacy data.

    Attributes:
        patient_id: The patient's logical id.
        exists: False when the EHR has no such patient.
        care_team: References of practitioners in a treating relationship
            (``Practitioner/12``).
        consent_opt_out: True when the patient declined sharing with automated agents.
    """

    patient_id: str
    exists: bool = True
    care_team: frozenset[str] = frozenset()
    consent_opt_out: bool = False


@runtime_checkable
class PatientFactsProvider(Protocol):
    """An adapter that can tell the policy about care teams and consent."""

    async def patient_facts(self, patient_id: str) -> PatientFacts:
        """Care team and consent of one patient; ``exists=False`` if unknown."""
        ...


@runtime_checkable
class Adapter(Protocol):
    """The one interface between the gateway and a legacy EHR.

    Implementers write every method below. Errors are raised as ``his_sdk.errors`` types:
    ``NotFoundError``/``GoneError`` for ids, ``UnsupportedParameterError`` for criteria the
    adapter cannot evaluate, ``UpstreamUnavailableError`` when the EHR cannot be reached and
    ``UpstreamDataError`` when its data cannot become valid FHIR. Driver exceptions never
    escape: translate them at the adapter's edge. Returned models may be shared between calls
    (adapters may cache them), so callers treat them as read-only.
    """

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build the adapter from the ``settings`` mapping of its config entry."""
        ...

    def capabilities(self) -> AdapterCapabilities:
        """The types, interactions and search parameters served (cheap, no I/O)."""
        ...

    async def start(self) -> None:
        """Open connections and pools; called once before serving."""
        ...

    async def close(self) -> None:
        """Release every connection; called once at shutdown."""
        ...

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        """One resource by logical id, as a validated R4B model."""
        ...

    async def search(self, query: his_sdk.search.SearchQuery) -> SearchPage:
        """One page of matches for a validated query, in a stable order.

        ``query.position`` is the ``next_position`` of the previous page or None.
        """
        ...

    async def execute(self, write: ApprovedWrite) -> WriteOutcome:
        """Execute an approved write exactly once per ``write.key``."""
        ...

    async def health(self) -> HealthStatus:
        """Whether the upstream answers, checked cheaply."""
        ...
