"""Open Inference Protocol v2 tensors ⇄ numpy, for one served model.

Requests: one input tensor (any name, `input-0` by convention) of shape
`[batch, n_features]` with datatype FP32, FP64, INT32, INT64 or BYTES; `data` row-major,
flat or nested; JSON `null` is a missing value (NaN, or None for a categorical feature,
which the trainer's pipelines impute). Triton's binary tensor extension is accepted too (the
`Inference-Header-Content-Length` header and `parameters.binary_data_size`), because
`tritonclient` sends binary inputs by default. Responses are always JSON.

Both directions are built around what can be computed once per model: the response
byte templates (`ResponseEncoder`) and the column layout (`InputSpec`), so each request
costs one `orjson.loads`, one `np.asarray` and a few byte concatenations.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ctrain.serving.errors import InvalidRequest, PayloadTooLarge
from ctrain.serving.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "BINARY_HEADER",
    "PREDICT",
    "PREDICT_PROBA",
    "InferRequest",
    "InputSpec",
    "ResponseEncoder",
]

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
# Triton's binary tensor extension: the length of the JSON part of the body.
BINARY_HEADER = b"inference-header-content-length"

# Arrays up to this size are written from a list (same bytes, less overhead).
_SMALL = 256
_NONE = type(None)
_FLOAT64 = np.dtype(np.float64)  # a singleton: compared with `is`, not a costly ==
# The Python types orjson gives for the values each numeric datatype accepts; bool is
# its own type, so true/false are refused rather than read as 1/0.
_NUMBERS: dict[str, set[type]] = {
    "FP32": {int, float}, "FP64": {int, float}, "INT32": {int}, "INT64": {int},
}  # fmt: skip
_INT_FLOAT = frozenset({int, float})
_FLOATING = frozenset({"FP32", "FP64"})
_BINARY_DTYPES = {"FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "INT64": "<i8"}
_DATATYPES = (*_NUMBERS, "BYTES")


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request: model-ready rows and what to answer."""

    id: str | None
    rows: np.ndarray  # [batch, n_features]: float64, or object for categorical models
    outputs: tuple[str, ...]  # in the order the client asked for them


@dataclass(frozen=True)
class InputSpec:
    """The input layout of a model: feature count and which columns are categorical."""

    n_features: int
    categorical: tuple[int, ...]  # column indices holding strings
    output_names: tuple[str, ...]  # every output the model has, in default order

    def decode(
        self, body: bytes, json_length: int | None = None, limits: Limits = DEFAULT_LIMITS
    ) -> InferRequest:
        """Parse and validate a request body; raise InvalidRequest with what is wrong.

        Everything that sizes an allocation (the shape, the number of values, each
        string's length) is checked against `limits` before an array is built.
        """
        if json_length is not None and not 0 <= json_length <= len(body):
            raise InvalidRequest(f"invalid {BINARY_HEADER.decode()} header")
        header = body if json_length is None else body[:json_length]
        try:
            doc = orjson.loads(header)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"invalid JSON: {exc}") from None
        if type(doc) is not dict:
            raise InvalidRequest("invalid request: the body must be a JSON object")
        request_id = doc.get("id")
        if request_id is not None:
            if type(request_id) is not str:
                raise InvalidRequest("invalid request: id must be a string")
            if len(request_id) > limits.max_string_length:
                raise InvalidRequest(f"id is longer than {limits.max_string_length} characters")
        inputs = doc.get("inputs")
        if type(inputs) is not list or len(inputs) != 1 or type(inputs[0]) is not dict:
            count = len(inputs) if isinstance(inputs, list) else 0
            raise InvalidRequest(f"expected exactly one input tensor in inputs, got {count}")
        binary = body[json_length:] if json_length is not None else None
        rows = self._tensor(inputs[0], binary, limits)
        outputs = doc.get("outputs")
        return InferRequest(request_id, rows, self.output_names if outputs is None else
                            self._outputs(outputs))  # fmt: skip

    def _tensor(self, tensor: dict[str, Any], binary: bytes | None, limits: Limits) -> np.ndarray:
        datatype = tensor.get("datatype")
        if datatype not in _DATATYPES:
            raise InvalidRequest(
                f"unsupported datatype {datatype!r}: expected one of {', '.join(_DATATYPES)}"
            )
        shape = tensor.get("shape")
        if type(shape) is not list or len(shape) != 2:
            raise InvalidRequest(f"shape must be [batch, n_features], got {shape!r}")
        batch, n_features = shape
        if type(batch) is not int or type(n_features) is not int or batch < 0 or n_features < 0:
            raise InvalidRequest(f"shape must be [batch, n_features], got {shape!r}")
        if n_features != self.n_features:
            raise InvalidRequest(
                f"wrong feature count: the model expects {self.n_features} features, "
                f"got shape {shape}"
            )
        if batch == 0:
            raise InvalidRequest("shape has a batch of 0 rows")
        if batch > limits.max_request_rows:
            raise PayloadTooLarge(
                f"{batch} rows in one request: the limit is {limits.max_request_rows}"
            )
        size = batch * n_features
        parameters = tensor.get("parameters")
        binary_size = parameters.get("binary_data_size") if type(parameters) is dict else None
        if binary_size is not None:
            array = _from_binary(datatype, binary, binary_size, size, limits.max_string_length)
        else:
            array = _from_json(datatype, tensor.get("data"), shape, limits.max_string_length)
        if array.size != size:
            raise InvalidRequest(f"shape {shape} needs {size} values, data has {array.size}")
        array = array.reshape(batch, n_features)
        if array.dtype is _FLOAT64 and not self.categorical:
            return array  # JSON numbers: already what the model takes
        return self._rows(datatype, array)

    def _rows(self, datatype: str, array: np.ndarray) -> np.ndarray:
        if not self.categorical:
            try:
                return array.astype(np.float64, copy=False)
            except (ValueError, TypeError):
                raise InvalidRequest(
                    f"{datatype} data is not numeric: {_not_a_number(array)}"
                ) from None
        if datatype != "BYTES":
            raise InvalidRequest(
                f"datatype {datatype} cannot carry categorical features: send BYTES"
            )
        rows = array.astype(object, copy=False)
        numeric = [j for j in range(self.n_features) if j not in self.categorical]
        try:
            rows[:, numeric] = array[:, numeric].astype(np.float64)
        except (ValueError, TypeError):
            raise InvalidRequest(
                f"a numeric feature is not a number: {_not_a_number(array[:, numeric])}"
            ) from None
        return rows

    def _outputs(self, requested: Any) -> tuple[str, ...]:
        if requested is None or requested == []:
            return self.output_names
        if not isinstance(requested, list):
            raise InvalidRequest("outputs must be a list of {name: ...} objects")
        names: list[str] = []
        for item in requested:
            name = item.get("name") if isinstance(item, dict) else None
            if name not in self.output_names:
                raise InvalidRequest(
                    f"unknown output {name!r}: the model has {', '.join(self.output_names)}"
                )
            if name in names:  # each listed output is answered: a long list would amplify
                raise InvalidRequest(f"output {name!r} is asked for more than once")
            names.append(name)
        return tuple(names)


def _not_a_number(array: np.ndarray) -> str:
    """Name the first value of `array` that is not a number (for the error message)."""
    for value in array.ravel().tolist():
        try:
            float(value)
        except (TypeError, ValueError):
            return repr(value)
    return "?"


def _flatten(data: Any) -> list[Any]:
    """The values of `data`, flat or nested by rows, as one list (no array built yet)."""
    if type(data) is not list:
        raise InvalidRequest("data must be a list (flat or nested, row-major)")
    if not data or type(data[0]) is not list:
        return data
    if len(data) == 1:
        return data[0]  # one row: its list is the flat list
    width = len(data[0])
    for row in data:
        if type(row) is not list or len(row) != width:
            raise InvalidRequest("data is ragged: nested lists of different lengths")
    return list(itertools.chain.from_iterable(data))


def _from_json(datatype: str, data: Any, shape: list[int], max_string: int) -> np.ndarray:
    """One flat array of the tensor's values, its types checked first.

    Never `np.asarray` on the client's lists as they are: one string among them makes a
    fixed-width unicode array as wide as the longest string for every value.
    """
    values = _flatten(data)
    kinds = set(map(type, values))
    size = shape[0] * shape[1]
    if kinds <= _INT_FLOAT and datatype in _FLOATING and len(values) == size:
        return np.asarray(values, dtype=np.float64)  # the usual request: numbers only
    if list in kinds:
        raise InvalidRequest("data must be flat or nested by rows, got deeper lists")
    if len(values) != size:
        raise InvalidRequest(f"shape {shape} needs {size} values, data has {len(values)}")
    missing = _NONE in kinds
    kinds.discard(_NONE)
    if datatype == "BYTES":
        if not kinds <= {str}:
            raise InvalidRequest(f"BYTES data must be strings{' or null' if missing else ''}")
        strings = [v for v in values if v is not None] if missing else values
        if max(map(len, strings), default=0) > max_string:
            raise InvalidRequest(f"a BYTES value is longer than {max_string} characters")
        return _objects(values)
    allowed = _NUMBERS[datatype]
    if not kinds <= allowed:
        if missing:
            what = "integers" if kinds <= {int, float} else "numbers"
            raise InvalidRequest(f"{datatype} data must be {what} or null")
        what = "strings" if kinds == {str} else "booleans" if kinds == {bool} else "mixed values"
        raise InvalidRequest(f"{datatype} data must be numbers, got {what}")
    return np.asarray(values, dtype=np.float64)  # null becomes NaN


def _objects(values: list[Any]) -> np.ndarray:
    """An object array of `values`: one pointer per value, the strings are not copied."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _from_binary(
    datatype: str, binary: bytes | None, nbytes: Any, size: int, max_string: int
) -> np.ndarray:
    if binary is None or type(nbytes) is not int or nbytes < 0 or nbytes > len(binary):
        raise InvalidRequest("binary_data_size does not match the binary part of the body")
    chunk = binary[:nbytes]
    if datatype != "BYTES":
        dtype = np.dtype(_BINARY_DTYPES[datatype])
        if nbytes % dtype.itemsize:
            raise InvalidRequest(f"binary {datatype} data is {nbytes} bytes long")
        return np.frombuffer(chunk, dtype=dtype)
    values: list[str] = []
    offset = 0
    while offset < nbytes and len(values) <= size:
        length = int.from_bytes(chunk[offset : offset + 4], "little")
        if length > 4 * max_string:  # UTF-8: at most 4 bytes per character
            raise InvalidRequest(f"a BYTES value is longer than {max_string} characters")
        item = chunk[offset + 4 : offset + 4 + length]
        if offset + 4 > nbytes or len(item) != length:
            raise InvalidRequest("binary BYTES data is truncated")
        try:
            value = item.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("binary BYTES data is not UTF-8") from None
        if len(value) > max_string:
            raise InvalidRequest(f"a BYTES value is longer than {max_string} characters")
        values.append(value)
        offset += 4 + length
    return _objects(values)


class ResponseEncoder:
    """Builds the JSON response of one request from pre-rendered byte templates."""

    def __init__(
        self,
        model_name: str,
        model_version: str,
        *,
        predict_datatype: str,
        predict_width: int | None,
        proba_width: int | None,
        string_labels: bool,
    ) -> None:
        self._head = (
            b'{"model_name":'
            + orjson.dumps(model_name)
            + b',"model_version":'
            + orjson.dumps(model_version)
        )
        self._string_labels = string_labels
        predict_tail = b"]" if predict_width is None else b"," + str(predict_width).encode() + b"]"
        self._templates: dict[str, tuple[bytes, bytes]] = {
            PREDICT: (
                b'{"name":"predict","datatype":"' + predict_datatype.encode() + b'","shape":[',
                predict_tail,
            )
        }
        if proba_width is not None:
            self._templates[PREDICT_PROBA] = (
                b'{"name":"predict_proba","datatype":"FP64","shape":[',
                b"," + str(proba_width).encode() + b"]",
            )

    def encode(
        self, request_id: str | None, outputs: Sequence[str], values: dict[str, np.ndarray]
    ) -> bytes:
        """`values` maps output name to this request's rows of that output."""
        parts = [self._head]
        if request_id is not None:
            parts += (b',"id":', orjson.dumps(request_id))
        parts.append(b',"outputs":[')
        for i, name in enumerate(outputs):
            head, tail = self._templates[name]
            array = values[name]
            if i:
                parts.append(b",")
            parts += (head, str(len(array)).encode(), tail, b',"data":', self._data(name, array))
            parts.append(b"}")
        parts.append(b"]}")
        return b"".join(parts)

    def _data(self, name: str, array: np.ndarray) -> bytes:
        if name == PREDICT and self._string_labels:
            return orjson.dumps([str(v) for v in array.ravel().tolist()])
        if array.size <= _SMALL:  # a list is quicker to write than numpy's buffer path
            return orjson.dumps(array.ravel().tolist())
        return orjson.dumps(np.ascontiguousarray(array).ravel(), option=orjson.OPT_SERIALIZE_NUMPY)
