"""The FHIR service core: validate, page and shape around the handler chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.resource import Resource

import his_sdk
import his_sdk.errors
from his_sdk._fhir import model_class
from his_sdk.adapter import AdapterCapabilities, Interaction
from his_sdk.config import PagingSettings
from his_sdk.search import SearchQuery, SummaryMode, lift_result_parameters, parse_criteria
from his_sdk.server._context import CallContext
from his_sdk.server._handlers import CallHandler, ReadInput, SearchInput
from his_sdk.server._paging import CursorCodec
from his_sdk.server._routing import AdapterRouter

__all__ = ["FhirService", "SearchResult", "Shaping"]

_MAX_ID = 64


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
    ) -> None:
        self._router = router
        self._chain = chain
        self._paging = paging
        self._cursors = CursorCodec(paging.cursor_secret)
        self._instance = instance
        self._started = datetime.now(UTC)

    async def read(self, call: CallContext, resource_type: str, resource_id: str) -> Resource:
        """Read one resource by type and id."""
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
