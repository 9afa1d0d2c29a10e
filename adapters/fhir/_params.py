"""Validated search criteria written back as FHIR query parameters for the upstream."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from his_sdk.search import (
    Criterion,
    DateValue,
    NumberValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    Value,
)

__all__ = ["query_parameters"]

_YEAR_DAYS = (365, 366)
_MONTH_DAYS = (28, 29, 30, 31)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def _date(value: DateValue) -> str:
    lower, upper = value.lower, value.upper
    if value.prefix == "ap":
        # The gateway widened the interval around its middle; the upstream applies its own
        # notion of "approximately" to that middle.
        middle = lower + (upper - lower) / 2
        return f"ap{middle.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return f"{value.prefix}{_date_text(lower, upper - lower)}"


def _date_text(lower: datetime, width: timedelta) -> str:
    at_midnight = lower.time() == datetime.min.time()
    if at_midnight and lower.month == 1 and lower.day == 1 and width.days in _YEAR_DAYS:
        return f"{lower.year:04d}"
    if at_midnight and lower.day == 1 and width.days in _MONTH_DAYS and not width.seconds:
        return f"{lower.year:04d}-{lower.month:02d}"
    if at_midnight and width == timedelta(days=1):
        return lower.strftime("%Y-%m-%d")
    if width >= timedelta(minutes=1) and not lower.second and not lower.microsecond:
        return lower.strftime("%Y-%m-%dT%H:%MZ")
    if width >= timedelta(seconds=1) and not lower.microsecond:
        return lower.strftime("%Y-%m-%dT%H:%M:%SZ")
    return lower.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _number(value: NumberValue) -> str:
    number = int(value.value) if value.value.is_integer() else value.value
    return f"{value.prefix}{number}"


def _value(value: Value) -> str:
    if isinstance(value, TokenValue):
        code = _escape(value.code or "")
        if value.system is None:
            return code
        return f"{_escape(value.system)}|{code}"
    if isinstance(value, StringValue):
        return _escape(value.text)
    if isinstance(value, DateValue):
        return _date(value)
    if isinstance(value, ReferenceValue):
        ref = f"{value.resource_type}/{value.id}" if value.resource_type else value.id
        return _escape(ref)
    return _number(value)


def query_parameters(criteria: Iterable[Criterion]) -> list[tuple[str, str]]:
    """``(name[:modifier], value)`` pairs that ask the upstream for the same matches.

    Values of one criterion are ORed with commas; criteria repeat names to AND them.
    """
    pairs: list[tuple[str, str]] = []
    for criterion in criteria:
        name = f"{criterion.name}:{criterion.modifier}" if criterion.modifier else criterion.name
        if criterion.missing is not None:
            pairs.append((name, "true" if criterion.missing else "false"))
            continue
        pairs.append((name, ",".join(_value(v) for v in criterion.values)))
    return pairs
