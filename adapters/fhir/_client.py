"""fhirpy's async client with every request sent through the adapter's resilient transport."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fhirpy import AsyncFHIRClient

from ._transport import UpstreamHttp

__all__ = ["UpstreamFhirClient"]


class UpstreamFhirClient(AsyncFHIRClient):
    """fhirpy builds the queries and URLs; :class:`UpstreamHttp` sends them.

    fhirpy's own request path opens a new aiohttp session per call and keeps no status or
    headers in its errors; the transport keeps a connection pool and needs ``Retry-After``.

    Args:
        base_url: The upstream's base URL.
        http: The transport.
    """

    def __init__(self, base_url: str, http: UpstreamHttp) -> None:
        super().__init__(base_url)
        self._upstream = http

    async def _do_request(
        self,
        method: str,
        path: str,
        data: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
        *,
        returning_status: bool = False,
    ) -> Any:
        url = self._build_request_url(path, params)
        # Name only the path in errors: query strings can carry patient data.
        action = f"{method.upper()} {urlsplit(url).path}"
        response = await self._upstream.request(
            method.upper(), url, action=action, body=data, headers=extra_headers
        )
        body = response.json() if response.content else None
        return (body, response.status) if returning_status else body
