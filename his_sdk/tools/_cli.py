"""``his mcp``: serve the gateway's tools to one agent over stdio or to many over HTTP.

The MCP SDK is imported when the command runs, so other ``his`` commands start without it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from his_sdk.client import TlsConfig

__all__ = ["mcp_command"]


@click.command("mcp")
@click.option(
    "--target", default="127.0.0.1:50051", show_default=True, help="The gateway's gRPC host:port."
)
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio for one agent; streamable HTTP (token per request) for many.",
)
@click.option(
    "--token",
    envvar="HIS_MCP_TOKEN",
    default=None,
    help="The agent's own bearer token (stdio); also read from HIS_MCP_TOKEN.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP address to bind.")
@click.option("--port", default=8765, show_default=True, help="HTTP port (0 picks one).")
@click.option(
    "--tls-ca",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="PEM roots to verify the gateway with; TLS is on when given.",
)
@click.option(
    "--max-result-bytes",
    type=int,
    default=None,
    help="Context budget of one tool result (default 16384); larger results carry "
    "references instead.",
)
def mcp_command(
    target: str,
    transport: str,
    token: str | None,
    host: str,
    port: int,
    tls_ca: Path | None,
    max_result_bytes: int | None,
) -> None:
    """Serve the gateway's tool registry over the Model Context Protocol.

    The server has no identity of its own: over stdio it calls the gateway with the agent's
    token (--token or HIS_MCP_TOKEN); over HTTP with the bearer token of each request.
    """
    # stdout carries the protocol on stdio: logs go to stderr.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    tls = TlsConfig(root_certificates=tls_ca.read_bytes()) if tls_ca else None
    from his_sdk.mcp import DEFAULT_MAX_RESULT_BYTES, serve_http, serve_stdio

    budget = max_result_bytes or DEFAULT_MAX_RESULT_BYTES

    if transport == "stdio":
        if not token:
            raise click.UsageError("stdio needs the agent's token: --token or HIS_MCP_TOKEN")
        asyncio.run(serve_stdio(target, token, tls=tls, max_result_bytes=budget))
    else:
        asyncio.run(serve_http(target, host=host, port=port, tls=tls, max_result_bytes=budget))
