"""Tool descriptors: what an agent may call, documented, attributed, risk-rated and permissioned."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Provenance",
    "RequiredPermission",
    "RiskLevel",
    "ToolAnnotations",
    "ToolDescriptor",
    "Validation",
    "ValidationStatus",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SCOPE = re.compile(r"^(patient|user|system)/([A-Z][A-Za-z0-9]*)\.(c?r?u?d?s?)$")
_ACTIONS = frozenset({"read", "search", "create", "update", "delete"})


class RiskLevel(enum.StrEnum):
    """How much harm a wrong call can do; ``high`` needs human approval before it acts."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """Order for ``max_risk`` filters: low 1, medium 2, high 3."""
        return {"low": 1, "medium": 2, "high": 3}[self.value]


class ValidationStatus(enum.StrEnum):
    """Whether a tool's output has been checked against evidence."""

    VALIDATED = "validated"
    EXPERIMENTAL = "experimental"
    DEPRECATED = "deprecated"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Frozen):
    """Who maintains a tool, which version runs, where it comes from and under which licence."""

    owner: str
    version: str
    source: str = ""
    licence: str = ""


class Validation(_Frozen):
    """A validation status and where its evidence can be read."""

    status: ValidationStatus
    evidence: str = ""

    @model_validator(mode="after")
    def _evidence_for_validated(self) -> Validation:
        if self.status is ValidationStatus.VALIDATED and not self.evidence.strip():
            raise ValueError("a validated tool must name its evidence")
        return self


class RequiredPermission(_Frozen):
    """What the caller needs: a SMART scope and an Oso permission.

    ``smart_scope`` is written ``context/Type.letters``; a scope of any context granting those
    letters on the type satisfies it, and the policy then judges the context (patient launch,
    role, system). ``oso_permission`` is ``action:Type`` (``read:Observation``): the action
    and type the gateway's policy is asked about, as for a FHIR call.
    """

    smart_scope: str
    oso_permission: str

    @field_validator("smart_scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        match = _SCOPE.fullmatch(value)
        if match is None or not match[3]:
            raise ValueError(f"smart_scope must look like 'user/Observation.rs', got {value!r}")
        return value

    @field_validator("oso_permission")
    @classmethod
    def _permission(cls, value: str) -> str:
        action, _, resource_type = value.partition(":")
        if action not in _ACTIONS or not resource_type[:1].isupper():
            raise ValueError(
                f"oso_permission must be 'action:Type' with action one of {sorted(_ACTIONS)}, "
                f"got {value!r}"
            )
        return value

    @property
    def scope_type(self) -> str:
        """The resource type of ``smart_scope``."""
        match = _SCOPE.fullmatch(self.smart_scope)
        assert match is not None
        return match[2]

    @property
    def scope_letters(self) -> str:
        """The SMART letters of ``smart_scope``."""
        match = _SCOPE.fullmatch(self.smart_scope)
        assert match is not None
        return match[3]

    @property
    def action(self) -> str:
        """The policy action of ``oso_permission``."""
        return self.oso_permission.partition(":")[0]

    @property
    def resource_type(self) -> str:
        """The policy resource type of ``oso_permission``."""
        return self.oso_permission.partition(":")[2]


class ToolAnnotations(_Frozen):
    """MCP tool annotations: hints for clients, never trusted for security."""

    read_only_hint: bool = Field(default=True, alias="readOnlyHint")
    destructive_hint: bool = Field(default=False, alias="destructiveHint")
    idempotent_hint: bool = Field(default=True, alias="idempotentHint")
    open_world_hint: bool = Field(default=False, alias="openWorldHint")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ToolDescriptor(_Frozen):
    """Everything an agent and a reviewer need to know about one tool.

    Attributes:
        name: Unique snake_case name (``bmi``, ``search_observation``).
        title: Short human title.
        description: What the tool does, written for an LLM choosing tools.
        category: Grouping for filters (``calculator``, ``fhir.read``, ``fhir.search``,
            ``fhir.write``, ``inference``).
        input_schema: JSON Schema of the arguments object.
        output_schema: JSON Schema of the result object.
        provenance: Owner, version, source and licence.
        validation: Validation status and its evidence.
        risk: ``low`` and ``medium`` run at once; ``high`` becomes an approval request.
        permission: SMART scope and Oso permission the caller needs.
        annotations: MCP annotations.
    """

    name: str
    title: str
    description: str
    category: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    provenance: Provenance
    validation: Validation
    risk: RiskLevel
    permission: RequiredPermission
    annotations: ToolAnnotations = Field(default_factory=ToolAnnotations)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(f"tool name {value!r} must be 1-64 of a-z, 0-9 and '_'")
        return value

    @field_validator("input_schema", "output_schema")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError("tool schemas must describe a JSON object ('type: object')")
        return value

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> ToolDescriptor:
        """Load a descriptor from a YAML file (keys as the attributes of this class).

        Raises:
            FileNotFoundError: The file does not exist.
            pydantic.ValidationError: The document is not a valid descriptor.
        """
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(document, Mapping):
            raise ValueError(f"{path}: a tool descriptor must be a YAML mapping")
        return cls.model_validate({**document, **overrides})
