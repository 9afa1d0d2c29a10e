"""What the upstream serves, from its CapabilityStatement, as the gateway's type capabilities."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import his_sdk.errors
from his_sdk.adapter import Interaction, TypeCapability
from his_sdk.search import ParamType, SearchParamDef

__all__ = ["DiscoveredParams", "UpstreamCapabilities", "declared_types"]

_log = logging.getLogger(__name__)

_PARAM_TYPES = {t.value: t for t in ParamType}
# Targets of the reference parameters whose name fixes them in FHIR R4.
_KNOWN_TARGETS = {"patient": "Patient", "subject": None, "encounter": "Encounter"}


class DiscoveredParams(Mapping[str, SearchParamDef]):
    """The search parameters of one type, filled from the upstream's /metadata at start.

    The gateway validates every search against this mapping; before discovery it is empty,
    so no parameter passes that the upstream has not declared.
    """

    def __init__(self) -> None:
        self._params: dict[str, SearchParamDef] = {}

    def replace(self, params: Mapping[str, SearchParamDef]) -> None:
        """Install the discovered parameters."""
        self._params = dict(params)

    def __getitem__(self, key: str) -> SearchParamDef:
        return self._params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)


def declared_types(
    types: Sequence[str], writes: bool
) -> tuple[dict[str, TypeCapability], dict[str, DiscoveredParams]]:
    """The capabilities the adapter declares before it has talked to the upstream."""
    interactions = {Interaction.READ, Interaction.SEARCH}
    if writes:
        interactions |= {Interaction.CREATE, Interaction.UPDATE}
    capabilities: dict[str, TypeCapability] = {}
    params: dict[str, DiscoveredParams] = {}
    for name in types:
        params[name] = DiscoveredParams()
        capabilities[name] = TypeCapability(name, frozenset(interactions), params[name])
    return capabilities, params


class UpstreamCapabilities:
    """The upstream's REST ``server`` capabilities: types, interactions, search parameters."""

    def __init__(self, statement: Mapping[str, Any]) -> None:
        if statement.get("resourceType") != "CapabilityStatement":
            raise his_sdk.errors.UpstreamDataError(
                "the upstream's /metadata is not a CapabilityStatement"
            )
        self.fhir_version = str(statement.get("fhirVersion", ""))
        self._types: dict[str, dict[str, Any]] = {}
        for rest in statement.get("rest") or []:
            if isinstance(rest, dict) and rest.get("mode", "server") == "server":
                for resource in rest.get("resource") or []:
                    if isinstance(resource, dict) and isinstance(resource.get("type"), str):
                        self._types[resource["type"]] = resource

    def serves(self, resource_type: str) -> bool:
        """Whether the upstream declares the type."""
        return resource_type in self._types

    def interactions(self, resource_type: str) -> frozenset[str]:
        """The interaction codes the upstream declares for a type."""
        entries = self._types.get(resource_type, {}).get("interaction") or []
        return frozenset(str(e.get("code")) for e in entries if isinstance(e, dict))

    def documentation(self, resource_type: str) -> str:
        """The upstream's documentation of a type."""
        return str(self._types.get(resource_type, {}).get("documentation") or "")

    def search_params(
        self, resource_type: str, wanted: Sequence[str] | None
    ) -> dict[str, SearchParamDef]:
        """The type's search parameters the gateway can validate, optionally only ``wanted``.

        Parameters of types the gateway cannot parse (composite, quantity, uri, special) are
        left out, and so are never sent upstream.

        Raises:
            his_sdk.errors.PreconditionFailedError: A wanted parameter is not declared
                upstream, or has a type the gateway cannot parse.
        """
        declared: dict[str, SearchParamDef] = {}
        skipped: dict[str, str] = {}
        entries = self._types.get(resource_type, {}).get("searchParam") or []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            name, type_name = entry["name"], str(entry.get("type", ""))
            param_type = _PARAM_TYPES.get(type_name)
            if param_type is None:
                skipped[name] = type_name
                continue
            target = _KNOWN_TARGETS.get(name) if param_type is ParamType.REFERENCE else None
            declared[name] = SearchParamDef(
                name, param_type, str(entry.get("documentation") or ""), target
            )
        # Every FHIR server searches by _id (a base parameter many statements leave out), and
        # the policy narrows searches with it.
        declared.setdefault("_id", SearchParamDef("_id", ParamType.TOKEN, "Logical id"))
        if skipped:
            _log.debug("%s: upstream parameters of unsupported types: %s", resource_type, skipped)
        if wanted is None:
            return declared
        missing = [p for p in wanted if p not in declared]
        if missing:
            raise his_sdk.errors.PreconditionFailedError(
                f"the upstream does not declare searchable {resource_type} parameters "
                f"{', '.join(missing)}",
                diagnostics=f"declared: {', '.join(sorted(declared)) or 'none'}",
            )
        return {p: declared[p] for p in wanted}
