"""Resource templates: compiled once from the mapping, rendered for every fetched row.

A template is the JSON shape of the FHIR resource with placeholders. Strings may hold
``{column}`` or ``{column|conversion}`` placeholders; a string that is one placeholder yields a
typed value, any other string interpolates text. ``{{`` and ``}}`` are literal braces. Two
directives exist: ``{$if: condition, then: ..., else: ...}`` and ``{$codes: column, text: ...,
display: ...}`` (a CodeableConcept from ``SYSTEM:code;SYSTEM:code`` text).

Missing data disappears instead of producing empty elements: a placeholder whose column is NULL
or blank makes its string absent; an object whose data-driven members are all absent is absent
(its constant members do not keep it alive); an empty list is absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic

from ._conditions import condition_columns, evaluate, is_blank
from ._config import RowCondition

__all__ = [
    "ABSENT",
    "Node",
    "RenderContext",
    "RenderError",
    "as_text",
    "compile_template",
    "parse_codes",
    "template_columns",
    "template_maps",
    "zone_named",
]

_CONVERSIONS: Final = frozenset({"text", "int", "decimal", "date", "datetime", "bool", "map"})
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_TOKENS = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[^{}]+|[{}]")
_TRUE = frozenset({"1", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "false", "f", "no", "n"})
_CONDITION: pydantic.TypeAdapter[RowCondition] = pydantic.TypeAdapter(RowCondition)


class _Absent:
    """The marker of a template element that has no data."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
"""Rendered in place of an element whose data is missing; dropped by its parent."""


class RenderError(Exception):
    """A column's value cannot become the FHIR value the template asks for.

    The message names the column and the problem, never the value.
    """

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"column '{column}': {problem}")
        self.column = column
        self.problem = problem


@dataclass(frozen=True)
class RenderContext:
    """What rendering needs besides the row."""

    value_maps: Mapping[str, Mapping[str, Any]]
    code_systems: Mapping[str, str]
    zone: tzinfo


def zone_named(name: str) -> tzinfo:
    """The time zone for an IANA name (``UTC`` always works).

    Raises:
        ValueError: Unknown zone name.
    """
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{name}'") from None


def as_text(value: Any, zone: tzinfo) -> str:
    """A database value as FHIR-friendly text (ISO dates, plain decimals)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _datetime_text(value, zone)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return (
            format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
        )
    return str(value)


def _datetime_text(value: datetime, zone: tzinfo) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.isoformat()


@dataclass(frozen=True)
class Placeholder:
    """``{column|conversion:arg|...}`` inside a template string."""

    column: str
    conversions: tuple[tuple[str, str | None], ...]

    def value(self, row: Mapping[str, Any], ctx: RenderContext) -> Any:
        """The converted value, or ABSENT when the column is blank."""
        value = row[self.column]
        if is_blank(value):
            return ABSENT
        for name, arg in self.conversions:
            value = _convert(self.column, name, arg, value, ctx)
        return value


def _convert(column: str, name: str, arg: str | None, value: Any, ctx: RenderContext) -> Any:
    if name == "map":
        table = ctx.value_maps[arg or ""]
        key = _map_key(value)
        if key not in table:
            raise RenderError(column, f"value not in value map '{arg}'")
        return table[key]
    if name == "text":
        return as_text(value, ctx.zone)
    if name == "int":
        return _to_int(column, value)
    if name == "decimal":
        return _to_decimal(column, value)
    if name == "bool":
        text = as_text(value, ctx.zone).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise RenderError(column, "not a boolean")
    if name == "date":
        return _to_date(column, value).isoformat()
    return _to_datetime_text(column, value, ctx.zone)


def _map_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal) and value == value.to_integral():
        return str(int(value))
    return str(value).strip() if isinstance(value, str) else str(value)


def _to_decimal(column: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise RenderError(column, "not a decimal")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise RenderError(column, "not a decimal") from None
    if not number.is_finite():
        raise RenderError(column, "not a finite decimal")
    return number


def _to_int(column: str, value: Any) -> int:
    number = _to_decimal(column, value)
    if number != number.to_integral_value():
        raise RenderError(column, "not an integer")
    return int(number)


def _to_date(column: str, value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value).strip()).date()
    except ValueError:
        raise RenderError(column, "not a date") from None


def _to_datetime_text(column: str, value: Any, zone: tzinfo) -> str:
    if isinstance(value, datetime):
        return _datetime_text(value, zone)
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise RenderError(column, "not a datetime") from None
    if len(text) == 10:
        return parsed.date().isoformat()
    return _datetime_text(parsed, zone)


def parse_codes(text: str, code_systems: Mapping[str, str], column: str) -> list[tuple[str, str]]:
    """``SYS:code;SYS:code`` as ``(system URI, code)`` pairs.

    Raises:
        RenderError: An item is not ``SYSTEM:code`` or uses an alias the mapping lacks.
    """
    pairs = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        alias, sep, code = item.partition(":")
        if not sep or not alias.strip() or not code.strip():
            raise RenderError(column, "an item is not SYSTEM:code")
        system = code_systems.get(alias.strip())
        if system is None:
            raise RenderError(column, f"code system alias '{alias.strip()}' is not in code_systems")
        pairs.append((system, code.strip()))
    return pairs


class Node:
    """A compiled template element."""

    dynamic: bool = False
    """Whether the element depends on row data."""

    def render(self, row: Mapping[str, Any], ctx: RenderContext) -> Any:
        """The JSON value for ``row``, or ABSENT."""
        raise NotImplementedError

    def children(self) -> Iterator[Node]:
        """Nested nodes."""
        return iter(())

    def columns(self) -> Iterator[str]:
        """Columns this node reads itself (not its children)."""
        return iter(())

    def maps(self) -> Iterator[str]:
        """Value maps this node uses itself."""
        return iter(())


class _Const(Node):
    def __init__(self, value: Any) -> None:
        self.value = value

    def render(self, row: Mapping[str, Any], ctx: RenderContext) -> Any:
        return self.value


class _Field(Node):
    dynamic = True

    def __init__(self, placeholder: Placeholder) -> None:
        self.placeholder = placeholder

    def render(self, row: Mapping[str, Any], ctx: RenderContext) -> Any:
        value = self.placeholder.value(row, ctx)
        if value is ABSENT or self.placeholder.conversions:
            return value
        return as_text(value, ctx.zone)

    def columns(self) -> Iterator[str]:
        yield self.placeholder.column

    def maps(self) -> Iterator[str]:
        yield from (arg or "" for name, arg in self.placeholder.conversions if name == "map")


class _Text(Node):
    dynamic = True

    def __init__(self, parts: list[str | Placeholder]) -> None:
        self.parts = parts

    def render(self, row: Mapping[str, Any], ctx: RenderContext) -> Any:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part.value(row, ctx)
            if value is ABSENT:
                return ABSENT
            out.append(as_text(value, ctx.zone))
        return "".join(out)

    def columns(self) -> Iterator[str]:
        yield from (p.column for p in self.parts if isinstance(p, Placeholder))

    def maps(self) -> Iterator[str]:
        for part in self.parts:
            if isinstance(part, Placeholder):
                yield from (arg or "" for name, arg in part.conversions if name == "map")


class _Object(Node):
    def __init__(self, members: list[tuple[str, Node]]) -> None:
        self.members = members
        self.dynamic = any(node.dynamic for _, node in members)

    def render(self, row: Mapping[str, Any], ctx: RenderContext) -> Any:
        out: dict[str, Any] = {}
        data_present = False
        for key, node in self.members:
            value = node.render(row, ctx)
            if value is ABSENT:
                continue
            out[key] = value
            data_present = data_present or node.dynamic
        if not out or (self.dynamic and not data_present):
            return ABSENT
        return out

    def children(self) -> Iterator[Node]:
        return (node for _, node in self.members)


class _List(Node):
    def __init__(self, items: list[Node]) -> None:
        self.items = items
        self.dynamic = any(node.dynamic for node in items)

    def render(self, row: Mapping[str, Any], ctx: RenderContext) -> Any:
        out = [v for v in (node.render(row, ctx) for node in self.items) if v is not ABSENT]
        return out or ABSENT

    def children(self) -> Iterator[Node]:
        return iter(self.items)


class _If(Node):
    dynamic = True

    def __init__(self, condition: RowCondition, then: Node | None, otherwise: Node | None) -> None:
        self.condition = condition
        self.then = then
        self.otherwise = otherwise

    def render(self, row: Mapping[str, Any], ctx: RenderContext) -> Any:
        branch = self.then if evaluate(self.condition, row) else self.otherwise
        return ABSENT if branch is None else branch.render(row, ctx)

    def children(self) -> Iterator[Node]:
        return (n for n in (self.then, self.otherwise) if n is not None)

    def columns(self) -> Iterator[str]:
        return condition_columns(self.condition)


class _Codes(Node):
    dynamic = True

    def __init__(self, column: str, text: Node | None, display: Node | None) -> None:
        self.column = column
        self.text = text
        self.display = display

    def render(self, row: Mapping[str, Any], ctx: RenderContext) -> Any:
        value = row[self.column]
        if is_blank(value):
            return ABSENT
        pairs = parse_codes(str(value), ctx.code_systems, self.column)
        if not pairs:
            return ABSENT
        codings: list[dict[str, Any]] = [{"system": s, "code": c} for s, c in pairs]
        if self.display is not None and len(codings) == 1:
            display = self.display.render(row, ctx)
            if display is not ABSENT:
                codings[0]["display"] = display
        concept: dict[str, Any] = {"coding": codings}
        if self.text is not None:
            text = self.text.render(row, ctx)
            if text is not ABSENT:
                concept["text"] = text
        return concept

    def children(self) -> Iterator[Node]:
        return (n for n in (self.text, self.display) if n is not None)

    def columns(self) -> Iterator[str]:
        yield self.column


def _parse_placeholder(inner: str, path: str) -> Placeholder:
    column, *rest = (part.strip() for part in inner.split("|"))
    if not _COLUMN.match(column):
        raise ValueError(f"{path}: '{{{inner}}}' does not name a column ('col' or 'table.col')")
    conversions: list[tuple[str, str | None]] = []
    for item in rest:
        name, sep, arg = item.partition(":")
        if name not in _CONVERSIONS:
            known = ", ".join(sorted(_CONVERSIONS))
            raise ValueError(f"{path}: unknown conversion '{name}' (known: {known})")
        if (name == "map") != bool(sep and arg):
            raise ValueError(
                f"{path}: 'map' needs a value map name (map:NAME); other conversions take none"
            )
        conversions.append((name, arg or None))
    return Placeholder(column, tuple(conversions))


def _compile_string(text: str, path: str) -> Node:
    parts: list[str | Placeholder] = []
    for match in _TOKENS.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif token in ("{", "}"):
            raise ValueError(f"{path}: unbalanced '{token}' (write '{token}{token}' for a brace)")
        elif match.group(1) is not None:
            parts.append(_parse_placeholder(match.group(1), path))
        else:
            parts.append(token)
    placeholders = [p for p in parts if isinstance(p, Placeholder)]
    if not placeholders:
        return _Const("".join(p for p in parts if isinstance(p, str)))
    if len(parts) == 1 and isinstance(parts[0], Placeholder):
        return _Field(parts[0])
    return _Text(parts)


def _compile_directive(value: Mapping[str, Any], path: str) -> Node:
    if "$if" in value:
        extra = set(value) - {"$if", "then", "else"}
        if extra:
            raise ValueError(f"{path}: '$if' takes only 'then' and 'else', not {sorted(extra)}")
        if "then" not in value and "else" not in value:
            raise ValueError(f"{path}: '$if' needs 'then' and/or 'else'")
        try:
            condition = _CONDITION.validate_python(value["$if"])
        except pydantic.ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]["msg"]
            raise ValueError(f"{path}.$if: {first}") from None
        then = _compile(value["then"], f"{path}.then") if "then" in value else None
        otherwise = _compile(value["else"], f"{path}.else") if "else" in value else None
        return _If(condition, then, otherwise)
    if "$codes" in value:
        extra = set(value) - {"$codes", "text", "display"}
        if extra:
            raise ValueError(
                f"{path}: '$codes' takes only 'text' and 'display', not {sorted(extra)}"
            )
        column = value["$codes"]
        if not isinstance(column, str) or not _COLUMN.match(column):
            raise ValueError(f"{path}.$codes: must name a column of SYSTEM:code text")
        text = _compile(value["text"], f"{path}.text") if "text" in value else None
        display = _compile(value["display"], f"{path}.display") if "display" in value else None
        return _Codes(column, text, display)
    directives = sorted(k for k in value if str(k).startswith("$"))
    raise ValueError(f"{path}: unknown directive {directives[0]} (known: $if, $codes)")


def _compile(value: Any, path: str) -> Node:
    if isinstance(value, str):
        return _compile_string(value, path)
    if isinstance(value, Mapping):
        if any(str(k).startswith("$") for k in value):
            return _compile_directive(value, path)
        return _Object([(str(k), _compile(v, f"{path}.{k}")) for k, v in value.items()])
    if isinstance(value, list):
        return _List([_compile(v, f"{path}[{i}]") for i, v in enumerate(value)])
    if value is None:
        raise ValueError(f"{path}: empty value (leave the key out instead)")
    if isinstance(value, bool | int | float):
        return _Const(value)
    raise ValueError(f"{path}: unsupported value of type {type(value).__name__}")


def compile_template(template: Mapping[str, Any], path: str = "template") -> Node:
    """Compile a resource template.

    Raises:
        ValueError: A malformed placeholder or directive; the message names its path.
    """
    return _compile(template, path)


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children():
        yield from _walk(child)


def template_columns(node: Node) -> set[str]:
    """Every column the template reads."""
    return {column for n in _walk(node) for column in n.columns()}


def template_maps(node: Node) -> set[str]:
    """Every value map the template uses."""
    return {name for n in _walk(node) for name in n.maps()}
