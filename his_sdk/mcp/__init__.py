"""The MCP server: the gateway's governed tools for agents, with the agent's own token.

:class:`HisMcpServer` answers MCP ``tools/list`` and ``tools/call`` by calling the gateway's
ToolRegistry as the agent; :func:`serve_stdio` and :class:`McpHttpApp`/:func:`serve_http`
are its transports; ``his mcp`` (:data:`his_sdk.tools.mcp_command`) runs them.
"""

from his_sdk.mcp._budget import DEFAULT_MAX_RESULT_BYTES, budget_result
from his_sdk.mcp._server import HisMcpServer
from his_sdk.mcp._transports import McpHttpApp, serve_http, serve_stdio

__all__ = [
    "DEFAULT_MAX_RESULT_BYTES",
    "HisMcpServer",
    "McpHttpApp",
    "budget_result",
    "serve_http",
    "serve_stdio",
]
