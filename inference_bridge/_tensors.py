"""Tensors on the KServe v2 wire: datatypes, the encoded request, and response decoding."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._errors import BackendRejectedError

__all__ = [
    "DATATYPES",
    "EncodedInput",
    "EncodedInputs",
    "Tensors",
    "decode_outputs",
    "encode_inputs",
]

Tensors = dict[str, NDArray[Any]]
"""Named arrays: a model's inputs or outputs."""

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
"""KServe v2 datatype names of fixed-width tensors and their little-endian NumPy dtypes."""

# The typed ``InferTensorContents`` field that holds each datatype when a server answers
# without ``raw_output_contents``. FP16 has no typed field in the protocol.
_TYPED_FIELDS = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


@dataclass(frozen=True, slots=True)
class EncodedInput:
    """One input tensor serialised once, so every attempt sends the same bytes.

    Attributes:
        name: The tensor name.
        datatype: KServe v2 datatype.
        shape: The tensor shape.
        raw: Little-endian row-major bytes.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    raw: bytes

    def array(self) -> NDArray[Any]:
        """The tensor as a read-only NumPy array over the encoded bytes."""
        return np.frombuffer(self.raw, dtype=DATATYPES[self.datatype]).reshape(self.shape)


@dataclass(frozen=True, slots=True)
class EncodedInputs:
    """A request's input tensors, encoded once, with their size and content hash.

    Attributes:
        tensors: The inputs in schema order.
        sha256: Hex SHA-256 over names, datatypes, shapes and bytes: the input hash that
            Provenance and audit records carry.
        nbytes: Total payload bytes.
    """

    tensors: tuple[EncodedInput, ...]
    sha256: str
    nbytes: int

    def arrays(self) -> Tensors:
        """The inputs as NumPy arrays by name."""
        return {t.name: t.array() for t in self.tensors}


def encode_inputs(
    arrays: Mapping[str, NDArray[Any]], datatypes: Mapping[str, str]
) -> EncodedInputs:
    """Serialise input arrays in the order of ``datatypes`` (the schema order).

    Raises:
        ValueError: An array is missing or its datatype is not a fixed-width KServe type.
    """
    digest = hashlib.sha256()
    tensors = []
    for name, datatype in datatypes.items():
        if name not in arrays:
            raise ValueError(f"input tensor {name!r} is missing")
        dtype = DATATYPES.get(datatype)
        if dtype is None:
            raise ValueError(f"datatype {datatype} is not supported for inputs")
        array = np.ascontiguousarray(arrays[name], dtype=dtype.newbyteorder("<"))
        raw = array.tobytes()
        shape = tuple(int(d) for d in array.shape)
        digest.update(f"{name}\0{datatype}\0{','.join(map(str, shape))}\0{len(raw)}\0".encode())
        digest.update(raw)
        tensors.append(EncodedInput(name, datatype, shape, raw))
    return EncodedInputs(tuple(tensors), digest.hexdigest(), sum(len(t.raw) for t in tensors))


def decode_outputs(response: Any, wanted: Mapping[str, str]) -> Tensors:
    """Output tensors of a KServe v2 ``ModelInferResponse``, raw or typed.

    Servers may put tensor data in ``raw_output_contents`` (Triton, MLServer for raw
    requests) or in each output's typed ``contents`` (several KServe servers); tritonclient's
    ``as_numpy`` answers an empty array for the latter, so both layouts are decoded here.

    Args:
        response: The ``ModelInferResponse`` protobuf message.
        wanted: Output name to expected datatype, from the model schema.

    Raises:
        BackendRejectedError: An output is missing, has another datatype, or its data does
            not fill its shape.
    """
    by_name = {output.name: (i, output) for i, output in enumerate(response.outputs)}
    raw_contents = list(response.raw_output_contents)
    result: Tensors = {}
    for name, datatype in wanted.items():
        if name not in by_name:
            raise BackendRejectedError(f"the backend's answer lacks output {name!r}")
        index, output = by_name[name]
        if output.datatype != datatype:
            raise BackendRejectedError(
                f"output {name!r} came as {output.datatype}, the schema says {datatype}"
            )
        shape = tuple(int(d) for d in output.shape)
        count = int(np.prod(shape)) if shape else 1
        dtype = DATATYPES[datatype]
        if raw_contents:
            if index >= len(raw_contents):
                raise BackendRejectedError(f"output {name!r} has no raw contents")
            data = raw_contents[index]
            if len(data) != count * dtype.itemsize:
                raise BackendRejectedError(
                    f"output {name!r} has {len(data)} bytes for shape {list(shape)}"
                )
            array = np.frombuffer(data, dtype=dtype.newbyteorder("<")).reshape(shape)
        else:
            field = _TYPED_FIELDS.get(datatype)
            if field is None:
                raise BackendRejectedError(f"output {name!r} of {datatype} needs raw contents")
            values = getattr(output.contents, field)
            if len(values) != count:
                raise BackendRejectedError(
                    f"output {name!r} has {len(values)} values for shape {list(shape)}"
                )
            array = np.asarray(values, dtype=dtype).reshape(shape)
        result[name] = array
    return result
