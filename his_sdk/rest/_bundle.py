"""Searchset Bundles with ``self`` and ``next`` links built from the service's signed cursor."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.resource import Resource

from his_sdk._fhir import resource_to_dict, shape
from his_sdk.server import SearchResult, Shaping

__all__ = ["CURSOR_PARAMETER", "searchset", "shaped"]

CURSOR_PARAMETER = "_cursor"
"""Query parameter carrying the signed paging cursor in ``next`` links."""


def shaped(resource: Resource, shaping: Shaping) -> dict[str, Any]:
    """A resource as JSON-ready dict with ``_elements``/``_summary`` applied."""
    data = resource_to_dict(resource)
    if shaping.elements or shaping.summary is not None:
        return shape(data, elements=shaping.elements, summary=shaping.summary)
    return data


def _link(base: str, resource_type: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params), safe=":,|")
    return f"{base}/{resource_type}?{query}" if query else f"{base}/{resource_type}"


def searchset(
    base: str,
    resource_type: str,
    params: Sequence[tuple[str, str]],
    result: SearchResult,
    *,
    cursor: str | None,
) -> dict[str, Any]:
    """The searchset Bundle of one page.

    Args:
        base: The service base URL, without a trailing slash.
        resource_type: The type searched.
        params: The caller's parameters, without the cursor; repeated in every link so the
            cursor's fingerprint matches on the next request.
        result: The page from :meth:`his_sdk.server.FhirService.search`.
        cursor: The cursor that produced this page, or None for the first page.
    """
    own = [*params, (CURSOR_PARAMETER, cursor)] if cursor else list(params)
    links = [{"relation": "self", "url": _link(base, resource_type, own)}]
    if result.next_cursor:
        after = [*params, (CURSOR_PARAMETER, result.next_cursor)]
        links.append({"relation": "next", "url": _link(base, resource_type, after)})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = links
    if result.resources:
        # FHIR JSON forbids empty arrays, so an empty page has no ``entry`` at all.
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/{r.get_resource_type()}/{r.id}",
                "resource": shaped(r, result.shaping),
                "search": {"mode": "match"},
            }
            for r in result.resources
        ]
    return bundle
