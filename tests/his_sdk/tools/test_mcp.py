"""``his mcp`` driven by the MCP SDK's own client: stdio (a real subprocess) and streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from his_sdk.mcp import McpHttpApp, budget_result
from his_sdk.mcp._transports import uvicorn_server

ROOT = Path(__file__).resolve().parents[3]
OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 72, "unit": "/min"},
}


@asynccontextmanager
async def stdio_session(
    target: str, token: str, errlog: TextIO, *extra: str
) -> AsyncIterator[ClientSession]:
    env = {**os.environ, "HIS_MCP_TOKEN": token, "PYTHONPATH": str(ROOT)}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "his_sdk.cli", "mcp", "--target", target, *extra],
        env=env,
        cwd=str(ROOT),
    )
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@pytest.fixture(scope="module")
def errlog() -> Iterator[TextIO]:
    with open(os.devnull, "w") as devnull:
        yield devnull


@asynccontextmanager
async def http_server(target: str, **options) -> AsyncIterator[str]:
    server = uvicorn_server(McpHttpApp(target, **options), "127.0.0.1", 0)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def http_session(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def test_stdio_lists_what_the_agent_may_call_and_runs_tools(
    target, readonly_token, clinician_token, errlog
):
    async with stdio_session(target, readonly_token, errlog) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "propose_create_observation" not in tools and "cha2ds2_vasc" not in tools
        bmi = tools["bmi"]
        assert bmi.annotations is not None and bmi.annotations.readOnlyHint is True
        assert bmi.annotations.destructiveHint is False
        assert "Risk: low." in (bmi.description or "")

        result = await session.call_tool("qtc_fridericia", {"qt_interval": 400, "heart_rate": 75})
        assert not result.isError and result.structuredContent == {"value": 431, "unit": "ms"}

        denied = await session.call_tool("cha2ds2_vasc", {"age": 70, "sex": "female"})
        assert denied.isError
        assert denied.content[0].text.startswith("PERMISSION_DENIED: tool cha2ds2_vasc")

        invalid = await session.call_tool("bmi", {"weight": 70, "height": 1.75})
        assert invalid.isError and "INVALID_ARGUMENT" in invalid.content[0].text
        assert "outside the plausible range" in invalid.content[0].text

        first = await session.call_tool(
            "search_observation", {"params": {"patient": "p1"}, "count": 5}
        )
        page = first.structuredContent
        assert not first.isError and page["count"] == 5 and page["next_cursor"]
        second = await session.call_tool(
            "search_observation",
            {"params": {"patient": "p1"}, "count": 5, "cursor": page["next_cursor"]},
        )
        assert second.structuredContent["count"] == 3
        assert second.structuredContent["next_cursor"] is None

    async with stdio_session(target, clinician_token, errlog) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        create = tools["propose_create_observation"]
        assert create.annotations.readOnlyHint is False
        assert "justification" in create.inputSchema["required"]
        result = await session.call_tool(
            "propose_create_observation",
            {"resource": OBSERVATION, "justification": "heart rate measured at the bedside"},
        )
        assert not result.isError
        assert result.structuredContent["task"]["status"] == "requested"
        assert result.structuredContent["resource"]["resourceType"] == "Task"


async def test_stdio_refuses_to_start_without_a_token(target):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "his_sdk.cli",
        "mcp",
        "--target",
        target,
        env={k: v for k, v in os.environ.items() if k != "HIS_MCP_TOKEN"},
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 2 and b"HIS_MCP_TOKEN" in err


async def test_streamable_http_acts_with_each_requests_token(
    target, readonly_token, clinician_token
):
    async with http_server(target, max_result_bytes=2500) as url:
        async with http_session(url, readonly_token) as readonly:
            names = {t.name for t in (await readonly.list_tools()).tools}
            assert "propose_create_observation" not in names and "bmi" in names
            denied = await readonly.call_tool(
                "propose_create_observation",
                {"resource": OBSERVATION, "justification": "measured"},
            )
            assert denied.isError and "PERMISSION_DENIED" in denied.content[0].text
            # A full page does not fit the small budget: some resources become references.
            page = await readonly.call_tool(
                "search_observation", {"params": {"patient": "p1"}, "summary": "false"}
            )
            assert not page.isError
            content = page.structuredContent
            assert content["references"] and content["references"][0]["reference"].startswith(
                "Observation/"
            )
            assert len(content["resources"]) + len(content["references"]) == 8
            assert len(page.content[0].text.encode()) <= 2500

        async with http_session(url, clinician_token) as clinician:
            names = {t.name for t in (await clinician.list_tools()).tools}
            assert "propose_create_observation" in names
            task = await clinician.call_tool(
                "propose_create_observation",
                {"resource": OBSERVATION, "justification": "heart rate measured at the bedside"},
            )
            assert not task.isError and task.structuredContent["task"]["status"] == "requested"

        async with httpx.AsyncClient(timeout=10) as http:
            anonymous = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert anonymous.status_code == 401


def test_budget_turns_a_large_read_into_a_reference():
    resource = {"resourceType": "Observation", "id": "o1", "note": [{"text": "x" * 500}]}
    trimmed = budget_result({"resource": resource}, 200, None)
    assert trimmed["reference"] == {"reference": "Observation/o1"}
    assert trimmed["elements"] == ["id", "note", "resourceType"]
    small = {"resource": {"resourceType": "Patient", "id": "p1"}}
    assert budget_result(small, 200, None) is small
    assert json.loads(json.dumps(trimmed)) == trimmed
