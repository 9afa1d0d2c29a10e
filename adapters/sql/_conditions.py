"""Row conditions evaluated two ways that must agree: on a fetched row, and as SQL.

The SQL form is two-valued (never NULL), so wrapping it in NOT keeps rows whose columns are NULL,
exactly as the Python form does. "Present" means not NULL and not blank text: legacy databases use
empty strings and NULL interchangeably.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import sqlalchemy as sa

from ._config import Absent, AllOf, AnyOf, Equals, Present, RowCondition

__all__ = [
    "ColumnSource",
    "coerce",
    "condition_columns",
    "condition_sql",
    "evaluate",
    "is_blank",
    "same_value",
]


class ColumnSource(Protocol):
    """Resolves a mapping column reference (``col`` or ``table.col``) to SQL."""

    def column(self, ref: str) -> sa.ColumnElement[Any]:
        """The SQL column for ``ref``."""
        ...

    def python_type(self, ref: str) -> type | None:
        """The Python type the driver returns for ``ref``, when known."""
        ...


def is_blank(value: Any) -> bool:
    """NULL or text of only whitespace: the value counts as missing."""
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return None


def same_value(actual: Any, expected: Any) -> bool:
    """Whether a database value equals a mapping value (numbers by value, else as text)."""
    if actual is None:
        return False
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return left == right
    if left is not None and isinstance(expected, str):
        try:
            return left == Decimal(expected.strip())
        except InvalidOperation:
            return False
    return str(actual) == str(expected)


def coerce(python_type: type | None, value: Any) -> Any:
    """A mapping or search value converted for comparison with a column of ``python_type``.

    Raises:
        ValueError: The value cannot be a value of that column (so it matches no row).
    """
    if python_type is None or isinstance(value, python_type):
        return value
    if python_type is int:
        try:
            number = _number(value) if not isinstance(value, str) else Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("not an integer") from None
        if number is None or not number.is_finite() or number != number.to_integral_value():
            raise ValueError("not an integer")
        return int(number)
    if python_type is float:
        return float(value)
    if python_type is Decimal:
        return Decimal(str(value))
    if python_type is str:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if python_type in (date, datetime) and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed.date() if python_type is date else parsed
    raise ValueError("no conversion")


def _safe_coerce(python_type: type | None, value: Any) -> tuple[bool, Any]:
    try:
        return True, coerce(python_type, value)
    except (ValueError, ArithmeticError):
        return False, None


def evaluate(condition: RowCondition, row: Mapping[str, Any]) -> bool:
    """The condition on a fetched row (keys are the mapping's column references)."""
    if isinstance(condition, Present):
        return not is_blank(row[condition.present])
    if isinstance(condition, Absent):
        return is_blank(row[condition.absent])
    if isinstance(condition, Equals):
        for ref, expected in condition.equals.items():
            options = expected if isinstance(expected, list) else [expected]
            if not any(same_value(row[ref], option) for option in options):
                return False
        return True
    if isinstance(condition, AllOf):
        return all(evaluate(inner, row) for inner in condition.all_of)
    if isinstance(condition, AnyOf):
        return any(evaluate(inner, row) for inner in condition.any_of)
    return not evaluate(condition.not_, row)


def present_sql(columns: ColumnSource, ref: str) -> sa.ColumnElement[bool]:
    """SQL for "the column holds a value" (two-valued)."""
    column = columns.column(ref)
    if columns.python_type(ref) is str:
        return sa.and_(column.is_not(None), sa.func.trim(column) != "")
    return column.is_not(None)


def condition_sql(condition: RowCondition, columns: ColumnSource) -> sa.ColumnElement[bool]:
    """The condition as a two-valued SQL expression."""
    if isinstance(condition, Present):
        return present_sql(columns, condition.present)
    if isinstance(condition, Absent):
        return sa.not_(present_sql(columns, condition.absent))
    if isinstance(condition, Equals):
        parts: list[sa.ColumnElement[bool]] = []
        for ref, expected in condition.equals.items():
            python_type = columns.python_type(ref)
            options = expected if isinstance(expected, list) else [expected]
            values = []
            for option in options:
                ok, value = _safe_coerce(python_type, option)
                if ok:
                    values.append(value)
            column = columns.column(ref)
            if not values:
                parts.append(sa.false())
            else:
                parts.append(sa.and_(column.is_not(None), column.in_(values)))
        return sa.and_(*parts)
    if isinstance(condition, AllOf):
        return sa.and_(*(condition_sql(inner, columns) for inner in condition.all_of))
    if isinstance(condition, AnyOf):
        return sa.or_(*(condition_sql(inner, columns) for inner in condition.any_of))
    return sa.not_(condition_sql(condition.not_, columns))


def condition_columns(condition: RowCondition) -> Iterator[str]:
    """Every column reference the condition reads."""
    if isinstance(condition, Present):
        yield condition.present
    elif isinstance(condition, Absent):
        yield condition.absent
    elif isinstance(condition, Equals):
        yield from condition.equals
    elif isinstance(condition, AllOf):
        for inner in condition.all_of:
            yield from condition_columns(inner)
    elif isinstance(condition, AnyOf):
        for inner in condition.any_of:
            yield from condition_columns(inner)
    else:
        yield from condition_columns(condition.not_)
