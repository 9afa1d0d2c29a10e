"""Toy implementations for tests: an in-memory adapter over FHIR resources."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fhir.resources.R4B.resource import Resource

import his_sdk.errors
from his_sdk._fhir import parse_resource, patient_compartment
from his_sdk.adapter import (
    AdapterCapabilities,
    ApprovedWrite,
    HealthState,
    HealthStatus,
    Interaction,
    PatientFacts,
    SearchPage,
    TypeCapability,
    WriteOutcome,
)
from his_sdk.search import ParamType, SearchParamDef, SearchQuery, TokenValue

_PARAMS = {
    "_id": SearchParamDef("_id", ParamType.TOKEN, "logical id"),
    "patient": SearchParamDef("patient", ParamType.REFERENCE, "the patient", target="Patient"),
    "code": SearchParamDef("code", ParamType.TOKEN, "code"),
    "category": SearchParamDef("category", ParamType.TOKEN, "category"),
}
_PATIENT_PARAMS = {"_id": _PARAMS["_id"]}


class MemoryAdapter:
    """Serves FHIR resources held in memory; search supports _id, patient, code, category."""

    def __init__(
        self,
        resources: Iterable[dict[str, Any]],
        *,
        care_teams: Mapping[str, frozenset[str]] | None = None,
        opted_out: Iterable[str] = (),
    ) -> None:
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        for data in resources:
            self.resources[(data["resourceType"], data["id"])] = data
        self.care_teams = dict(care_teams or {})
        self.opted_out = set(opted_out)
        self.started = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MemoryAdapter:
        return cls(json.loads(Path(settings["file"]).read_text()))

    def capabilities(self) -> AdapterCapabilities:
        types = {t for t, _ in self.resources}
        return AdapterCapabilities(
            {
                t: TypeCapability(
                    t,
                    frozenset({Interaction.READ, Interaction.SEARCH}),
                    _PATIENT_PARAMS if t == "Patient" else _PARAMS,
                )
                for t in types
            }
        )

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        data = self.resources.get((resource_type, resource_id))
        if data is None:
            raise his_sdk.errors.NotFoundError(f"{resource_type}/{resource_id} not found")
        return parse_resource(resource_type, data)

    async def search(self, query: SearchQuery) -> SearchPage:
        matches = [
            data
            for (t, _), data in sorted(self.resources.items())
            if t == query.resource_type and all(_match(data, c) for c in query.criteria)
        ]
        start = int(query.position or 0)
        page = matches[start : start + query.count]
        nxt = str(start + query.count) if start + query.count < len(matches) else None
        return SearchPage(
            [parse_resource(query.resource_type, d) for d in page],
            next_position=nxt,
            total=len(matches) if query.include_total else None,
        )

    async def execute(self, write: ApprovedWrite) -> WriteOutcome:
        raise his_sdk.errors.UnsupportedError("the memory adapter is read-only")

    async def health(self) -> HealthStatus:
        return HealthStatus(HealthState.SERVING)

    async def patient_facts(self, patient_id: str) -> PatientFacts:
        return PatientFacts(
            patient_id,
            exists=("Patient", patient_id) in self.resources,
            care_team=self.care_teams.get(patient_id, frozenset()),
            consent_opt_out=patient_id in self.opted_out,
        )


def _codes(data: dict[str, Any], element: str) -> list[tuple[str | None, str | None]]:
    value = data.get(element)
    concepts = value if isinstance(value, list) else [value] if value else []
    return [(c.get("system"), c.get("code")) for cc in concepts for c in cc.get("coding", [])]


def _match(data: dict[str, Any], criterion: Any) -> bool:
    if criterion.name == "_id":
        return any(v.code == data["id"] for v in criterion.values)
    if criterion.name == "patient":
        return any(v.id == patient_compartment(data) for v in criterion.values)
    codes = _codes(data, criterion.name)
    return any(
        isinstance(v, TokenValue)
        and (v.system is None or v.system == s)
        and (v.code is None or v.code == c)
        for v in criterion.values
        for s, c in codes
    )
