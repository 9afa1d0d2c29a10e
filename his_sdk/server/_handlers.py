"""The chain of call handlers every FHIR call passes: authorization, then the adapter.

Writes take the same chain to a different end: authorization, then the approval gate, which
queues them for human review; no handler ever hands a write to an adapter.

Each handler receives one frozen input per call and delegates to the next, as Temporal's
interceptors do; the gRPC servicer, the REST facade and the MCP server all enter the chain
through :class:`his_sdk.server.FhirService`, so none of them re-implements policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from fhir.resources.R4B.resource import Resource

import his_sdk.errors
from his_sdk._fhir import patient_of
from his_sdk.adapter import Interaction, PatientFacts, SearchPage
from his_sdk.auth import Principal
from his_sdk.policy import AccessRequest, Decision, PolicyEngine
from his_sdk.search import Criterion, ParamType, SearchQuery, parse_criteria
from his_sdk.server._break_glass import BreakGlassLog
from his_sdk.server._context import CallContext
from his_sdk.server._routing import AdapterRouter
from his_sdk.server._writes import ProposalResult, ProposedWrite, WriteQueue

__all__ = [
    "AdapterHandler",
    "ApprovalGateHandler",
    "AuthorizationHandler",
    "CallHandler",
    "ReadInput",
    "SearchInput",
    "WriteInput",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadInput:
    """One read call."""

    call: CallContext
    resource_type: str
    resource_id: str


@dataclass(frozen=True)
class SearchInput:
    """One search call, with criteria already validated against the adapter."""

    call: CallContext
    query: SearchQuery
    raw_parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WriteInput:
    """One proposed write, validated against the adapter's capabilities.

    Attributes:
        call: The proposing call.
        interaction: CREATE, UPDATE or DELETE.
        resource_type: The type written.
        resource_id: The target of an UPDATE or DELETE.
        resource: The proposed body (CREATE and UPDATE).
        justification: The agent's reason (never empty).
        idempotency_key: The caller's key, or None.
        current: The EHR's current version of the target, once a handler has read it.
    """

    call: CallContext
    interaction: Interaction
    resource_type: str
    resource_id: str | None
    resource: Resource | None
    justification: str
    idempotency_key: str | None = None
    current: Resource | None = None


class CallHandler:
    """A link in the chain: override what you need and call ``self.next``."""

    def __init__(self, next_handler: CallHandler | None = None) -> None:
        self._next = next_handler

    @property
    def next(self) -> CallHandler:
        """The following handler."""
        if self._next is None:
            raise RuntimeError(f"{type(self).__name__} is the last handler and has no next")
        return self._next

    async def read(self, input: ReadInput) -> Resource:
        """Read one resource."""
        return await self.next.read(input)

    async def search(self, input: SearchInput) -> SearchPage:
        """Search one page."""
        return await self.next.search(input)

    async def propose(self, input: WriteInput) -> ProposalResult:
        """Propose a write."""
        return await self.next.propose(input)


class ApprovalGateHandler(CallHandler):
    """Where writes leave the chain: into the approval queue, never to an adapter.

    Reads and searches pass through. For UPDATE and DELETE the EHR's current version of the
    target is read (through the rest of the chain, already authorized) so reviewers see what
    the write changes.
    """

    def __init__(self, next_handler: CallHandler, queue: WriteQueue | None) -> None:
        super().__init__(next_handler)
        self._queue = queue

    async def propose(self, input: WriteInput) -> ProposalResult:
        """Queue the write for approval.

        Raises:
            his_sdk.errors.UnsupportedError: No approval queue is configured.
        """
        if self._queue is None:
            raise his_sdk.errors.UnsupportedError(
                "writes need the approval queue, which this gateway does not run"
            )
        current = input.current
        if current is None and input.resource_id is not None:
            current = await self.next.read(
                ReadInput(input.call, input.resource_type, input.resource_id)
            )
        subject = input.resource if input.resource is not None else current
        patient = patient_of(subject) if subject is not None else None
        return await self._queue.propose(
            ProposedWrite(
                call=input.call,
                interaction=input.interaction,
                resource_type=input.resource_type,
                resource_id=input.resource_id,
                resource=input.resource,
                current=current,
                patient_id=patient,
                justification=input.justification,
                idempotency_key=input.idempotency_key,
            )
        )


class AdapterHandler(CallHandler):
    """The end of the chain: hand the call to the adapter serving the type."""

    def __init__(self, router: AdapterRouter) -> None:
        super().__init__(None)
        self._router = router

    async def read(self, input: ReadInput) -> Resource:
        """Read through the routed adapter."""
        adapter, _ = self._router.route(input.resource_type, Interaction.READ)
        return await adapter.read(input.resource_type, input.resource_id)

    async def search(self, input: SearchInput) -> SearchPage:
        """Search through the routed adapter."""
        adapter, _ = self._router.route(input.query.resource_type, Interaction.SEARCH)
        return await adapter.search(input.query)

    async def propose(self, input: WriteInput) -> ProposalResult:
        """Refuse: a write reaches an adapter only after approval, never from a call.

        Raises:
            his_sdk.errors.UnsupportedError: Always.
        """
        raise his_sdk.errors.UnsupportedError(
            "writes need the approval queue, which this gateway does not run"
        )


class _FactsCache:
    """Short-lived cache of patient facts: one lookup per patient per TTL, not per call."""

    def __init__(self, router: AdapterRouter, ttl_seconds: float) -> None:
        self._router = router
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, PatientFacts]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def get(self, patient_id: str) -> PatientFacts | None:
        provider = self._router.facts_provider
        if provider is None:
            return None
        now = time.monotonic()
        hit = self._entries.get(patient_id)
        if hit and hit[0] > now:
            return hit[1]
        async with self._locks[patient_id]:
            hit = self._entries.get(patient_id)
            if hit and hit[0] > time.monotonic():
                return hit[1]
            facts = await provider.patient_facts(patient_id)
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[patient_id] = (time.monotonic() + self._ttl, facts)
            return facts


class AuthorizationHandler(CallHandler):
    """Ask the policy once per call and compartment; deny, constrain or let the call through."""

    def __init__(
        self,
        next_handler: CallHandler,
        *,
        policy: PolicyEngine,
        router: AdapterRouter,
        break_glass: BreakGlassLog,
        facts_ttl_seconds: float,
    ) -> None:
        super().__init__(next_handler)
        self._policy = policy
        self._router = router
        self._break_glass = break_glass
        self._facts = _FactsCache(router, facts_ttl_seconds)

    async def read(self, input: ReadInput) -> Resource:
        """Authorize a read: before fetching for a Patient, after fetching for anything else."""
        principal = _require_principal(input.call)
        if input.resource_type == "Patient":
            decision = await self._decide(
                input.call, principal, "read", "Patient", input.resource_id
            )
            resource = await self.next.read(input)
        else:
            # A type-level check first, so callers without any scope learn nothing about ids.
            self._check_type_scope(principal, "read", input.resource_type)
            resource = await self.next.read(input)
            decision = await self._decide(
                input.call, principal, "read", input.resource_type, patient_of(resource)
            )
        if decision.granular_filters:
            await self._check_granular_read(input, decision)
        return resource

    async def search(self, input: SearchInput) -> SearchPage:
        """Authorize a search per patient compartment and add the constraints policy demands."""
        principal = _require_principal(input.call)
        query = input.query
        compartments: list[str | None] = list(_compartments(query)) or [None]
        decisions = [
            await self._decide(input.call, principal, "search", query.resource_type, patient)
            for patient in compartments
        ]
        extra: list[tuple[str, str]] = []
        required = {d.required_patient for d in decisions if d.required_patient}
        if required:
            name = "_id" if query.resource_type == "Patient" else "patient"
            extra += [(name, patient) for patient in sorted(required)]
        extra += _merge_filters(d.granular_filters for d in decisions)
        if extra:
            query = replace(query, criteria=query.criteria + self._criteria(query, extra))
            input = replace(input, query=query)
        return await self.next.search(input)

    async def propose(self, input: WriteInput) -> ProposalResult:
        """Authorize a write like a read: scope, role, care team and consent decide.

        The patient compartment of the proposed body is checked, and for UPDATE and DELETE also
        that of the EHR's current version, so a write can neither reach into nor move a
        resource out of a compartment the caller may not write.
        """
        principal = _require_principal(input.call)
        action = input.interaction.value
        self._check_type_scope(principal, action, input.resource_type)
        patients: set[str | None] = set()
        if input.resource is not None:
            patients.add(patient_of(input.resource))
        if input.resource_id is not None and input.current is None:
            current = await self.next.read(
                ReadInput(input.call, input.resource_type, input.resource_id)
            )
            input = replace(input, current=current)
        if input.current is not None:
            patients.add(patient_of(input.current))
        for patient in sorted(patients, key=lambda p: p or ""):
            decision = await self._decide(
                input.call, principal, action, input.resource_type, patient
            )
            if decision.granular_filters or decision.required_patient not in (None, patient):
                # Granular scope filters narrow queries; a written body cannot be narrowed.
                raise his_sdk.errors.PermissionDeniedError(
                    f"the token's scopes do not permit {action} on {input.resource_type} "
                    "without restrictions; writes need an unfiltered scope"
                )
        return await self.next.propose(input)

    def _criteria(self, query: SearchQuery, params: list[tuple[str, str]]) -> tuple[Criterion, ...]:
        _, capability = self._router.route(query.resource_type, Interaction.SEARCH)
        try:
            return parse_criteria(query.resource_type, params, capability.search_params)
        except his_sdk.errors.InvalidRequestError as exc:
            raise his_sdk.errors.PermissionDeniedError(
                f"the token's scopes restrict {query.resource_type} by a parameter this "
                "gateway cannot apply",
                diagnostics=exc.message,
            ) from exc

    def _check_type_scope(self, principal: Principal, action: str, resource_type: str) -> None:
        interaction = {"read": "r", "search": "s", "create": "c", "update": "u", "delete": "d"}[
            action
        ]
        if not principal.scopes_for(resource_type, interaction):
            decision = self._policy.decide(
                principal, AccessRequest(action, resource_type, None, None), None
            )
            raise his_sdk.errors.PermissionDeniedError(decision.message or "access denied")

    async def _decide(
        self,
        call: CallContext,
        principal: Principal,
        action: str,
        resource_type: str,
        patient_id: str | None,
    ) -> Decision:
        if patient_id:
            call.audit_notes.add_patients([patient_id])
        facts = await self._facts.get(patient_id) if patient_id else None
        request = AccessRequest(action, resource_type, patient_id, call.break_glass_reason)
        decision = self._policy.decide(principal, request, facts)
        if not decision.allowed:
            raise his_sdk.errors.PermissionDeniedError(
                decision.message or "access denied by policy",
                diagnostics=decision.reason_code,
            )
        if decision.break_glass:
            await self._break_glass.record(call, principal, request)
        return decision

    async def _check_granular_read(self, input: ReadInput, decision: Decision) -> None:
        params = [("_id", input.resource_id), *_merge_filters([decision.granular_filters])]
        query = SearchQuery(input.resource_type, count=1)
        query = replace(query, criteria=self._criteria(query, params))
        page = await self.next.search(SearchInput(input.call, query))
        if not page.resources:
            raise his_sdk.errors.PermissionDeniedError(
                f"{input.resource_type}/{input.resource_id} is outside the filters of the "
                "token's granular scopes"
            )


def _require_principal(call: CallContext) -> Principal:
    if call.principal is None:
        raise his_sdk.errors.AuthenticationError("a bearer token is required")
    return call.principal


def _compartments(query: SearchQuery) -> list[str]:
    name = "_id" if query.resource_type == "Patient" else "patient"
    ids: list[str] = []
    for criterion in query.criteria:
        if criterion.name != name or criterion.modifier is not None:
            continue
        for value in criterion.values:
            if criterion.type is ParamType.REFERENCE:
                ids.append(value.id)  # type: ignore[union-attr]
            elif criterion.type is ParamType.TOKEN and value.code:  # type: ignore[union-attr]
                ids.append(value.code)  # type: ignore[union-attr]
    return sorted(set(ids))


def _merge_filters(groups: Iterable[tuple[tuple[str, str], ...]]) -> list[tuple[str, str]]:
    # Filters from several granting scopes OR together on the same parameter.
    merged: dict[str, list[str]] = {}
    for group in groups:
        for name, value in group:
            values = merged.setdefault(name, [])
            if value not in values:
                values.append(value)
    return [(name, ",".join(values)) for name, values in merged.items()]
