"""Context budgets: keep tool results small enough for an LLM's context window."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DEFAULT_MAX_RESULT_BYTES", "budget_result", "compact_json"]

DEFAULT_MAX_RESULT_BYTES = 16 * 1024
"""Largest result text handed to the agent before resources become references."""


def compact_json(value: Any) -> str:
    """JSON without insignificant whitespace."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _reference(resource: dict[str, Any]) -> dict[str, Any]:
    reference: dict[str, Any] = {
        "reference": f"{resource.get('resourceType')}/{resource.get('id')}"
    }
    code = resource.get("code")
    if isinstance(code, dict) and (code.get("text") or code.get("coding")):
        coding = (code.get("coding") or [{}])[0]
        display = code.get("text") or coding.get("display") or coding.get("code")
        if display:
            reference["display"] = str(display)
    return reference


def budget_result(result: dict[str, Any], max_bytes: int, read_tool: str | None) -> dict[str, Any]:
    """The result, or a smaller one when its JSON is larger than ``max_bytes``.

    A search page whose resources do not fit keeps as many whole resources as fit and turns
    the rest into references (``{"reference": "Observation/1", "display": ...}``) the agent
    can read one by one; a single resource that does not fit becomes its reference and the
    list of its elements, to be read again with ``elements``.

    Args:
        result: The tool's result object.
        max_bytes: The budget for the result's compact JSON.
        read_tool: The tool that reads one resource of the result's type, named in the hint.
    """
    if len(compact_json(result).encode()) <= max_bytes:
        return result
    how = f"read them with {read_tool}" if read_tool else "read them one by one"
    resources = result.get("resources")
    if isinstance(resources, list):
        references = [_reference(r) for r in resources]

        def keeping(count: int) -> dict[str, Any]:
            return {
                **result,
                "resources": resources[:count],
                "references": references[count:],
                "note": (
                    f"{len(resources) - count} of {len(resources)} resources are given as "
                    f"references to fit the context budget; {how}, or search again with "
                    "'elements' or a smaller 'count'"
                ),
            }

        kept = 0
        while kept < len(resources) and len(compact_json(keeping(kept + 1)).encode()) <= max_bytes:
            kept += 1
        return keeping(kept)
    resource = result.get("resource")
    if isinstance(resource, dict):
        return {
            "reference": _reference(resource),
            "elements": sorted(resource),
            "note": (
                "the resource is larger than the context budget; read it again with "
                "'elements' naming the elements you need"
            ),
        }
    return result
