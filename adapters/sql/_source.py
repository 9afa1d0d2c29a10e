"""Mapping sources bound to the reflected tables: SQL for reads and searches, rows to FHIR."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pydantic
import sqlalchemy as sa
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource

import his_sdk.errors
import his_sdk.search

from ._cache import ResourceCache
from ._clauses import Clause, ClauseContext, all_of, criterion_clause, negate
from ._conditions import condition_columns, condition_sql, evaluate
from ._config import (
    Binding,
    CareTeamLink,
    CasesBinding,
    CodedBinding,
    DateBinding,
    Present,
    ReferenceBinding,
    SourceSpec,
    StringBinding,
    TokenBinding,
    id_affixes,
)
from ._template import RenderContext, RenderError, compile_template, template_columns

__all__ = ["BoundSource", "TableColumns", "binding_columns", "mapping_error", "render_error"]

_KEY_PATTERNS = {int: r"[0-9]{1,18}", str: r"[A-Za-z0-9\-.]{1,64}"}


def mapping_error(message: str) -> his_sdk.errors.UpstreamDataError:
    """The error for a database whose shape does not fit the mapping."""
    return his_sdk.errors.UpstreamDataError(
        "the legacy database does not match the adapter's mapping", diagnostics=message
    )


def render_error(
    resource_type: str, resource_id: str, detail: str
) -> his_sdk.errors.UpstreamDataError:
    """The error for a row that cannot become a valid resource (no patient data inside)."""
    return his_sdk.errors.UpstreamDataError(
        f"{resource_type}/{resource_id} cannot be mapped to valid FHIR", diagnostics=detail
    )


def _python_type(column: sa.ColumnElement[Any]) -> type | None:
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return None
    # DateTime is a subclass of date in Python; keep the distinction the column makes.
    if python_type is datetime or python_type is date or python_type in (int, float, str, Decimal):
        return python_type
    return None


class TableColumns:
    """Column references (``col`` for the main table, ``table.col`` for joined ones) resolved."""

    def __init__(self, main: sa.Table, joined: Mapping[str, sa.Table], where: str) -> None:
        self.main = main
        self.tables = {main.name: main, **joined}
        self.where = where

    def column(self, ref: str) -> sa.ColumnElement[Any]:
        """The SQL column for ``ref``.

        Raises:
            his_sdk.errors.UpstreamDataError: The database lacks the table or column.
        """
        table_name, _, name = ref.rpartition(".")
        table = self.tables.get(table_name) if table_name else self.main
        if table is None:
            raise mapping_error(f"{self.where}: '{ref}' names a table that is not joined")
        if name not in table.c:
            raise mapping_error(f"{self.where}: table '{table.name}' has no column '{name}'")
        return table.c[name]

    def python_type(self, ref: str) -> type | None:
        """The Python type of the column's values, when known."""
        return _python_type(self.column(ref))


def binding_columns(binding: Binding) -> list[str]:
    """The columns a search binding reads."""
    if isinstance(binding, ReferenceBinding | TokenBinding | CodedBinding):
        return [binding.column]
    if isinstance(binding, StringBinding):
        return list(binding.columns)
    if isinstance(binding, DateBinding):
        return [binding.column] + ([binding.end_column] if binding.end_column else [])
    if isinstance(binding, CasesBinding):
        return [c for case in binding.cases.values() for c in condition_columns(case)]
    return []


class BoundSource:
    """One source of a resource type, ready to query."""

    def __init__(
        self,
        resource_type: str,
        spec: SourceSpec,
        tables: Mapping[str, sa.Table],
        render: RenderContext,
        extra_columns: Sequence[str] = (),
        cache: ResourceCache | None = None,
    ) -> None:
        self.resource_type = resource_type
        self._cache = cache or ResourceCache(0)
        self.spec = spec
        self.name = spec.name
        self.where = f"{resource_type} source '{spec.name}'"
        main = tables.get(spec.table)
        if main is None:
            raise mapping_error(f"{self.where}: table '{spec.table}' does not exist")
        joined = {}
        for join in spec.joins:
            if join.table not in tables:
                raise mapping_error(f"{self.where}: joined table '{join.table}' does not exist")
            joined[join.table] = tables[join.table]
        self.columns = TableColumns(main, joined, self.where)
        from_clause: sa.FromClause = main
        for join in spec.joins:
            other = joined[join.table]
            if any(right not in other.c for right in join.match.values()):
                raise mapping_error(f"{self.where}: join to '{join.table}' names a missing column")
            on = sa.and_(*(self.columns.column(a) == other.c[b] for a, b in join.match.items()))
            from_clause = from_clause.join(other, on, isouter=join.outer)
        self.from_clause = from_clause
        self.render_context = render
        self.template = compile_template(spec.template)
        self.key_ref = spec.key_column
        self.key = self.columns.column(self.key_ref)
        self.key_type = self.columns.python_type(self.key_ref)
        if self.key_type not in _KEY_PATTERNS:
            raise mapping_error(f"{self.where}: the key column must hold integers or text")
        prefix, suffix = id_affixes(spec.id)
        pattern = _KEY_PATTERNS[self.key_type]
        self._id_re = re.compile(f"^{re.escape(prefix)}({pattern}){re.escape(suffix)}$")
        self._prefix, self._suffix = prefix, suffix
        refs = {self.key_ref, *template_columns(self.template), *extra_columns}
        for condition in (spec.filter, spec.deleted):
            if condition is not None:
                refs.update(condition_columns(condition))
        for binding in spec.search.values():
            for ref in binding_columns(binding):
                self.columns.column(ref)
        self.refs = sorted(refs)
        self._selected = [
            self.columns.column(ref).label(f"c{i}") for i, ref in enumerate(self.refs)
        ]
        self.filter: Clause = (
            condition_sql(spec.filter, self.columns) if spec.filter is not None else True
        )
        self.live: Clause = all_of(
            [self.filter]
            + ([negate(condition_sql(spec.deleted, self.columns))] if spec.deleted else [])
        )
        self.model = get_fhir_model_class(resource_type)

    # ids and keys

    def key_of(self, resource_id: str) -> Any | None:
        """The key a logical id denotes in this source, or None if it cannot be one of ours."""
        match = self._id_re.match(resource_id)
        if match is None:
            return None
        text = match.group(1)
        return int(text) if self.key_type is int else text

    def id_of(self, key: Any) -> str:
        """The logical id of the row with ``key``."""
        return f"{self._prefix}{key}{self._suffix}"

    # SQL

    def select(self) -> sa.Select[Any]:
        """SELECT of every column the source needs, over its tables."""
        return sa.select(*self._selected).select_from(self.from_clause)

    def where_clause(
        self, criteria: Sequence[his_sdk.search.Criterion], ctx: ClauseContext
    ) -> Clause:
        """Live rows matching every criterion (constants folded).

        Raises:
            his_sdk.errors.UnsupportedParameterError: A criterion this source cannot evaluate.
        """
        parts: list[Clause] = [self.live]
        for criterion in criteria:
            if criterion.name == "_id":
                parts.append(self._id_clause(criterion))
                continue
            binding = self.spec.search.get(criterion.name)
            if binding is None:
                raise his_sdk.errors.UnsupportedParameterError(
                    f"search parameter '{criterion.name}' is not supported for "
                    f"{self.resource_type} by source '{self.name}'",
                    expression=[criterion.name],
                )
            parts.append(criterion_clause(binding, criterion, ctx))
        return all_of(parts)

    def _id_clause(self, criterion: his_sdk.search.Criterion) -> Clause:
        if criterion.modifier == "missing":
            return not criterion.missing
        if criterion.modifier not in (None, "not"):
            raise his_sdk.errors.UnsupportedParameterError(
                f"modifier ':{criterion.modifier}' is not supported on '_id'",
                expression=[f"_id:{criterion.modifier}"],
            )
        keys = []
        for value in criterion.values:
            if isinstance(value, his_sdk.search.TokenValue) and value.code and not value.system:
                key = self.key_of(value.code)
                if key is not None:
                    keys.append(key)
        matched: Clause = self.key.in_(keys) if keys else False
        return negate(matched) if criterion.modifier == "not" else matched

    def clause_context(
        self,
        dialect: str,
        aliases_for: Mapping[str, Sequence[str]],
        keys_for: Callable[[str, str], list[Any]],
    ) -> ClauseContext:
        """The context for building this source's search clauses."""
        return ClauseContext(
            columns=self.columns,
            dialect=dialect,
            value_maps=self.render_context.value_maps,
            aliases_for=aliases_for,
            zone=self.render_context.zone,
            keys_for=keys_for,
        )

    # rows

    def row_data(self, row: sa.Row[Any]) -> dict[str, Any]:
        """A fetched row keyed by the mapping's column references."""
        return {ref: row[i] for i, ref in enumerate(self.refs)}

    def is_deleted(self, data: Mapping[str, Any]) -> bool:
        """Whether the row is soft-deleted."""
        return self.spec.deleted is not None and evaluate(self.spec.deleted, data)

    def key_value(self, data: Mapping[str, Any]) -> Any:
        """The key of a fetched row."""
        return data[self.key_ref]

    def resource(self, data: Mapping[str, Any]) -> Resource:
        """The validated R4B resource for a fetched row (cached by the row's exact values).

        Raises:
            his_sdk.errors.UpstreamDataError: The row cannot become a valid resource.
        """
        return self._cache.get_or_build(
            f"{self.resource_type}/{self.name}", data, lambda: self._build(data)
        )

    def _build(self, data: Mapping[str, Any]) -> Resource:
        resource_id = self.id_of(self.key_value(data))
        try:
            body = self.template.render(data, self.render_context)
        except RenderError as exc:
            raise render_error(self.resource_type, resource_id, str(exc)) from None
        document = {"resourceType": self.resource_type, "id": resource_id}
        if isinstance(body, dict):
            document.update(body)
        try:
            resource = self.model.model_validate(document)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['type']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            raise render_error(self.resource_type, resource_id, problems) from None
        assert isinstance(resource, Resource)
        return resource


class BoundCareTeamLink:
    """A care-team link bound to its reflected table."""

    def __init__(self, link: CareTeamLink, tables: Mapping[str, sa.Table], index: int) -> None:
        where = f"patient_facts.care_team[{index}]"
        table = tables.get(link.table)
        if table is None:
            raise mapping_error(f"{where}: table '{link.table}' does not exist")
        self.columns = TableColumns(table, {}, where)
        self.patient = self.columns.column(link.patient_column)
        self.patient_type = self.columns.python_type(link.patient_column)
        self.practitioner = self.columns.column(link.practitioner_column)
        self.reference = link.reference
        present = condition_sql(Present(present=link.practitioner_column), self.columns)
        self.filter = all_of(
            [present]
            + ([condition_sql(link.filter, self.columns)] if link.filter is not None else [])
        )
        self.table = table
