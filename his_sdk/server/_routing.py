"""Load configured adapters by import string and route each resource type to one of them."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import his_sdk.errors
from his_sdk.adapter import Adapter, Interaction, PatientFactsProvider, TypeCapability
from his_sdk.config import AdapterSettings

__all__ = ["AdapterRouter", "load_adapter"]

_log = logging.getLogger(__name__)


def load_adapter(settings: AdapterSettings) -> Adapter:
    """Import ``module:Class`` from the settings and build it with ``from_settings``.

    Raises:
        ValueError: The import string is malformed or names something that is not an adapter.
    """
    module_name, _, attr = settings.implementation.partition(":")
    if not module_name or not attr:
        raise ValueError(
            f"adapter '{settings.name}': implementation must be 'module:Class', "
            f"got {settings.implementation!r}"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"adapter '{settings.name}': cannot import {settings.implementation!r}: {exc}"
        ) from exc
    adapter = cls.from_settings(settings.settings)
    if not isinstance(adapter, Adapter):
        raise ValueError(f"adapter '{settings.name}': {settings.implementation} is not an Adapter")
    return adapter


@dataclass(frozen=True)
class _Route:
    name: str
    adapter: Adapter
    capability: TypeCapability


class AdapterRouter:
    """Resource type → the first configured adapter that declares it."""

    def __init__(self, adapters: Sequence[tuple[str, Adapter]]) -> None:
        self._adapters = list(adapters)
        self._routes: dict[str, _Route] = {}
        for name, adapter in self._adapters:
            for type_name, cap in adapter.capabilities().types.items():
                if type_name in self._routes:
                    _log.info(
                        "%s is served by adapter %s; adapter %s also declares it",
                        type_name,
                        self._routes[type_name].name,
                        name,
                    )
                    continue
                self._routes[type_name] = _Route(name, adapter, cap)
        self._facts: PatientFactsProvider | None = None
        patient_route = self._routes.get("Patient")
        candidates = [patient_route.adapter] if patient_route else []
        candidates += [a for _, a in self._adapters]
        for candidate in candidates:
            if isinstance(candidate, PatientFactsProvider):
                self._facts = candidate
                break

    @property
    def adapters(self) -> list[tuple[str, Adapter]]:
        """Every configured adapter with its name."""
        return list(self._adapters)

    @property
    def facts_provider(self) -> PatientFactsProvider | None:
        """The adapter that answers care-team and consent questions, if any."""
        return self._facts

    def types(self) -> Mapping[str, TypeCapability]:
        """Every served type with the capability of its adapter."""
        return {name: route.capability for name, route in self._routes.items()}

    def route(self, resource_type: str, interaction: Interaction) -> tuple[Adapter, TypeCapability]:
        """The adapter serving ``interaction`` on ``resource_type``.

        Raises:
            his_sdk.errors.UnsupportedError: No adapter serves it.
        """
        route = self._routes.get(resource_type)
        if route is None:
            served = ", ".join(sorted(self._routes)) or "none"
            raise his_sdk.errors.UnsupportedError(
                f"resource type {resource_type} is not served by this gateway",
                diagnostics=f"served types: {served}",
            )
        if interaction not in route.capability.interactions:
            raise his_sdk.errors.UnsupportedError(
                f"interaction {interaction.value} is not supported on {resource_type}"
            )
        return route.adapter, route.capability

    def describe(self) -> dict[str, Any]:
        """Adapter name per served type (for health and logs)."""
        return {name: route.name for name, route in sorted(self._routes.items())}
