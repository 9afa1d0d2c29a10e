"""Paging positions: where the next page of a multi-source search starts.

A position names the resource type, the source and the last key returned, serialised as
unpadded base64url JSON. The gateway signs and wraps it; decoding still checks every part,
so a position from another type, source or key kind is refused rather than misread.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import his_sdk.errors

__all__ = ["Position", "decode_position", "encode_position"]

_VERSION = 1


@dataclass(frozen=True)
class Position:
    """Continue after ``key`` in source ``source`` of ``resource_type``."""

    resource_type: str
    source: str
    key: int | str


def encode_position(position: Position) -> str:
    """The opaque text of a position."""
    payload = {"v": _VERSION, "t": position.resource_type, "s": position.source, "k": position.key}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _malformed() -> his_sdk.errors.InvalidRequestError:
    return his_sdk.errors.InvalidRequestError("malformed paging position for this search")


def decode_position(text: str) -> Position:
    """Parse a position produced by :func:`encode_position`.

    Raises:
        his_sdk.errors.InvalidRequestError: The text is not such a position.
    """
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload: Any = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _malformed() from None
    if not isinstance(payload, dict) or set(payload) != {"v", "t", "s", "k"}:
        raise _malformed()
    key = payload["k"]
    if (
        payload["v"] != _VERSION
        or not isinstance(payload["t"], str)
        or not isinstance(payload["s"], str)
        or isinstance(key, bool)
        or not isinstance(key, int | str)
    ):
        raise _malformed()
    return Position(payload["t"], payload["s"], key)
