"""FHIR JSON of ``fhir.resources`` models, equal to ``model_dump_json`` and several times faster."""

from __future__ import annotations

import datetime
import decimal
import importlib
import json
import math
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from fhir_core.fhirabstractmodel import FHIR_COMMENTS_FIELD_NAME, FHIRAbstractModel
from fhir_core.utils import get_base64_encoder, is_primitive_type

__all__ = ["dump_resource", "resource_dict"]


class _Unsupported(Exception):
    """A value that this module cannot render exactly as ``fhir_core`` does."""


class _Base64Encoder(Protocol):
    def encode(self, value: bytes, /) -> bytes: ...


# One element of a model class, in ``elements_sequence()`` order: attribute name, JSON key,
# whether it is a primitive, its base64 encoder, and the attribute and JSON key of its
# ``_element`` sibling (None where the element is complex or has no sibling).
_Element = tuple[str, str, bool, "_Base64Encoder | None", "str | None", "str | None"]
# The ``resourceType`` to write first (None for elements) and the elements.
_Plan = tuple["str | None", tuple[_Element, ...]]

_PLANS: dict[type, _Plan] = {}
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _load_orjson_dumps() -> Callable[[Any], bytes] | None:
    try:
        module = importlib.import_module("orjson")
    except ImportError:
        return None
    dumps: Callable[[Any], bytes] = module.dumps
    return dumps


_ORJSON_DUMPS = _load_orjson_dumps()


def dump_resource(model: FHIRAbstractModel) -> bytes:
    """Serialise a model to compact UTF-8 FHIR JSON.

    The document parses to the same value as ``model.model_dump_json(exclude_none=True)``.
    A model holding a value that this module does not know how to render exactly is
    serialised by ``model_dump_json`` instead. ``orjson``, when installed, encodes the
    result; the standard library does otherwise.

    Args:
        model: A ``fhir.resources`` model, usually a resource.

    Returns:
        The JSON document.
    """
    try:
        data = _model(model)
        if _ORJSON_DUMPS is not None:
            try:
                return _ORJSON_DUMPS(data)
            except TypeError:
                # orjson refuses integers beyond 64 bits and lone surrogates.
                pass
        return _ENCODER.encode(data).encode()
    except (_Unsupported, KeyError, ValueError):
        # KeyError: a field missing from the instance's __dict__. ValueError: an integer
        # over the int-to-str digit limit, or a lone surrogate.
        return model.model_dump_json(exclude_none=True).encode()


def resource_dict(model: FHIRAbstractModel) -> dict[str, Any]:
    """A model as FHIR JSON-ready data: aliases, no nulls, ``_element`` extensions.

    Equal to ``json.loads(model.model_dump_json(exclude_none=True))``. Every dict and
    list in the result is new, so the caller may change it.

    Args:
        model: A ``fhir.resources`` model, usually a resource.

    Returns:
        The JSON object.
    """
    try:
        return _model(model)
    except (_Unsupported, KeyError):
        data: dict[str, Any] = json.loads(model.model_dump_json(exclude_none=True))
        return data


def _plan(cls: type) -> _Plan:
    """How ``FHIRAbstractModel._fhir_iter`` walks instances of ``cls``."""
    plan = _PLANS.get(cls)
    if plan is not None:
        return plan
    if not issubclass(cls, FHIRAbstractModel):
        raise _Unsupported(f"{cls.__name__} is not a FHIR model")
    resource_type = cls.get_resource_type() if cls.has_resource_base() else None
    names = cls.get_alias_mapping()
    fields = cls.model_fields
    elements: list[_Element] = []
    for element in cls.elements_sequence():
        name = names[element]
        info = fields[name]
        key = info.alias or name
        if not is_primitive_type(info):
            elements.append((name, key, False, None, None, None))
            continue
        encoder = get_base64_encoder(info)
        ext_name = f"{name}__ext"
        ext_info = fields.get(ext_name)
        if ext_info is None:
            elements.append((name, key, True, encoder, None, None))
        else:
            elements.append((name, key, True, encoder, ext_name, ext_info.alias or ext_name))
    plan = (resource_type, tuple(elements))
    _PLANS[cls] = plan
    return plan


def _model(obj: Any) -> dict[str, Any]:
    resource_type, elements = _PLANS.get(type(obj)) or _plan(type(obj))
    values = obj.__dict__
    out: dict[str, Any] = {}
    if resource_type is not None:
        out["resourceType"] = resource_type
    for name, key, primitive, encoder, ext_name, ext_key in elements:
        value = values[name]
        if value is not None:
            cls = type(value)
            if not primitive:
                if cls is list:
                    if value:
                        out[key] = [None if item is None else _model(item) for item in value]
                else:
                    out[key] = _model(value)
            elif cls is str or cls is bool or cls is int:
                out[key] = value
            elif cls is list:
                if value:
                    out[key] = [_primitive(item, encoder) for item in value]
            else:
                out[key] = _primitive(value, encoder)
        if ext_key is not None:
            ext = values[ext_name]
            if ext is not None:
                if type(ext) is list:
                    if ext:
                        out[ext_key] = [None if item is None else _model(item) for item in ext]
                else:
                    # fhir_core drops an empty extension object, unlike an empty element.
                    rendered = _model(ext)
                    if rendered:
                        out[ext_key] = rendered
    comments = values.get(FHIR_COMMENTS_FIELD_NAME)
    if comments is not None:
        out[FHIR_COMMENTS_FIELD_NAME] = _comments(comments)
    return out


def _comments(value: Any) -> str | list[str]:
    if type(value) is str:
        return value
    if type(value) is list and all(type(item) is str for item in value):
        return list(value)
    raise _Unsupported("fhir_comments that are not strings")


def _primitive(value: Any, encoder: _Base64Encoder | None) -> Any:
    cls = type(value)
    if cls is str or cls is bool or cls is int or value is None:
        return value
    convert = _CONVERTERS.get(cls)
    if convert is not None:
        return convert(value)
    if (cls is bytes or cls is bytearray) and encoder is not None:
        return encoder.encode(value).decode()
    raise _Unsupported(f"primitive of type {cls.__name__}")


def _decimal(value: decimal.Decimal) -> int | float:
    # fhir_core writes a decimal with no fractional digits as an int and any other as a float.
    if not value.is_finite():
        raise _Unsupported("non-finite decimal")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return _float(float(value))


def _float(value: float) -> float:
    if not math.isfinite(value):
        raise _Unsupported("non-finite number")
    return value


def _datetime(value: datetime.datetime) -> str:
    # pydantic writes a zero offset as "Z" and cuts sub-minute offsets, which isoformat keeps.
    offset = value.utcoffset()
    if offset is None:
        if value.tzinfo is not None:
            raise _Unsupported("time zone without an offset")
        return value.isoformat()
    if offset.microseconds or offset.seconds % 60:
        raise _Unsupported("sub-minute UTC offset")
    text = value.isoformat()
    return f"{text[:-6]}Z" if not offset else text


def _date(value: datetime.date) -> str:
    return value.isoformat()


def _time(value: datetime.time) -> str:
    if value.tzinfo is not None:
        raise _Unsupported("time with a time zone")
    return value.isoformat()


def _uuid(value: uuid.UUID) -> str:
    return f"urn:uuid:{value}"


# Exact types only: a subclass (an enum, a pendulum datetime) falls back to model_dump_json.
_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    decimal.Decimal: _decimal,
    float: _float,
    datetime.datetime: _datetime,
    datetime.date: _date,
    datetime.time: _time,
    uuid.UUID: _uuid,
}
