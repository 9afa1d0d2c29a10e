"""Content negotiation for ``application/fhir+json`` and the JSON responses of the facade."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from ._problems import HttpProblem

__all__ = ["FHIR_JSON", "JSON", "negotiate", "render"]

FHIR_JSON = "application/fhir+json"
"""The FHIR R4 JSON media type, the facade's default."""
JSON = "application/json"
"""Plain JSON, answered to clients that ask only for it."""

# Media types and _format values the facade can produce, mapped to what it answers with.
_PRODUCIBLE = {
    FHIR_JSON: FHIR_JSON,
    "application/json+fhir": FHIR_JSON,
    JSON: JSON,
    "text/json": JSON,
    "json": FHIR_JSON,
    "*/*": FHIR_JSON,
    "application/*": FHIR_JSON,
}
_XML = ("xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir")


def _ranges(accept: str) -> list[tuple[float, int, str]]:
    ranges = []
    for index, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((-quality, index, media.lower()))
    return sorted(ranges)


def negotiate(accept: str | None, format_param: str | None) -> str:
    """The media type to answer with, from ``_format`` (which wins) or the Accept header.

    Raises:
        HttpProblem: 406 when only XML or other unproducible types are acceptable.
    """
    if format_param:
        # An unencoded "+" in "application/fhir+json" arrives as a space.
        wanted = format_param.strip().lower().replace(" ", "+")
        produced = _PRODUCIBLE.get(wanted)
        if produced is None or wanted in ("*/*", "application/*"):
            raise HttpProblem(
                406,
                "not-supported",
                f"_format {format_param!r} is not supported; this server speaks {FHIR_JSON} only",
            )
        return produced
    if not accept or not accept.strip():
        return FHIR_JSON
    for quality, _, media in _ranges(accept):
        if quality < 0 and media in _PRODUCIBLE:
            return _PRODUCIBLE[media]
    offered = "XML" if any(m in _XML for _, _, m in _ranges(accept)) else "the accepted types"
    raise HttpProblem(
        406, "not-supported", f"cannot answer in {offered}; this server speaks {FHIR_JSON} only"
    )


def render(
    body: dict[str, Any] | None,
    *,
    status: int = 200,
    media_type: str = FHIR_JSON,
    pretty: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON response with ``charset=utf-8``; ``body`` None gives an empty one (304)."""
    if body is None:
        content = b""
    elif pretty:
        content = json.dumps(body, indent=2, ensure_ascii=False).encode()
    else:
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    response = Response(content, status_code=status, headers=headers)
    if body is not None:
        response.headers["content-type"] = f"{media_type}; charset=utf-8"
    return response
