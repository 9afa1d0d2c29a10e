"""Search criteria as SQL: one function per binding kind, all evaluated in the database.

A clause is either a SQLAlchemy boolean expression or a Python bool when the answer does not
depend on the row (a constant binding, a code from another system); a source whose clause folds
to False is not queried at all. Every expression is two-valued, so ``:not`` may negate it and
still keep rows whose column is NULL, as FHIR asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa

import his_sdk.errors
import his_sdk.search

from ._conditions import ColumnSource, coerce, condition_sql, present_sql
from ._config import (
    Binding,
    CasesBinding,
    CodedBinding,
    ConstantBinding,
    DateBinding,
    NoneBinding,
    ReferenceBinding,
    StringBinding,
    TokenBinding,
)
from ._template import as_text

__all__ = ["Clause", "ClauseContext", "all_of", "any_of", "criterion_clause", "negate"]

Clause = sa.ColumnElement[bool] | bool
"""A SQL condition, or a constant when it does not depend on the row."""


def all_of(parts: Iterable[Clause]) -> Clause:
    """AND, folding constants."""
    kept: list[sa.ColumnElement[bool]] = []
    for part in parts:
        if part is False:
            return False
        if part is not True:
            kept.append(part)
    if not kept:
        return True
    return kept[0] if len(kept) == 1 else sa.and_(*kept)


def any_of(parts: Iterable[Clause]) -> Clause:
    """OR, folding constants."""
    kept: list[sa.ColumnElement[bool]] = []
    for part in parts:
        if part is True:
            return True
        if part is not False:
            kept.append(part)
    if not kept:
        return False
    return kept[0] if len(kept) == 1 else sa.or_(*kept)


def negate(clause: Clause) -> Clause:
    """NOT, folding constants."""
    if isinstance(clause, bool):
        return not clause
    return sa.not_(clause)


@dataclass(frozen=True)
class ClauseContext:
    """What clause building needs besides the binding.

    Attributes:
        columns: Resolves the source's column references.
        dialect: The SQLAlchemy dialect name (``sqlite``, ``postgresql``, ``mysql``...).
        value_maps: The mapping's value maps.
        aliases_for: System URI -> the aliases that stand for it in ``SYSTEM:code`` text.
        zone: Zone of the database's naive datetimes.
        keys_for: ``(target type, logical id)`` -> the key values that id may denote.
    """

    columns: ColumnSource
    dialect: str
    value_maps: Mapping[str, Mapping[str, Any]]
    aliases_for: Mapping[str, Sequence[str]]
    zone: tzinfo
    keys_for: Callable[[str, str], list[Any]]


def _unsupported(name: str, modifier: str) -> his_sdk.errors.UnsupportedParameterError:
    return his_sdk.errors.UnsupportedParameterError(
        f"modifier ':{modifier}' is not supported on parameter '{name}' by this source",
        expression=[f"{name}:{modifier}"],
    )


def criterion_clause(
    binding: Binding, criterion: his_sdk.search.Criterion, ctx: ClauseContext
) -> Clause:
    """One criterion (its values ORed) as a clause for one source.

    Raises:
        his_sdk.errors.UnsupportedParameterError: A modifier the binding cannot evaluate.
    """
    modifier = criterion.modifier
    if modifier == "missing":
        missing = _missing(binding, ctx)
        return missing if criterion.missing else negate(missing)
    if modifier not in (None, "not", "exact", "contains"):
        raise _unsupported(criterion.name, modifier)
    if modifier == "not" and criterion.type is not his_sdk.search.ParamType.TOKEN:
        raise _unsupported(criterion.name, modifier)
    if modifier in ("exact", "contains") and not isinstance(binding, StringBinding | NoneBinding):
        raise _unsupported(criterion.name, modifier)
    matched = any_of(_value_clause(binding, value, modifier, ctx) for value in criterion.values)
    return negate(matched) if modifier == "not" else matched


def _missing(binding: Binding, ctx: ClauseContext) -> Clause:
    if isinstance(binding, NoneBinding):
        return True
    if isinstance(binding, ConstantBinding):
        return False
    if isinstance(binding, CasesBinding):
        return negate(any_of(condition_sql(c, ctx.columns) for c in binding.cases.values()))
    if isinstance(binding, StringBinding):
        return all_of(negate(present_sql(ctx.columns, c)) for c in binding.columns)
    return negate(present_sql(ctx.columns, binding.column))


def _value_clause(
    binding: Binding, value: his_sdk.search.Value, modifier: str | None, ctx: ClauseContext
) -> Clause:
    if isinstance(binding, NoneBinding):
        return False
    if isinstance(binding, TokenBinding | CodedBinding | ConstantBinding | CasesBinding):
        if not isinstance(value, his_sdk.search.TokenValue):
            return False
        return _token(binding, value, ctx)
    if isinstance(binding, StringBinding):
        if not isinstance(value, his_sdk.search.StringValue):
            return False
        return any_of(_string(c, value.text, modifier, ctx) for c in binding.columns)
    if isinstance(binding, DateBinding):
        if not isinstance(value, his_sdk.search.DateValue):
            return False
        return _date(binding, value, ctx)
    if not isinstance(value, his_sdk.search.ReferenceValue):
        return False
    return _reference(binding, value, ctx)


def _system_matches(declared: str | None, wanted: str | None) -> bool:
    if wanted is None:
        return True
    if wanted == "":
        return declared is None
    return declared == wanted


def _case_sensitive(column: sa.ColumnElement[Any], ctx: ClauseContext) -> sa.ColumnElement[Any]:
    # MariaDB/MySQL compare text case-insensitively under their default collations.
    return sa.func.binary(column) if ctx.dialect in ("mysql", "mariadb") else column


def _in(ref: str, values: Iterable[Any], ctx: ClauseContext) -> Clause:
    python_type = ctx.columns.python_type(ref)
    coerced = []
    for value in values:
        try:
            coerced.append(coerce(python_type, value))
        except (ValueError, ArithmeticError):
            continue
    if not coerced:
        return False
    column = ctx.columns.column(ref)
    compared = _case_sensitive(column, ctx) if python_type is str else column
    return sa.and_(column.is_not(None), compared.in_(coerced))


def _token(
    binding: TokenBinding | CodedBinding | ConstantBinding | CasesBinding,
    value: his_sdk.search.TokenValue,
    ctx: ClauseContext,
) -> Clause:
    if isinstance(binding, ConstantBinding):
        return any(_constant_matches(code, value) for code in binding.codes)
    if isinstance(binding, CasesBinding):
        if not _system_matches(binding.system, value.system):
            return False
        if value.code is None:
            return any_of(condition_sql(c, ctx.columns) for c in binding.cases.values())
        case = binding.cases.get(value.code)
        return False if case is None else condition_sql(case, ctx.columns)
    if isinstance(binding, CodedBinding):
        return _coded(binding.column, value, ctx)
    if not _system_matches(binding.system, value.system):
        return False
    if value.code is None:
        return present_sql(ctx.columns, binding.column)
    if binding.map is None:
        return _in(binding.column, [value.code], ctx)
    table = ctx.value_maps[binding.map]
    keys = [k for k, v in table.items() if as_text(v, UTC) == value.code]
    return _in(binding.column, keys, ctx)


def _constant_matches(declared: str, value: his_sdk.search.TokenValue) -> bool:
    system, sep, code = declared.rpartition("|")
    declared_system = system if sep else None
    if not _system_matches(declared_system, value.system):
        return False
    return value.code is None or value.code == code


def _contains(haystack: sa.ColumnElement[Any], needle: str, ctx: ClauseContext) -> Clause:
    # Case-sensitive substring tests without LIKE, so codes need no wildcard escaping.
    if ctx.dialect == "sqlite":
        return sa.func.instr(haystack, needle) > 0
    if ctx.dialect == "postgresql":
        return sa.func.strpos(haystack, needle) > 0
    if ctx.dialect in ("mysql", "mariadb"):
        return sa.func.instr(sa.func.binary(haystack), needle) > 0
    return haystack.like(f"%{_escape_like(needle)}%", escape="/")


def _coded(ref: str, value: his_sdk.search.TokenValue, ctx: ClauseContext) -> Clause:
    column = ctx.columns.column(ref)
    # ";A:1;B:2;" makes every item start after ";" and end before ";".
    wrapped = sa.literal(";", sa.String) + column + sa.literal(";", sa.String)
    if value.system == "":
        return False
    if value.system is None:
        if value.code is None:
            return False
        needles = [f":{value.code};"]
    else:
        aliases = ctx.aliases_for.get(value.system, ())
        if not aliases:
            return False
        if value.code is None:
            needles = [f";{alias}:" for alias in aliases]
        else:
            needles = [f";{alias}:{value.code};" for alias in aliases]
    found = any_of(_contains(wrapped, needle, ctx) for needle in needles)
    return all_of([column.is_not(None), found])


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _string(ref: str, text: str, modifier: str | None, ctx: ClauseContext) -> Clause:
    column = ctx.columns.column(ref)
    if modifier == "exact":
        return sa.and_(column.is_not(None), _case_sensitive(column, ctx) == text)
    pattern = _escape_like(text.lower())
    pattern = f"%{pattern}%" if modifier == "contains" else f"{pattern}%"
    return sa.and_(column.is_not(None), sa.func.lower(column).like(pattern, escape="/"))


# Date ranges. A stored value denotes a range [a, b): a date column covers its whole day, a
# datetime column one instant, a start/end pair the period (a missing end: the start instant).
# Each prefix is FHIR's rule over [a, b) and the search interval [lower, upper).


class _Range:
    def __init__(self, binding: DateBinding, ctx: ClauseContext) -> None:
        self.start = ctx.columns.column(binding.column)
        self.is_date = ctx.columns.python_type(binding.column) is date
        end_ref = binding.end_column
        self.end = (
            sa.func.coalesce(ctx.columns.column(end_ref), self.start)
            if end_ref is not None
            else self.start
        )
        self.zone = ctx.zone

    def _bound(self, moment: datetime) -> datetime:
        if self.zone is UTC:
            return moment
        return moment.replace(tzinfo=UTC).astimezone(self.zone).replace(tzinfo=None)

    @staticmethod
    def _floor(moment: datetime) -> date:
        return moment.date()

    @staticmethod
    def _ceil(moment: datetime) -> date:
        day = moment.date()
        return day if moment == datetime(day.year, day.month, day.day) else day + timedelta(1)

    def a_ge(self, moment: datetime) -> sa.ColumnElement[bool]:
        if self.is_date:
            return self.start >= self._ceil(moment)
        return self.start >= self._bound(moment)

    def a_lt(self, moment: datetime) -> sa.ColumnElement[bool]:
        if self.is_date:
            return self.start < self._ceil(moment)
        return self.start < self._bound(moment)

    def b_le(self, moment: datetime) -> sa.ColumnElement[bool]:
        if self.is_date:
            return self.end < self._floor(moment)
        return self.end < self._bound(moment)

    def b_gt(self, moment: datetime) -> sa.ColumnElement[bool]:
        if self.is_date:
            return self.end >= self._floor(moment)
        return self.end >= self._bound(moment)


def _date(binding: DateBinding, value: his_sdk.search.DateValue, ctx: ClauseContext) -> Clause:
    r = _Range(binding, ctx)
    low, high = value.lower, value.upper
    prefix = value.prefix
    inside = sa.and_(r.a_ge(low), r.b_le(high))
    if prefix == "eq":
        clause: sa.ColumnElement[bool] = inside
    elif prefix == "ne":
        clause = sa.not_(inside)
    elif prefix == "gt":
        clause = r.b_gt(high)
    elif prefix == "lt":
        clause = r.a_lt(low)
    elif prefix == "ge":
        clause = sa.or_(r.b_gt(high), inside)
    elif prefix == "le":
        clause = sa.or_(r.a_lt(low), inside)
    elif prefix == "sa":
        clause = r.a_ge(high)
    elif prefix == "eb":
        clause = r.b_le(low)
    else:  # "ap": the parser already widened the interval; any overlap counts
        clause = sa.and_(r.a_lt(high), r.b_gt(low))
    return sa.and_(r.start.is_not(None), clause)


def _reference(
    binding: ReferenceBinding, value: his_sdk.search.ReferenceValue, ctx: ClauseContext
) -> Clause:
    target = value.resource_type
    keys = ctx.keys_for(target, value.id) if target else [value.id]
    return _in(binding.column, keys, ctx)
