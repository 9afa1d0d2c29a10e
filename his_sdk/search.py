"""FHIR search parameters: definitions an adapter declares, and the typed query it receives.

The gateway parses the raw ``name[:modifier]=value`` pairs once, against the parameters the
serving adapter declares, and hands adapters a :class:`SearchQuery` of typed criteria. Anything
an adapter did not declare is rejected with :class:`his_sdk.errors.UnsupportedParameterError`,
never ignored. Repeating a parameter ANDs its criteria; commas inside one value OR them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import his_sdk.errors

__all__ = [
    "RESULT_PARAMETERS",
    "Criterion",
    "DateValue",
    "NumberValue",
    "ParamType",
    "ReferenceValue",
    "ResultParameters",
    "SearchParamDef",
    "SearchQuery",
    "StringValue",
    "SummaryMode",
    "TokenValue",
    "as_naive_utc",
    "lift_result_parameters",
    "parse_criteria",
    "parse_date_value",
]

RESULT_PARAMETERS = frozenset({"_count", "_elements", "_summary", "_total"})
"""Result parameters the gateway applies itself; they never reach an adapter as criteria."""

_UNSUPPORTED_RESULT_PARAMETERS = frozenset(
    {
        "_sort",
        "_include",
        "_revinclude",
        "_contained",
        "_containedType",
        "_has",
        "_list",
        "_query",
        "_filter",
        "_text",
        "_content",
        "_type",
    }
)


class ParamType(enum.StrEnum):
    """FHIR search parameter types the gateway understands."""

    TOKEN = "token"
    STRING = "string"
    DATE = "date"
    REFERENCE = "reference"
    NUMBER = "number"


class SummaryMode(enum.StrEnum):
    """FHIR ``_summary`` values."""

    FALSE = "false"
    TRUE = "true"
    TEXT = "text"
    DATA = "data"
    COUNT = "count"


_MODIFIERS: dict[ParamType, frozenset[str]] = {
    ParamType.TOKEN: frozenset({"missing", "not"}),
    ParamType.STRING: frozenset({"missing", "exact", "contains"}),
    ParamType.DATE: frozenset({"missing"}),
    ParamType.REFERENCE: frozenset({"missing"}),
    ParamType.NUMBER: frozenset({"missing"}),
}
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@dataclass(frozen=True)
class SearchParamDef:
    """A search parameter an adapter serves for one resource type.

    Attributes:
        name: The FHIR name (``patient``, ``code``, ``date``).
        type: Its FHIR type.
        description: One line for the CapabilityStatement and the agent.
        target: For reference parameters, the resource type referenced (``Patient``).
    """

    name: str
    type: ParamType
    description: str = ""
    target: str | None = None


@dataclass(frozen=True)
class TokenValue:
    """``[system|]code``: ``system`` None means any system, ``""`` means no system."""

    system: str | None
    code: str | None


@dataclass(frozen=True)
class StringValue:
    """A string to match (prefix, exact or contains, by the criterion's modifier)."""

    text: str


@dataclass(frozen=True)
class DateValue:
    """A date search value as the half-open interval [lower, upper) it denotes, plus prefix.

    Datetimes are naive UTC; dates without a time zone are taken as written.
    """

    prefix: str
    lower: datetime
    upper: datetime


@dataclass(frozen=True)
class ReferenceValue:
    """``[Type/]id``: ``resource_type`` None when the caller gave a bare id."""

    resource_type: str | None
    id: str


@dataclass(frozen=True)
class NumberValue:
    """A number with its comparison prefix."""

    prefix: str
    value: float


Value = TokenValue | StringValue | DateValue | ReferenceValue | NumberValue


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: its values are ORed; several criteria are ANDed.

    For ``:missing``, ``values`` is empty and ``missing`` is True or False.
    """

    name: str
    type: ParamType
    modifier: str | None
    values: tuple[Value, ...]
    missing: bool | None = None


@dataclass(frozen=True)
class SearchQuery:
    """A validated search, as adapters receive it.

    Attributes:
        resource_type: The type searched.
        criteria: ANDed criteria.
        count: Page size the gateway asks for (already clamped to the configured maximum).
        position: The adapter's own paging position from its previous page, or None.
        include_total: Whether to count all matches.
    """

    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    count: int = 50
    position: str | None = None
    include_total: bool = False

    def values_of(self, name: str) -> list[Value]:
        """Every value of every criterion named ``name`` (any modifier)."""
        return [v for c in self.criteria if c.name == name for v in c.values]


@dataclass(frozen=True)
class _RawParam:
    name: str
    modifier: str | None
    value: str


_ESCAPED_SPLIT = re.compile(r"(?<!\\),")


def _split_or(value: str) -> list[str]:
    return [part.replace("\\,", ",") for part in _ESCAPED_SPLIT.split(value)]


def _unescape(text: str) -> str:
    return text.replace("\\|", "|").replace("\\$", "$").replace("\\\\", "\\")


def _split_token(text: str) -> tuple[str | None, str | None]:
    # A pipe escaped as "\|" belongs to the code, not the separator.
    parts = re.split(r"(?<!\\)\|", text, maxsplit=1)
    if len(parts) == 1:
        return None, _unescape(parts[0]) or None
    system, code = parts
    return _unescape(system), _unescape(code) or None


_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def parse_date_value(raw: str, *, now: datetime | None = None) -> DateValue:
    """Parse ``[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][tz]]]]`` into an interval.

    Raises:
        his_sdk.errors.InvalidRequestError: The value is not a FHIR date or datetime.
    """
    prefix = "eq"
    if raw[:2] in _PREFIXES:
        prefix, raw = raw[:2], raw[2:]
    match = _DATE_RE.match(raw)
    if not match:
        raise his_sdk.errors.InvalidRequestError(
            "date value must look like [prefix]YYYY[-MM[-DD[Thh:mm[:ss][zone]]]]",
            diagnostics=f"got {raw!r}",
        )
    g = match.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            lower, upper = datetime(year, 1, 1), datetime(year + 1, 1, 1)
        elif g["d"] is None:
            month = int(g["m"])
            lower = datetime(year, month, 1)
            upper = datetime(year + (month == 12), month % 12 + 1, 1)
        elif g["H"] is None:
            lower = datetime(year, int(g["m"]), int(g["d"]))
            upper = lower + timedelta(days=1)
        else:
            seconds = int(g["S"] or 0)
            micros = int((g["f"] or "0").ljust(6, "0")[:6])
            lower = datetime(
                year, int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), seconds, micros
            )
            if g["tz"]:
                offset = _parse_offset(g["tz"])
                lower = (lower - offset).replace(tzinfo=None)
            if g["f"]:
                step = timedelta(microseconds=1)
            elif g["S"]:
                step = timedelta(seconds=1)
            else:
                step = timedelta(minutes=1)
            upper = lower + step
    except ValueError as exc:
        raise his_sdk.errors.InvalidRequestError(
            "date value is not a valid calendar date", diagnostics=f"got {raw!r}"
        ) from exc
    if prefix == "ap":
        # FHIR leaves "approximately" to the server; take 10% of the gap to now, at least a day.
        current = now or datetime.now(UTC).replace(tzinfo=None)
        slack = max(abs(current - lower) / 10, timedelta(days=1))
        lower, upper = lower - slack, upper + slack
    return DateValue(prefix=prefix, lower=lower, upper=upper)


def _parse_offset(tz: str) -> timedelta:
    if tz == "Z":
        return timedelta(0)
    sign = 1 if tz[0] == "+" else -1
    hours, minutes = tz[1:].split(":")
    return sign * timedelta(hours=int(hours), minutes=int(minutes))


def _parse_value(definition: SearchParamDef, raw: str) -> Value:
    if raw == "":
        raise his_sdk.errors.InvalidRequestError(
            f"search parameter '{definition.name}' has an empty value",
            expression=[definition.name],
        )
    if definition.type is ParamType.TOKEN:
        system, code = _split_token(raw)
        if code is None and not system:
            raise his_sdk.errors.InvalidRequestError(
                f"token parameter '{definition.name}' needs a code or a system",
                expression=[definition.name],
            )
        return TokenValue(system=system, code=code)
    if definition.type is ParamType.STRING:
        return StringValue(text=_unescape(raw))
    if definition.type is ParamType.DATE:
        try:
            return parse_date_value(raw)
        except his_sdk.errors.InvalidRequestError as exc:
            exc.expression = [definition.name]
            raise
    if definition.type is ParamType.REFERENCE:
        text = _unescape(raw)
        if "/" in text:
            type_part, _, id_part = text.rstrip("/").rpartition("/")
            resource_type = type_part.rsplit("/", 1)[-1]
            if definition.target and resource_type != definition.target:
                raise his_sdk.errors.InvalidRequestError(
                    f"parameter '{definition.name}' references {definition.target}, "
                    f"not {resource_type}",
                    expression=[definition.name],
                )
            return ReferenceValue(resource_type=resource_type, id=id_part)
        return ReferenceValue(resource_type=definition.target, id=text)
    prefix = "eq"
    if raw[:2] in _PREFIXES:
        prefix, raw = raw[:2], raw[2:]
    try:
        return NumberValue(prefix=prefix, value=float(raw))
    except ValueError as exc:
        raise his_sdk.errors.InvalidRequestError(
            f"parameter '{definition.name}' needs a number", expression=[definition.name]
        ) from exc


def _split_name(name: str) -> tuple[str, str | None]:
    base, sep, modifier = name.partition(":")
    return base, (modifier if sep else None)


def parse_criteria(
    resource_type: str,
    params: Iterable[tuple[str, str]],
    definitions: Mapping[str, SearchParamDef],
) -> tuple[Criterion, ...]:
    """Validate raw ``(name[:modifier], value)`` pairs against an adapter's definitions.

    Result parameters (``_count``, ``_elements``, ``_summary``, ``_total``) are skipped; the
    caller lifts them out first.

    Raises:
        his_sdk.errors.UnsupportedParameterError: Unknown parameter or modifier.
        his_sdk.errors.InvalidRequestError: A value that does not parse.
    """
    criteria: list[Criterion] = []
    for raw_name, raw_value in params:
        name, modifier = _split_name(raw_name)
        if name in RESULT_PARAMETERS:
            continue
        if name in _UNSUPPORTED_RESULT_PARAMETERS:
            raise his_sdk.errors.UnsupportedParameterError(
                f"'{name}' is not supported by this gateway", expression=[name]
            )
        definition = definitions.get(name)
        if definition is None:
            supported = ", ".join(sorted(definitions)) or "none"
            raise his_sdk.errors.UnsupportedParameterError(
                f"search parameter '{name}' is not supported for {resource_type}",
                diagnostics=f"supported parameters: {supported}",
                expression=[name],
            )
        if (
            modifier is not None
            and definition.type is ParamType.REFERENCE
            and modifier[:1].isupper()
        ):
            if definition.target and modifier != definition.target:
                raise his_sdk.errors.InvalidRequestError(
                    f"parameter '{name}' references {definition.target}, not {modifier}",
                    expression=[raw_name],
                )
            modifier = None
        if modifier is not None and modifier not in _MODIFIERS[definition.type]:
            raise his_sdk.errors.UnsupportedParameterError(
                f"modifier ':{modifier}' is not supported on {definition.type.value} "
                f"parameter '{name}'",
                expression=[raw_name],
            )
        if modifier == "missing":
            if raw_value not in ("true", "false"):
                raise his_sdk.errors.InvalidRequestError(
                    f"'{name}:missing' takes true or false", expression=[raw_name]
                )
            criteria.append(
                Criterion(name, definition.type, modifier, (), missing=raw_value == "true")
            )
            continue
        values = tuple(_parse_value(definition, part) for part in _split_or(raw_value))
        criteria.append(Criterion(name, definition.type, modifier, values))
    return tuple(criteria)


@dataclass(frozen=True)
class ResultParameters:
    """Result parameters lifted out of a raw parameter list."""

    count: int | None = None
    elements: tuple[str, ...] = ()
    summary: SummaryMode | None = None
    include_total: bool = False
    rest: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def lift_result_parameters(params: Sequence[tuple[str, str]]) -> ResultParameters:
    """Separate ``_count``/``_elements``/``_summary``/``_total`` from the criteria.

    Raises:
        his_sdk.errors.InvalidRequestError: A result parameter with a bad value.
    """
    count: int | None = None
    elements: list[str] = []
    summary: SummaryMode | None = None
    include_total = False
    rest: list[tuple[str, str]] = []
    for name, value in params:
        if name == "_count":
            if not value.isdigit():
                raise his_sdk.errors.InvalidRequestError(
                    "_count must be a non-negative integer", expression=["_count"]
                )
            count = int(value)
        elif name == "_elements":
            elements.extend(e.strip() for e in value.split(",") if e.strip())
        elif name == "_summary":
            try:
                summary = SummaryMode(value)
            except ValueError as exc:
                raise his_sdk.errors.InvalidRequestError(
                    "_summary must be one of true, false, text, data, count",
                    expression=["_summary"],
                ) from exc
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise his_sdk.errors.InvalidRequestError(
                    "_total must be none, estimate or accurate", expression=["_total"]
                )
            include_total = value != "none"
        else:
            rest.append((name, value))
    return ResultParameters(count, tuple(elements), summary, include_total, tuple(rest))


def as_naive_utc(value: date | datetime) -> datetime:
    """A date or datetime as the naive-UTC datetime :class:`DateValue` bounds use."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value
    return datetime(value.year, value.month, value.day)
