"""JSON Patch (RFC 6902) between two versions of a proposed resource, kept with each edit."""

from __future__ import annotations

from typing import Any

__all__ = ["json_patch"]


def _pointer(path: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def json_patch(before: Any, after: Any) -> list[dict[str, Any]]:
    """The operations turning ``before`` into ``after``.

    Objects are compared member by member; lists item by item (a changed length adds or
    removes at the end), which keeps the diff of an edited resource readable for a reviewer.
    """
    ops: list[dict[str, Any]] = []
    _diff(before, after, [], ops)
    return ops


def _diff(before: Any, after: Any, path: list[str | int], ops: list[dict[str, Any]]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before):
            if key not in after:
                ops.append({"op": "remove", "path": _pointer([*path, key])})
        for key in sorted(after):
            if key not in before:
                ops.append({"op": "add", "path": _pointer([*path, key]), "value": after[key]})
            else:
                _diff(before[key], after[key], [*path, key], ops)
        return
    if isinstance(before, list) and isinstance(after, list):
        common = min(len(before), len(after))
        for index in range(common):
            _diff(before[index], after[index], [*path, index], ops)
        for index in range(len(before) - 1, common - 1, -1):
            ops.append({"op": "remove", "path": _pointer([*path, index])})
        for index in range(common, len(after)):
            ops.append({"op": "add", "path": _pointer([*path, "-"]), "value": after[index]})
        return
    if before != after or type(before) is not type(after):
        ops.append({"op": "replace", "path": _pointer(path), "value": after})
