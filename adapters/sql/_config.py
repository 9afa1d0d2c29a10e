"""Pydantic models of the mapping file and the adapter settings, and the loader for both.

A mapping file is YAML (format described in ``adapters/sql/MAPPING.md``). Loading validates it
completely before any database is touched: unknown keys, wrong kinds, undeclared search
parameters, colliding id templates, unknown value maps and malformed templates are reported as
one :class:`MappingError` whose lines name the offending key path.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

import his_sdk.search

__all__ = [
    "Absent",
    "AllOf",
    "AnyOf",
    "Binding",
    "CareTeamLink",
    "CasesBinding",
    "CodeValue",
    "CodedBinding",
    "CodesValue",
    "ConstValue",
    "ConstantBinding",
    "CreateSpec",
    "DateBinding",
    "Equals",
    "Join",
    "MappingError",
    "MappingFile",
    "NoneBinding",
    "Not",
    "NowValue",
    "ParamSpec",
    "PathValue",
    "PatientFactsSpec",
    "Present",
    "ReferenceBinding",
    "ReferenceValue",
    "ResourceSpec",
    "RowCondition",
    "Settings",
    "SourceSpec",
    "StringBinding",
    "TokenBinding",
    "WriteKey",
    "WriteSpec",
    "WriteValue",
    "format_validation_error",
    "load_mapping",
    "load_settings",
    "shipped_mappings",
]

_PLACEHOLDER = re.compile(r"(?<!\{)\{([^{}]+)\}(?!\})")
_COLUMN_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_BOOL_HINT = (
    'YAML reads yes/no/on/off/true/false as booleans here; quote the value ("NO") '
    "if the database stores it as text"
)


class MappingError(ValueError):
    """A mapping file or adapter setting is invalid; each line names the bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Scalar = str | int | float


def _reject_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(_BOOL_HINT)
    if isinstance(value, list):
        for item in value:
            _reject_bool(item)
    return value


def _column_ref(value: str) -> str:
    if not _COLUMN_REF.match(value):
        raise ValueError(f"'{value}' is not a column name ('column' or 'table.column')")
    return value


ColumnRef = Annotated[str, pydantic.AfterValidator(_column_ref)]


class Present(_Strict):
    """True when the column holds a value (not NULL, not an empty string)."""

    present: ColumnRef


class Absent(_Strict):
    """True when the column is NULL or an empty string."""

    absent: ColumnRef


class Equals(_Strict):
    """True when every named column equals its value (a list means any of those values)."""

    equals: dict[ColumnRef, Scalar | list[Scalar]]

    @field_validator("equals", mode="before")
    @classmethod
    def _no_bools(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for item in value.values():
                _reject_bool(item)
        return value

    @field_validator("equals")
    @classmethod
    def _not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("'equals' needs at least one column")
        return value


class AllOf(_Strict):
    """True when every inner condition is true."""

    all_of: list[RowCondition] = Field(alias="all", min_length=1)


class AnyOf(_Strict):
    """True when at least one inner condition is true."""

    any_of: list[RowCondition] = Field(alias="any", min_length=1)


class Not(_Strict):
    """True when the inner condition is false."""

    not_: RowCondition = Field(alias="not")


_CONDITION_TAGS = ("present", "absent", "equals", "all", "any", "not")


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, Mapping) and len(value) == 1:
        key = next(iter(value))
        return str(key) if key in _CONDITION_TAGS else None
    tags: dict[type[BaseModel], str] = {
        Present: "present",
        Absent: "absent",
        Equals: "equals",
        AllOf: "all",
        AnyOf: "any",
        Not: "not",
    }
    return tags.get(type(value))


RowCondition = Annotated[
    Annotated[Present, Tag("present")]
    | Annotated[Absent, Tag("absent")]
    | Annotated[Equals, Tag("equals")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[Not, Tag("not")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message=(
            "a condition is exactly one of {present: col}, {absent: col}, "
            "{equals: {col: value}}, {all: [...]}, {any: [...]}, {not: condition}"
        ),
    ),
]
"""A condition on one row, usable in source filters, templates and token cases."""

AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


class ReferenceBinding(_Strict):
    """A reference parameter: the column holds the key of the referenced resource."""

    kind: Literal["reference"]
    column: ColumnRef


class TokenBinding(_Strict):
    """A token parameter over a plain column, with a fixed system and/or a value map."""

    kind: Literal["token"]
    column: ColumnRef
    system: str | None = None
    map: str | None = None


class CodedBinding(_Strict):
    """A token parameter over a column of ``SYSTEM:code`` strings (several split by ``;``)."""

    kind: Literal["coded"]
    column: ColumnRef


class ConstantBinding(_Strict):
    """A token parameter whose value is the same for every row of the source."""

    kind: Literal["constant"]
    codes: list[str] = Field(min_length=1)


class CasesBinding(_Strict):
    """A token parameter computed from row conditions: one condition per code."""

    kind: Literal["cases"]
    system: str | None = None
    cases: dict[str, RowCondition] = Field(min_length=1)


class StringBinding(_Strict):
    """A string parameter over one or more columns (a row matches when any column does)."""

    kind: Literal["string"]
    columns: list[ColumnRef] = Field(min_length=1)


class DateBinding(_Strict):
    """A date parameter over a date/datetime column, or a period from two columns."""

    kind: Literal["date"]
    column: ColumnRef
    end_column: ColumnRef | None = None


class NoneBinding(_Strict):
    """The source never has a value for this parameter (only ``:missing``/``:not`` match)."""

    kind: Literal["none"]


Binding = Annotated[
    ReferenceBinding
    | TokenBinding
    | CodedBinding
    | ConstantBinding
    | CasesBinding
    | StringBinding
    | DateBinding
    | NoneBinding,
    Field(discriminator="kind"),
]
"""How one source evaluates one search parameter in SQL."""

_KINDS_FOR_TYPE: dict[his_sdk.search.ParamType, frozenset[str]] = {
    his_sdk.search.ParamType.TOKEN: frozenset({"token", "coded", "constant", "cases", "none"}),
    his_sdk.search.ParamType.STRING: frozenset({"string", "none"}),
    his_sdk.search.ParamType.DATE: frozenset({"date", "none"}),
    his_sdk.search.ParamType.REFERENCE: frozenset({"reference", "none"}),
    his_sdk.search.ParamType.NUMBER: frozenset(),
}


class Join(_Strict):
    """Another table joined to the source's table (inner join by default)."""

    table: str
    match: dict[ColumnRef, str] = Field(min_length=1)
    """Pairs ``source column: joined table's column`` that must be equal."""
    outer: bool = False
    """Left outer join: keep source rows without a partner."""


class SourceSpec(_Strict):
    """One table (plus joins) that yields resources of a type."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    table: str
    joins: list[Join] = Field(default_factory=list)
    id: str
    """Id template with exactly one placeholder, the key column: ``lab-{procedure_result_id}``."""
    filter: RowCondition | None = None
    deleted: RowCondition | None = None
    search: dict[str, Binding] = Field(default_factory=dict)
    template: dict[str, Any]

    @field_validator("id")
    @classmethod
    def _one_key(cls, value: str) -> str:
        names = _PLACEHOLDER.findall(value)
        if len(names) != 1 or "." in names[0] or "|" in names[0]:
            raise ValueError(
                "the id template needs exactly one placeholder, a column of the source's own "
                "table, like 'lab-{procedure_result_id}'"
            )
        prefix, suffix = id_affixes(value)
        if not re.fullmatch(r"[A-Za-z0-9\-.]*", prefix + suffix):
            raise ValueError("literal parts of an id template may use only A-Z a-z 0-9 - .")
        return value

    @field_validator("template")
    @classmethod
    def _template_shape(cls, value: dict[str, Any]) -> dict[str, Any]:
        from ._template import compile_template

        for reserved in ("resourceType", "id"):
            if reserved in value:
                raise ValueError(f"'{reserved}' is set by the adapter; remove it from the template")
        compile_template(value)
        return value

    @property
    def key_column(self) -> str:
        """The key column named by the id template."""
        return str(_PLACEHOLDER.findall(self.id)[0])


_PLAIN_COLUMN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ELEMENT_PATH = r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$"
ElementPath = Annotated[str, Field(pattern=_ELEMENT_PATH)]


class _Value(_Strict):
    required: bool = False
    """The write is refused when this value is missing from the resource."""


class ConstValue(_Value):
    """The same value for every written row."""

    value: Scalar

    @field_validator("value", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        return _reject_bool(value)


class PathValue(_Value):
    """The first value at a dotted element path (lists give their first item).

    A list of paths takes the first that has a value.
    """

    path: ElementPath | list[ElementPath] = Field(min_length=1)
    as_: Literal["text", "int", "decimal", "date", "datetime", "bool"] = Field(
        default="text", alias="as"
    )
    map: str | None = None
    """A value map read backwards: the database value that maps to the resource's value."""


class ReferenceValue(_Value):
    """The key of the resource a Reference element points to (``subject`` -> ``pid``)."""

    reference: ElementPath
    target: str
    """The referenced type; its id templates turn the id into the key."""


class CodesValue(_Value):
    """A CodeableConcept as ``ALIAS:code;ALIAS:code`` text (aliases from ``code_systems``)."""

    codes: ElementPath


class CodeValue(_Value):
    """The bare code of the coding with ``system`` in a CodeableConcept."""

    code: ElementPath
    system: str


class NowValue(_Value):
    """The time of the write."""

    now: Literal["date", "datetime"]


_VALUE_TAGS = ("value", "path", "reference", "codes", "code", "now")


def _value_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        found = [key for key in _VALUE_TAGS if key in value]
        return str(found[0]) if len(found) == 1 else None
    tags: dict[type[BaseModel], str] = {
        ConstValue: "value",
        PathValue: "path",
        ReferenceValue: "reference",
        CodesValue: "codes",
        CodeValue: "code",
        NowValue: "now",
    }
    return tags.get(type(value))


WriteValue = Annotated[
    Annotated[ConstValue, Tag("value")]
    | Annotated[PathValue, Tag("path")]
    | Annotated[ReferenceValue, Tag("reference")]
    | Annotated[CodesValue, Tag("codes")]
    | Annotated[CodeValue, Tag("code")]
    | Annotated[NowValue, Tag("now")],
    Discriminator(
        _value_tag,
        custom_error_type="write_value",
        custom_error_message=(
            "a written value is exactly one of {value: v}, {path: element}, "
            "{reference: element, target: Type}, {codes: element}, "
            "{code: element, system: uri}, {now: date|datetime}"
        ),
    ),
]
"""Where one column of a written row comes from."""


class WriteKey(_Strict):
    """Where the idempotency key of each executed write is kept (exactly one of the two)."""

    table: str | None = Field(default=None, pattern=_PLAIN_COLUMN)
    """A key table the adapter creates if missing: key -> the written resource."""
    column: str | None = Field(default=None, pattern=_PLAIN_COLUMN)
    """A column of the written table holding the key (give it a unique index)."""

    @pydantic.model_validator(mode="after")
    def _one(self) -> WriteKey:
        if (self.table is None) == (self.column is None):
            raise ValueError("a write key is exactly one of {table: name} or {column: name}")
        return self


class CreateSpec(_Strict):
    """How an approved create becomes one row of a source's table."""

    source: str
    """The source (of this type) whose table receives the row; the new id follows its template."""
    values: dict[Annotated[str, Field(pattern=_PLAIN_COLUMN)], WriteValue] = Field(min_length=1)
    """Column of that table -> where its value comes from."""
    key: WriteKey = Field(default_factory=lambda: WriteKey(table="his_write_keys"))
    """Where replays find the first result."""


class WriteSpec(_Strict):
    """The writes a resource type accepts once approved."""

    create: CreateSpec | None = None


class ParamSpec(_Strict):
    """A search parameter a resource type serves."""

    type: his_sdk.search.ParamType
    description: str = ""
    target: str | None = None
    """For reference parameters: the referenced resource type."""


class ResourceSpec(_Strict):
    """Everything about one FHIR resource type."""

    documentation: str = ""
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    sources: list[SourceSpec] = Field(min_length=1)
    write: WriteSpec | None = None


class CareTeamLink(_Strict):
    """A table linking a patient to practitioners."""

    table: str
    patient_column: str
    practitioner_column: str
    reference: str = "Practitioner/{value}"
    """Reference template; ``{value}`` is the practitioner column's value."""
    filter: RowCondition | None = None

    @field_validator("reference")
    @classmethod
    def _has_value(cls, value: str) -> str:
        if value.count("{value}") != 1 or "/" not in value:
            raise ValueError("must look like 'Practitioner/{value}' (one {value} placeholder)")
        return value


class PatientFactsSpec(_Strict):
    """How to compute care team and consent for the policy."""

    consent_opt_out: RowCondition | None = None
    """Condition on the Patient source row meaning "declined sharing with automated agents"."""
    care_team: list[CareTeamLink] = Field(default_factory=list)


class MappingFile(_Strict):
    """A whole mapping file."""

    version: Literal[1] = 1
    description: str = ""
    timezone: str = "UTC"
    """Zone the database's naive datetimes are in (an IANA name)."""
    code_systems: dict[str, str] = Field(default_factory=dict)
    """Alias used in ``SYSTEM:code`` strings -> FHIR system URI."""
    value_maps: dict[str, dict[str, str | int | float | bool]] = Field(default_factory=dict)
    """Named maps from database values to FHIR values."""
    resources: dict[str, ResourceSpec] = Field(min_length=1)
    patient_facts: PatientFactsSpec | None = None
    shared: Any = None
    """Free space for YAML anchors that sources reuse (``<<: *name``); otherwise ignored."""

    @field_validator("value_maps", mode="before")
    @classmethod
    def _stringify_keys(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        fixed: dict[Any, Any] = {}
        for name, table in value.items():
            if isinstance(table, Mapping):
                for key in table:
                    if isinstance(key, bool):
                        raise ValueError(f"value map '{name}': {_BOOL_HINT}")
                table = {str(k): v for k, v in table.items()}
            fixed[name] = table
        return fixed

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from ._template import zone_named

        zone_named(value)
        return value

    @field_validator("resources")
    @classmethod
    def _known_types(cls, value: dict[str, ResourceSpec]) -> dict[str, ResourceSpec]:
        for name in value:
            try:
                get_fhir_model_class(name)
            except (ValueError, KeyError):
                raise ValueError(f"'{name}' is not a FHIR R4B resource type") from None
        return value

    @pydantic.model_validator(mode="after")
    def _cross_check(self) -> MappingFile:
        from ._template import compile_template, template_columns, template_maps

        problems: list[str] = []
        for type_name, spec in self.resources.items():
            where = f"resources.{type_name}"
            if "_id" in spec.params:
                problems.append(f"{where}.params._id: '_id' is implicit; do not declare it")
            for pname, pspec in spec.params.items():
                if pspec.type is his_sdk.search.ParamType.NUMBER:
                    problems.append(f"{where}.params.{pname}: number parameters are not supported")
                if (pspec.type is his_sdk.search.ParamType.REFERENCE) != (pspec.target is not None):
                    problems.append(
                        f"{where}.params.{pname}: 'target' is required for reference parameters "
                        "and only allowed there"
                    )
            names: set[str] = set()
            for index, source in enumerate(spec.sources):
                at = f"{where}.sources[{index}]"
                if source.name in names:
                    problems.append(f"{at}.name: duplicate source name '{source.name}'")
                names.add(source.name)
                for pname, binding in source.search.items():
                    problems.extend(
                        self._check_binding(f"{at}.search.{pname}", spec, pname, binding)
                    )
                compiled = compile_template(source.template)
                for map_name in template_maps(compiled):
                    if map_name not in self.value_maps:
                        problems.append(f"{at}.template: unknown value map '{map_name}'")
                problems.extend(_foreign_columns(at, source, template_columns(compiled)))
            problems.extend(_id_collisions(where, spec.sources))
            if spec.write is not None and spec.write.create is not None:
                problems.extend(self._check_create(f"{where}.write.create", spec))
        if self.patient_facts is not None and "Patient" not in self.resources:
            problems.append("patient_facts: needs a 'Patient' resource to find patients")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _check_create(self, at: str, spec: ResourceSpec) -> list[str]:
        create = spec.write.create if spec.write is not None else None
        assert create is not None
        problems = []
        source = next((s for s in spec.sources if s.name == create.source), None)
        if source is None:
            problems.append(f"{at}.source: no source named '{create.source}' in this type")
        elif source.joins:
            problems.append(f"{at}.source: a written source must not join other tables")
        for column, value in create.values.items():
            if isinstance(value, PathValue) and value.map and value.map not in self.value_maps:
                problems.append(f"{at}.values.{column}.map: unknown value map '{value.map}'")
            if isinstance(value, ReferenceValue) and value.target not in self.resources:
                problems.append(
                    f"{at}.values.{column}.target: '{value.target}' is not a mapped resource"
                )
            if isinstance(value, CodesValue) and not self.code_systems:
                problems.append(f"{at}.values.{column}: a 'codes' value needs code_systems")
        if create.key.column is not None and create.key.column in create.values:
            problems.append(f"{at}.key.column: the key column must not also be in values")
        return problems

    def _check_binding(
        self, at: str, spec: ResourceSpec, pname: str, binding: Binding
    ) -> list[str]:
        if pname == "_id":
            return [f"{at}: '_id' is implicit (from the id template); do not bind it"]
        pspec = spec.params.get(pname)
        if pspec is None:
            return [f"{at}: parameter '{pname}' is not declared under params"]
        if binding.kind not in _KINDS_FOR_TYPE[pspec.type]:
            allowed = ", ".join(sorted(_KINDS_FOR_TYPE[pspec.type]))
            return [
                f"{at}.kind: '{binding.kind}' cannot serve a {pspec.type.value} parameter "
                f"(use one of: {allowed})"
            ]
        if isinstance(binding, TokenBinding) and binding.map and binding.map not in self.value_maps:
            return [f"{at}.map: unknown value map '{binding.map}'"]
        if isinstance(binding, CodedBinding) and not self.code_systems:
            return [f"{at}: a 'coded' binding needs code_systems aliases"]
        return []


def _binding_columns(binding: Binding) -> list[str]:
    from ._conditions import condition_columns

    if isinstance(binding, CasesBinding):
        return [c for case in binding.cases.values() for c in condition_columns(case)]
    if isinstance(binding, StringBinding):
        return list(binding.columns)
    if isinstance(binding, DateBinding) and binding.end_column:
        return [binding.column, binding.end_column]
    column = getattr(binding, "column", None)
    return [column] if isinstance(column, str) else []


def _foreign_columns(at: str, source: SourceSpec, template: set[str]) -> list[str]:
    """Dotted column references whose table is neither the source's nor joined."""
    from ._conditions import condition_columns

    tables = {source.table, *(join.table for join in source.joins)}
    places: list[tuple[str, str]] = [("template", ref) for ref in template]
    for key in ("filter", "deleted"):
        condition = getattr(source, key)
        if condition is not None:
            places += [(key, ref) for ref in condition_columns(condition)]
    for pname, binding in source.search.items():
        places += [(f"search.{pname}", ref) for ref in _binding_columns(binding)]
    for index, join in enumerate(source.joins):
        places += [(f"joins[{index}].match", ref) for ref in join.match]
    return [
        f"{at}.{where}: '{ref}' names table '{ref.split('.')[0]}', which is not the source's "
        "table or joined"
        for where, ref in sorted(set(places))
        if "." in ref and ref.split(".")[0] not in tables
    ]


def id_affixes(template: str) -> tuple[str, str]:
    """The literal text before and after the single placeholder of an id template."""
    match = _PLACEHOLDER.search(template)
    if match is None:
        return template, ""
    return template[: match.start()], template[match.end() :]


def _id_collisions(where: str, sources: list[SourceSpec]) -> list[str]:
    # Two templates can produce the same id only if one prefix extends the other and one
    # suffix extends the other; otherwise every id belongs to exactly one source.
    problems = []
    for i, first in enumerate(sources):
        for second in sources[i + 1 :]:
            p1, s1 = id_affixes(first.id)
            p2, s2 = id_affixes(second.id)
            prefixes_overlap = p1.startswith(p2) or p2.startswith(p1)
            suffixes_overlap = s1.endswith(s2) or s2.endswith(s1)
            if prefixes_overlap and suffixes_overlap:
                problems.append(
                    f"{where}.sources: id templates '{first.id}' ({first.name}) and "
                    f"'{second.id}' ({second.name}) can produce the same id; give each source "
                    "its own literal prefix or suffix"
                )
    return problems


def format_validation_error(exc: pydantic.ValidationError, origin: str) -> str:
    """One line per problem, ``origin: key.path[0].name: message``, never echoing input values."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        path = ""
        for part in error["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part in _CONDITION_TAGS or part.startswith("function-"):
                # Tags of the condition union repeat the key the user wrote; keep paths short.
                continue
            else:
                path += f".{part}" if path else str(part)
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        for line in message.splitlines():
            lines.append(f"{origin}: {path}: {line}" if path else f"{origin}: {line}")
    return "\n".join(lines)


def shipped_mappings() -> list[str]:
    """Names of the mappings shipped inside the package (``openemr``)."""
    folder = importlib.resources.files("adapters.sql").joinpath("mappings")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_mapping(name_or_path: str | Path) -> MappingFile:
    """Load and validate a mapping by shipped name (``openemr``) or YAML file path.

    Raises:
        MappingError: The file is missing, is not YAML, or fails validation.
    """
    text, origin = _read_mapping_text(name_or_path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise MappingError(f"{origin}: not valid YAML{where}") from exc
    if not isinstance(data, Mapping):
        raise MappingError(f"{origin}: the top level must be a mapping of keys")
    try:
        return MappingFile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise MappingError(format_validation_error(exc, origin)) from None


def _read_mapping_text(name_or_path: str | Path) -> tuple[str, str]:
    raw = str(name_or_path)
    looks_like_path = (
        isinstance(name_or_path, Path) or "/" in raw or raw.endswith((".yaml", ".yml"))
    )
    if looks_like_path:
        path = Path(raw)
        if not path.is_file():
            raise MappingError(f"mapping file not found: {path}")
        return path.read_text(encoding="utf-8"), str(path)
    if raw not in shipped_mappings():
        known = ", ".join(shipped_mappings())
        raise MappingError(
            f"unknown mapping '{raw}': name a shipped mapping ({known}) or a .yaml file path"
        )
    resource = importlib.resources.files("adapters.sql").joinpath("mappings", f"{raw}.yaml")
    return resource.read_text(encoding="utf-8"), f"mapping '{raw}'"


class Settings(_Strict):
    """The ``settings`` mapping of the adapter's config entry."""

    url: str = Field(min_length=1)
    """SQLAlchemy URL of the legacy database (``sqlite:///legacy.db``,
    ``postgresql+psycopg://user@host/db``, ``mysql+pymysql://user@host/db``)."""
    mapping: str = "openemr"
    """A shipped mapping name or the path of a mapping YAML file."""
    pool_size: int | None = Field(default=None, ge=1, le=1000)
    """Connections kept open; the driver's default when empty."""
    echo: bool = False
    """Log every SQL statement (never enable with real patient data)."""
    resource_cache_size: int = Field(default=4096, ge=0)
    """Validated resources kept per adapter, keyed by their exact source row (0 disables)."""


def load_settings(settings: Mapping[str, Any]) -> Settings:
    """Validate adapter settings.

    Raises:
        MappingError: A setting is unknown, missing or has a bad value.
    """
    try:
        return Settings.model_validate(dict(settings))
    except pydantic.ValidationError as exc:
        raise MappingError(format_validation_error(exc, "sql adapter settings")) from None
