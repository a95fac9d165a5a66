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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ctrain.serving.errors import InvalidRequest

__all__ = ["PREDICT", "PREDICT_PROBA", "InferRequest", "InputSpec", "ResponseEncoder"]

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"

_NUMERIC_KINDS = {"FP32": "fiu", "FP64": "fiu", "INT32": "iu", "INT64": "iu"}
_BINARY_DTYPES = {"FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "INT64": "<i8"}
_DATATYPES = (*_NUMERIC_KINDS, "BYTES")


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

    def decode(self, body: bytes, json_length: int | None = None) -> InferRequest:
        """Parse and validate a request body; raise InvalidRequest with what is wrong."""
        header = body if json_length is None else body[:json_length]
        try:
            doc = orjson.loads(header)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"invalid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidRequest("invalid request: the body must be a JSON object")
        request_id = doc.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise InvalidRequest("invalid request: id must be a string")
        inputs = doc.get("inputs")
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            count = len(inputs) if isinstance(inputs, list) else 0
            raise InvalidRequest(f"expected exactly one input tensor in inputs, got {count}")
        binary = body[json_length:] if json_length is not None else None
        rows = self._tensor(inputs[0], binary)
        return InferRequest(request_id, rows, self._outputs(doc.get("outputs")))

    def _tensor(self, tensor: dict[str, Any], binary: bytes | None) -> np.ndarray:
        datatype = tensor.get("datatype")
        if datatype not in _DATATYPES:
            raise InvalidRequest(
                f"unsupported datatype {datatype!r}: expected one of {', '.join(_DATATYPES)}"
            )
        shape = tensor.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise InvalidRequest(f"shape must be [batch, n_features], got {shape!r}")
        batch, n_features = shape
        if n_features != self.n_features:
            raise InvalidRequest(
                f"wrong feature count: the model expects {self.n_features} features, "
                f"got shape {shape}"
            )
        if batch == 0:
            raise InvalidRequest("shape has a batch of 0 rows")
        size = batch * n_features
        parameters = tensor.get("parameters")
        binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if binary_size is not None:
            array = _from_binary(datatype, binary, binary_size, size)
        else:
            array = _from_json(datatype, tensor.get("data"))
        if array.size != size:
            raise InvalidRequest(f"shape {shape} needs {size} values, data has {array.size}")
        return self._rows(datatype, array.reshape(batch, n_features))

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
        rows = array.astype(object)
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
        names = []
        for item in requested:
            name = item.get("name") if isinstance(item, dict) else None
            if name not in self.output_names:
                raise InvalidRequest(
                    f"unknown output {name!r}: the model has {', '.join(self.output_names)}"
                )
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


def _from_json(datatype: str, data: Any) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidRequest("data must be a list (flat or nested, row-major)")
    try:
        array = np.asarray(data)
    except ValueError:
        raise InvalidRequest("data is ragged: nested lists of different lengths") from None
    kind = array.dtype.kind
    if kind == "O":  # JSON null (a missing value) among the values, or mixed types
        return _with_missing(datatype, array)
    if datatype == "BYTES":
        if kind != "U" and array.size:
            raise InvalidRequest("BYTES data must be strings")
    elif kind not in _NUMERIC_KINDS[datatype] and array.size:
        what = "strings" if kind == "U" else "booleans" if kind == "b" else "mixed values"
        raise InvalidRequest(f"{datatype} data must be numbers, got {what}")
    return array


def _with_missing(datatype: str, array: np.ndarray) -> np.ndarray:
    """null means a missing value: NaN in numeric columns, None in categorical ones."""
    values = array.ravel().tolist()
    if datatype == "BYTES":
        if not all(v is None or isinstance(v, str) for v in values):
            raise InvalidRequest("BYTES data must be strings or null")
        return array
    if not all(v is None or (type(v) in (int, float)) for v in values):
        raise InvalidRequest(f"{datatype} data must be numbers or null")
    if datatype.startswith("INT") and any(type(v) is float for v in values):
        raise InvalidRequest(f"{datatype} data must be integers or null")
    return np.asarray(array, dtype=np.float64)  # None becomes NaN


def _from_binary(datatype: str, binary: bytes | None, nbytes: Any, size: int) -> np.ndarray:
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
        item = chunk[offset + 4 : offset + 4 + length]
        if offset + 4 > nbytes or len(item) != length:
            raise InvalidRequest("binary BYTES data is truncated")
        try:
            values.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequest("binary BYTES data is not UTF-8") from None
        offset += 4 + length
    return np.asarray(values, dtype=str)


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
        return orjson.dumps(np.ascontiguousarray(array).ravel(), option=orjson.OPT_SERIALIZE_NUMPY)
