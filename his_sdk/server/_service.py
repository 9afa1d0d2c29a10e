"""The FHIR service core: validate, page and shape around the handler chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

import his_sdk
import his_sdk.errors
from his_sdk._fhir import model_class, patient_of
from his_sdk.adapter import AdapterCapabilities, Interaction
from his_sdk.audit import AuditAction
from his_sdk.config import PagingSettings
from his_sdk.search import SearchQuery, SummaryMode, lift_result_parameters, parse_criteria
from his_sdk.server._auditing import CallAuditor, query_string
from his_sdk.server._context import CallContext
from his_sdk.server._handlers import CallHandler, ReadInput, SearchInput, WriteInput
from his_sdk.server._paging import CursorCodec
from his_sdk.server._routing import AdapterRouter
from his_sdk.server._writes import ProposalResult, WriteQueue

__all__ = ["FhirService", "SearchResult", "Shaping"]

_MAX_ID = 64
_MAX_JUSTIFICATION = 4000
_MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class Shaping:
    """How much of each resource to return (``_elements`` wins over ``_summary``)."""

    elements: tuple[str, ...] = ()
    summary: SummaryMode | None = None


@dataclass(frozen=True)
class SearchResult:
    """One page as the transports render it."""

    resources: list[Resource]
    next_cursor: str | None
    total: int | None
    shaping: Shaping


class FhirService:
    """Entry point shared by every transport (gRPC today; REST and MCP call the same object)."""

    def __init__(
        self,
        *,
        router: AdapterRouter,
        chain: CallHandler,
        paging: PagingSettings,
        instance: str = "his-gateway",
        writes: WriteQueue | None = None,
        auditor: CallAuditor | None = None,
    ) -> None:
        self._router = router
        self._auditor = auditor or CallAuditor(None)
        self._chain = chain
        self._writes = writes
        self._paging = paging
        self._cursors = CursorCodec(paging.cursor_secret)
        self._instance = instance
        self._started = datetime.now(UTC)

    async def read(self, call: CallContext, resource_type: str, resource_id: str) -> Resource:
        """Read one resource by type and id."""
        async with self._auditor.audit(
            call, AuditAction.READ, resource_type, resource_id=resource_id
        ) as notes:
            resource = await self._read(call, resource_type, resource_id)
            notes.add_patients([patient_of(resource)])
            return resource

    async def _read(self, call: CallContext, resource_type: str, resource_id: str) -> Resource:
        model_class(resource_type)
        _check_id(resource_id)
        self._router.route(resource_type, Interaction.READ)
        return await self._chain.read(ReadInput(call, resource_type, resource_id))

    async def search(
        self,
        call: CallContext,
        resource_type: str,
        parameters: Sequence[tuple[str, str]],
        *,
        count: int | None = None,
        cursor: str | None = None,
        elements: Sequence[str] = (),
        summary: SummaryMode | None = None,
        include_total: bool = False,
    ) -> SearchResult:
        """Search one page; ``parameters`` may also carry ``_count``/``_elements``/... pairs."""
        query = query_string(
            [
                *parameters,
                *([("_count", str(count))] if count is not None else []),
                *([("_elements", ",".join(elements))] if elements else []),
                *([("_summary", summary.value)] if summary else []),
                *([("_total", "accurate")] if include_total else []),
            ]
        )
        async with self._auditor.audit(
            call, AuditAction.SEARCH, resource_type, query=query
        ) as notes:
            result = await self._search(
                call,
                resource_type,
                parameters,
                count=count,
                cursor=cursor,
                elements=elements,
                summary=summary,
                include_total=include_total,
            )
            notes.add_patients(patient_of(r) for r in result.resources)
            return result

    async def _search(
        self,
        call: CallContext,
        resource_type: str,
        parameters: Sequence[tuple[str, str]],
        *,
        count: int | None,
        cursor: str | None,
        elements: Sequence[str],
        summary: SummaryMode | None,
        include_total: bool,
    ) -> SearchResult:
        model_class(resource_type)
        _, capability = self._router.route(resource_type, Interaction.SEARCH)
        lifted = lift_result_parameters(list(parameters))
        count = count if count is not None else lifted.count
        elements = tuple(elements) or lifted.elements
        summary = summary or lifted.summary
        include_total = include_total or lifted.include_total
        criteria = parse_criteria(resource_type, lifted.rest, capability.search_params)
        page_size = self._page_size(count)
        if summary is SummaryMode.COUNT:
            page_size, include_total = 0, True
        fingerprint = CursorCodec.fingerprint(
            [
                resource_type,
                sorted(lifted.rest),
                page_size,
                elements,
                summary,
                include_total,
                call.principal.client_id if call.principal else "",
                call.principal.subject if call.principal else "",
            ]
        )
        position = self._cursors.decode(cursor, fingerprint) if cursor else None
        query = SearchQuery(
            resource_type=resource_type,
            criteria=criteria,
            count=page_size,
            position=position,
            include_total=include_total,
        )
        page = await self._chain.search(SearchInput(call, query, tuple(lifted.rest)))
        next_cursor = (
            self._cursors.encode(page.next_position, fingerprint)
            if page.next_position and page_size
            else None
        )
        resources = page.resources if page_size else []
        return SearchResult(resources, next_cursor, page.total, Shaping(elements, summary))

    async def create(
        self,
        call: CallContext,
        resource_type: str,
        payload: bytes | str | Mapping[str, Any],
        *,
        justification: str,
        idempotency_key: str | None = None,
    ) -> ProposalResult:
        """Propose creating a resource; the answer is the Task of its approval request.

        An ``id`` in the body is dropped: the EHR assigns one when the write executes.

        Raises:
            his_sdk.errors.InvalidRequestError: The body is not a valid resource of the type,
                or the justification is missing.
            his_sdk.errors.UnsupportedError: No adapter creates the type.
            his_sdk.errors.PermissionDeniedError: The policy denies the write.
        """
        model_class(resource_type)
        self._router.route(resource_type, Interaction.CREATE)
        resource = _parse_body(resource_type, payload)
        resource.id = None
        return await self._chain.propose(
            WriteInput(
                call,
                Interaction.CREATE,
                resource_type,
                None,
                resource,
                _check_justification(justification),
                _check_key(idempotency_key),
            )
        )

    async def update(
        self,
        call: CallContext,
        resource_type: str,
        resource_id: str,
        payload: bytes | str | Mapping[str, Any],
        *,
        justification: str,
        idempotency_key: str | None = None,
    ) -> ProposalResult:
        """Propose replacing a resource; the body's ``id`` must equal ``resource_id``.

        Raises:
            his_sdk.errors.InvalidRequestError: Invalid body, mismatched id, no justification.
            his_sdk.errors.NotFoundError: The target does not exist.
            his_sdk.errors.UnsupportedError: No adapter updates the type.
            his_sdk.errors.PermissionDeniedError: The policy denies the write.
        """
        model_class(resource_type)
        _check_id(resource_id)
        self._router.route(resource_type, Interaction.UPDATE)
        resource = _parse_body(resource_type, payload)
        if resource.id != resource_id:
            raise his_sdk.errors.InvalidRequestError(
                "the resource's id must equal the id of the update", expression=["id"]
            )
        return await self._chain.propose(
            WriteInput(
                call,
                Interaction.UPDATE,
                resource_type,
                resource_id,
                resource,
                _check_justification(justification),
                _check_key(idempotency_key),
            )
        )

    async def delete(
        self,
        call: CallContext,
        resource_type: str,
        resource_id: str,
        *,
        justification: str,
        idempotency_key: str | None = None,
    ) -> ProposalResult:
        """Propose deleting a resource.

        Raises:
            his_sdk.errors.InvalidRequestError: Bad id or no justification.
            his_sdk.errors.NotFoundError: The target does not exist.
            his_sdk.errors.UnsupportedError: No adapter deletes the type.
            his_sdk.errors.PermissionDeniedError: The policy denies the write.
        """
        model_class(resource_type)
        _check_id(resource_id)
        self._router.route(resource_type, Interaction.DELETE)
        return await self._chain.propose(
            WriteInput(
                call,
                Interaction.DELETE,
                resource_type,
                resource_id,
                None,
                _check_justification(justification),
                _check_key(idempotency_key),
            )
        )

    async def get_task(self, call: CallContext, task_id: str) -> Task:
        """The Task of one approval request the caller proposed (or may review).

        Raises:
            his_sdk.errors.NotFoundError: No such request visible to the caller.
            his_sdk.errors.UnsupportedError: No approval queue runs here.
        """
        queue = self._queue(call)
        _check_id(task_id)
        return await queue.get_task(call, task_id)

    async def watch_task(self, call: CallContext, task_id: str) -> AsyncIterator[Task]:
        """The Task now and after each status change, until a terminal status.

        Raises:
            his_sdk.errors.NotFoundError: No such request visible to the caller.
            his_sdk.errors.UnsupportedError: No approval queue runs here.
        """
        queue = self._queue(call)
        _check_id(task_id)
        async for task in queue.watch_task(call, task_id):
            yield task

    def _queue(self, call: CallContext) -> WriteQueue:
        if call.principal is None:
            raise his_sdk.errors.AuthenticationError("a bearer token is required")
        if self._writes is None:
            raise his_sdk.errors.UnsupportedError(
                "writes need the approval queue, which this gateway does not run"
            )
        return self._writes

    def capabilities(self) -> dict[str, Any]:
        """The gateway's CapabilityStatement as a JSON-ready dict."""
        resources = AdapterCapabilities(self._router.types()).statement_fragment()
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": self._started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "kind": "instance",
            "software": {"name": "his-sdk gateway", "version": his_sdk.__version__},
            "implementation": {"description": self._instance},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json"],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "cors": False,
                        "service": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/"
                                        "restful-security-service",
                                        "code": "SMART-on-FHIR",
                                    }
                                ]
                            }
                        ],
                        "description": "OAuth2 bearer JWT with SMART App Launch v2 scopes.",
                    },
                    "resource": resources,
                }
            ],
        }

    def _page_size(self, count: int | None) -> int:
        if count is None or count < 0:
            return self._paging.default_count
        return min(count, self._paging.max_count)


def _check_id(resource_id: str) -> None:
    if (
        not resource_id
        or len(resource_id) > _MAX_ID
        or not all(c.isalnum() or c in "-." for c in resource_id)
    ):
        raise his_sdk.errors.InvalidRequestError(
            "resource id must be 1-64 characters of letters, digits, '-' and '.'",
            expression=["id"],
        )


def _parse_body(resource_type: str, payload: bytes | str | Mapping[str, Any]) -> Resource:
    if isinstance(payload, bytes | str):
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise his_sdk.errors.InvalidRequestError("the resource is not valid JSON") from exc
    else:
        data = dict(payload)
    if not isinstance(data, dict) or data.get("resourceType") != resource_type:
        raise his_sdk.errors.InvalidRequestError(
            f"the body must be a {resource_type} resource", expression=["resourceType"]
        )
    try:
        return model_class(resource_type).model_validate(data)
    except ValueError as exc:
        errors = getattr(exc, "errors", None)
        where = ""
        if callable(errors) and errors():
            first = errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            where = f"{where}: {first.get('type')}"
        raise his_sdk.errors.InvalidRequestError(
            f"the body is not a valid FHIR R4 {resource_type}", diagnostics=where or None
        ) from exc


def _check_justification(text: str) -> str:
    text = text.strip()
    if not text:
        raise his_sdk.errors.InvalidRequestError(
            "a write needs a justification: say why the agent proposes it",
            expression=["justification"],
        )
    if len(text) > _MAX_JUSTIFICATION:
        raise his_sdk.errors.InvalidRequestError(
            f"the justification is longer than {_MAX_JUSTIFICATION} characters",
            expression=["justification"],
        )
    return text


def _check_key(key: str | None) -> str | None:
    if not key:
        return None
    if len(key) > _MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise his_sdk.errors.InvalidRequestError(
            f"the idempotency key must be 1-{_MAX_IDEMPOTENCY_KEY} printable characters",
            expression=["idempotency_key"],
        )
    return key
