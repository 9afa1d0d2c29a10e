"""An agent loop over MCP: a scripted planner picks tools from ``his mcp`` and chains results.

No hosted LLM: the planner is a fixed plan whose steps name the tools they need, skip what
the agent may not call, and feed each result into the next step, as a model would. The MCP
server runs as a subprocess over stdio with the agent's own token; the gateway authorizes and
audits every call as the agent's. Run after ``his serve --config examples/gateway.yaml``::

    python examples/mcp_agent_loop.py --config examples/gateway.yaml --target 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent, Tool

import his_sdk
from his_sdk.auth import DevIssuer
from his_sdk.config import load_settings

# Creatinine in serum/plasma and in blood (Synthea records the latter).
CREATININE = "http://loinc.org|2160-0,http://loinc.org|38483-4"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
AGENT_SCOPES = "user/Patient.rs user/Observation.rs user/Encounter.rs user/Condition.c"


def show(title: str, value: object = "") -> None:
    print(f"\n--- {title}")
    if value != "":
        print(value if isinstance(value, str) else json.dumps(value, indent=2)[:1200])


def find_patient_and_clinician(target: str, issuer: DevIssuer, audience: str) -> tuple[str, str]:
    """What a SMART launch would hand the agent: a patient with labs and their clinician."""
    token = issuer.mint(
        client_id="launch-service",
        audience=audience,
        scopes="system/Observation.rs system/Encounter.rs",
        roles=("system",),
    )
    with his_sdk.HisClient.connect(target, token=token) as service:
        labs = service.search("Observation", {"code": CREATININE}, count=1)
        if not labs.resources:
            labs = service.search("Observation", {"category": "laboratory"}, count=1)
        reference = labs.resources[0].subject.reference  # type: ignore[attr-defined]
        patient = reference.split("/", 1)[1]
        encounters = service.search("Encounter", {"patient": patient}, count=50)
        clinician = next(
            p.individual.reference
            for e in encounters
            for p in (getattr(e, "participant", None) or [])
            if p.individual is not None and p.individual.reference
        )
    return patient, clinician


class Agent:
    """The scripted planner: each step asks for a tool and reads what earlier steps found."""

    def __init__(self, session: ClientSession, tools: dict[str, Tool]) -> None:
        self.session = session
        self.tools = tools
        self.facts: dict[str, Any] = {}

    async def call(
        self, name: str, arguments: dict[str, Any], *, listed: bool = True
    ) -> dict[str, Any] | None:
        if listed and name not in self.tools:
            show(f"skip {name}: not in this agent's tool list")
            return None
        result: CallToolResult = await self.session.call_tool(name, arguments)
        if result.isError:
            text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
            show(f"{name} refused", text)
            return None
        return result.structuredContent

    async def run(self, patient: str) -> None:
        chart = await self.call("read_patient", {"id": patient, "summary": "true"})
        if chart:
            resource = chart["resource"]
            self.facts["sex"] = resource.get("gender")
            born = datetime.date.fromisoformat(resource["birthDate"])
            self.facts["age"] = (datetime.date.today() - born).days // 365
            show(f"read_patient {patient}", {k: self.facts[k] for k in ("age", "sex")})

        page = await self.call(
            "search_observation", {"params": {"patient": patient, "category": "laboratory"}}
        )
        pages = 0
        while page and pages < 3:
            pages += 1
            show(
                f"search_observation page {pages}: {page['count']} summaries",
                [r.get("code", {}).get("text") or r["id"] for r in page["resources"]][:5],
            )
            if not page.get("next_cursor"):
                break
            page = await self.call(
                "search_observation",
                {
                    "params": {"patient": patient, "category": "laboratory"},
                    "cursor": page["next_cursor"],
                },
            )

        latest = await self.call(
            "search_observation",
            {"params": {"patient": patient, "code": CREATININE}, "count": 1, "summary": "false"},
        )
        if latest and latest["resources"] and {"age", "sex"} <= self.facts.keys():
            quantity = latest["resources"][0].get("valueQuantity", {})
            unit = "umol/L" if "mol" in str(quantity.get("unit", "")) else "mg/dL"
            egfr = await self.call(
                "ckd_epi_2021",
                {
                    "creatinine": quantity["value"],
                    "creatinine_unit": unit,
                    "age": max(18, self.facts["age"]),
                    "sex": self.facts["sex"],
                },
            )
            show("ckd_epi_2021 on the latest creatinine", egfr)
            self.facts["egfr"] = egfr

        qtc = await self.call("qtc_fridericia", {"qt_interval": 410, "heart_rate": 88})
        show("qtc_fridericia on the bedside ECG (QT 410 ms at 88/min)", qtc)

        show("cha2ds2_vasc is not listed (it needs Condition.r); calling it anyway")
        await self.call("cha2ds2_vasc", {"age": 70, "sex": "female"}, listed=False)

        if qtc and qtc["value"] > 450:
            condition = {
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
                "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "provisional"}]},
                "code": {
                    "coding": [{"system": "http://snomed.info/sct", "code": "111975006"}],
                    "text": "Prolonged QT interval",
                },
                "subject": {"reference": f"Patient/{patient}"},
                "note": [{"text": f"QTc (Fridericia) {qtc['value']} ms on the bedside ECG"}],
            }
            task = await self.call(
                "propose_create_condition",
                {
                    "resource": condition,
                    "justification": f"QTc {qtc['value']} ms (Fridericia) exceeds 450 ms",
                    "idempotency_key": f"qtc-{patient}",
                },
            )
            if task:
                show("high risk: queued for a reviewer, nothing written yet", task["task"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("examples/gateway.yaml"))
    parser.add_argument("--target", default="127.0.0.1:50051")
    args = parser.parse_args()
    settings = load_settings(args.config)
    assert settings.auth.jwks_file is not None, "the demo config names the dev issuer's JWKS"
    issuer = DevIssuer.load(Path(settings.auth.jwks_file).parent)
    patient, clinician = find_patient_and_clinician(args.target, issuer, settings.auth.audience)

    token = issuer.mint(
        client_id="ward-assistant-agent",
        audience=settings.auth.audience,
        scopes=AGENT_SCOPES,
        roles=("clinician",),
        act_subject="clinician-demo",
        act_fhir_user=clinician,
    )
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "his_sdk.cli", "mcp", "--target", args.target],
        env={**os.environ, "HIS_MCP_TOKEN": token},
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = (await session.list_tools()).tools
        tools = {t.name: t for t in listed}
        show(
            f"{len(tools)} tools this agent may call",
            "\n".join(
                f"  {t.name:32} read-only={t.annotations.readOnlyHint if t.annotations else '?'}"
                for t in listed
            ),
        )
        await Agent(session, tools).run(patient)


if __name__ == "__main__":
    asyncio.run(main())
