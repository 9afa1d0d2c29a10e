"""Typed search criteria to SQL conditions over the resource table and its search index."""

from __future__ import annotations

import sqlalchemy as sa

import his_sdk.errors
from his_sdk.search import (
    Criterion,
    DateValue,
    ParamType,
    ReferenceValue,
    SearchParamDef,
    StringValue,
    TokenValue,
)

from ._index import PARAMS, normalize_string
from ._store import resources_table, search_table

__all__ = ["conditions_for", "definitions_for"]

_ID = SearchParamDef("_id", ParamType.TOKEN, "Logical id")
_LAST_UPDATED = SearchParamDef("_lastUpdated", ParamType.DATE, "When the adapter last stored it")


def definitions_for(resource_type: str) -> dict[str, SearchParamDef]:
    """Every search parameter served for ``resource_type``."""
    defs = {name: spec.definition for name, spec in PARAMS.get(resource_type, {}).items()}
    defs["_id"] = _ID
    defs["_lastUpdated"] = _LAST_UPDATED
    return defs


def _date_condition(
    lo: sa.ColumnElement[object], hi: sa.ColumnElement[object], v: DateValue
) -> sa.ColumnElement[bool]:
    p = v.prefix
    if p == "eq":
        return sa.and_(lo >= v.lower, hi <= v.upper)
    if p == "ne":
        return sa.not_(sa.and_(lo >= v.lower, hi <= v.upper))
    if p == "gt":
        return hi > v.upper
    if p == "lt":
        return lo < v.lower
    if p == "ge":
        return hi > v.lower
    if p == "le":
        return lo < v.upper
    if p == "sa":
        return lo >= v.upper
    if p == "eb":
        return hi <= v.lower
    # "ap": the parser already widened the interval; any overlap matches.
    return sa.and_(lo < v.upper, hi > v.lower)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _value_condition(c: Criterion, value: object, target: str | None) -> sa.ColumnElement[bool]:
    s = search_table
    if isinstance(value, TokenValue):
        conds: list[sa.ColumnElement[bool]] = []
        if value.code is not None:
            conds.append(s.c.value == value.code)
        if value.system is not None:
            conds.append(s.c.system == value.system)
        return sa.and_(*conds) if conds else sa.true()
    if isinstance(value, StringValue):
        text = normalize_string(value.text)
        if c.modifier == "exact":
            # Exact is case- and accent-sensitive in FHIR; the index keeps the folded form,
            # so exact matching is checked on the folded text (documented limitation).
            return s.c.value == text
        if c.modifier == "contains":
            return s.c.value.like(f"%{_escape_like(text)}%", escape="\\")
        return s.c.value.like(f"{_escape_like(text)}%", escape="\\")
    if isinstance(value, DateValue):
        return _date_condition(s.c.lo, s.c.hi, value)
    if isinstance(value, ReferenceValue):
        rtype = value.resource_type or target
        if rtype:
            return s.c.value == f"{rtype}/{value.id}"
        return s.c.value.like(f"%/{_escape_like(value.id)}", escape="\\")
    raise his_sdk.errors.UnsupportedParameterError(
        f"search parameter '{c.name}' has a value type this adapter cannot evaluate",
        expression=[c.name],
    )


def conditions_for(
    resource_type: str, criteria: tuple[Criterion, ...]
) -> list[sa.ColumnElement[bool]]:
    """SQL conditions, ANDed, for validated criteria on ``resource_type``.

    Raises:
        his_sdk.errors.UnsupportedParameterError: A parameter not served for the type.
    """
    r = resources_table
    s = search_table
    specs = PARAMS.get(resource_type, {})
    out: list[sa.ColumnElement[bool]] = []
    for c in criteria:
        if c.name == "_id":
            if c.missing is not None:
                out.append(sa.false() if c.missing else sa.true())
                continue
            ids = [v.code for v in c.values if isinstance(v, TokenValue) and v.code]
            cond = r.c.resource_id.in_(ids)
            out.append(sa.not_(cond) if c.modifier == "not" else cond)
            continue
        if c.name == "_lastUpdated":
            out.append(
                sa.or_(
                    *(
                        _date_condition(r.c.last_updated, r.c.last_updated, v)
                        for v in c.values
                        if isinstance(v, DateValue)
                    )
                )
            )
            continue
        spec = specs.get(c.name)
        if spec is None:
            raise his_sdk.errors.UnsupportedParameterError(
                f"search parameter '{c.name}' is not supported for {resource_type}",
                expression=[c.name],
            )
        owner = sa.and_(
            s.c.resource_type == r.c.resource_type,
            s.c.resource_id == r.c.resource_id,
            s.c.param == c.name,
        )
        if c.missing is not None:
            exists = sa.exists().where(owner)
            out.append(sa.not_(exists) if c.missing else exists)
            continue
        matches = sa.or_(*(_value_condition(c, v, spec.definition.target) for v in c.values))
        exists = sa.exists().where(owner, matches)
        out.append(sa.not_(exists) if c.modifier == "not" else exists)
    return out
