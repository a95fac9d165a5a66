"""The v2 HTTP surface of `ctrain serve`, in-process: status codes and exact JSON bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
from serving_fixtures import (
    IRIS_FEATURES,
    int_label_classifier,
    iris_classifier,
    make_app,
    mixed_classifier,
    regressor,
)

from ctrain.serving import ServingApp

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def iris_app() -> ServingApp:
    model, metadata, reference, _ = iris_classifier()
    return make_app(model, metadata, reference)


@pytest.fixture
async def client(iris_app: ServingApp) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(iris_app) as c:
        yield c


def _client(app: ServingApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _infer_body(rows: Any, datatype: str = "FP64", shape: list[int] | None = None,
                **extra: Any) -> dict[str, Any]:  # fmt: skip
    if shape is None:
        shape = list(np.asarray(rows, dtype=object).shape)
    tensor = {"name": "input-0", "datatype": datatype, "shape": shape, "data": rows}
    return {"inputs": [tensor], **extra}


def _iris_outputs(rows: Any) -> list[dict[str, Any]]:
    model = iris_classifier()[0]
    x = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    return [
        {"name": "predict", "datatype": "BYTES", "shape": [len(x)],
         "data": model.predict(x).tolist()},
        {"name": "predict_proba", "datatype": "FP64", "shape": [len(x), 3],
         "data": model.predict_proba(x).ravel().tolist()},
    ]  # fmt: skip


# -- health and metadata -------------------------------------------------------------


async def test_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/health/live")
    assert response.status_code == 200
    assert response.json() == {"live": True}


async def test_ready_once_loaded(client: httpx.AsyncClient) -> None:
    expected = {"name": "iris", "ready": True, "state": "Ready", "version": "3"}
    for path in ("/v2/health/ready", "/v2/models/iris/ready", "/v2/models/iris/versions/3/ready"):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (200, expected), path


async def test_server_metadata(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2")
    assert response.status_code == 200
    assert response.json() == {"name": "ctrain", "version": "0.1.0", "extensions": []}


async def test_model_metadata(client: httpx.AsyncClient) -> None:
    expected = {
        "name": "iris",
        "versions": ["3"],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [
            {"name": "predict", "datatype": "BYTES", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        ],
        "parameters": {
            "task": "classification",
            "features": IRIS_FEATURES,
            "featureTypes": dict.fromkeys(IRIS_FEATURES, "numeric"),
            "classes": ["setosa", "versicolor", "virginica"],
        },
    }
    for path in ("/v2/models/iris", "/v2/models/iris/versions/3"):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (200, expected), path


async def test_regressor_metadata() -> None:
    model, metadata, _ = regressor()
    async with _client(make_app(model, metadata)) as c:
        body = (await c.get("/v2/models/diabetes")).json()
    assert body["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 10]}]
    assert body["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    assert body["parameters"]["task"] == "regression"


# -- inference -----------------------------------------------------------------------


async def test_infer_fp64_flat_with_id(client: httpx.AsyncClient) -> None:
    flat = [v for row in ROWS for v in row]
    response = await client.post(
        "/v2/models/iris/infer", json=_infer_body(flat, shape=[3, 4], id="req-1")
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "model_name": "iris",
        "model_version": "3",
        "id": "req-1",
        "outputs": _iris_outputs(ROWS),
    }
    assert response.json()["outputs"][0]["data"] == ["setosa", "virginica", "versicolor"]


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
async def test_infer_nested(client: httpx.AsyncClient, datatype: str) -> None:
    response = await client.post("/v2/models/iris/infer", json=_infer_body(ROWS, datatype))
    assert response.status_code == 200
    assert response.json() == {"model_name": "iris", "model_version": "3",
                               "outputs": _iris_outputs(ROWS)}  # fmt: skip


@pytest.mark.parametrize("datatype", ["INT32", "INT64"])
async def test_infer_integers(client: httpx.AsyncClient, datatype: str) -> None:
    rows = [[5, 3, 1, 0], [7, 3, 5, 2]]
    response = await client.post("/v2/models/iris/infer", json=_infer_body(rows, datatype))
    assert response.status_code == 200
    assert response.json()["outputs"] == _iris_outputs(rows)


async def test_infer_bytes(client: httpx.AsyncClient) -> None:
    rows = [["5.1", "3.5", "1.4", "0.2"]]
    response = await client.post("/v2/models/iris/infer", json=_infer_body(rows, "BYTES"))
    assert response.status_code == 200
    assert response.json()["outputs"] == _iris_outputs([[5.1, 3.5, 1.4, 0.2]])


@pytest.mark.parametrize(
    ("outputs", "names"),
    [
        ([{"name": "predict_proba"}], ["predict_proba"]),
        ([{"name": "predict"}], ["predict"]),
        ([{"name": "predict_proba"}, {"name": "predict"}], ["predict_proba", "predict"]),
    ],
)
async def test_infer_honours_outputs(
    client: httpx.AsyncClient, outputs: list[dict[str, str]], names: list[str]
) -> None:
    response = await client.post("/v2/models/iris/infer", json=_infer_body(ROWS, outputs=outputs))
    assert response.status_code == 200
    by_name = {o["name"]: o for o in _iris_outputs(ROWS)}
    assert response.json()["outputs"] == [by_name[n] for n in names]


async def test_infer_versioned_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/iris/versions/3/infer", json=_infer_body(ROWS))
    assert response.status_code == 200
    assert response.json()["model_version"] == "3"


async def test_infer_int_labels() -> None:
    model, metadata = int_label_classifier()
    async with _client(make_app(model, metadata)) as c:
        response = await c.post("/v2/models/iris-int/infer", json=_infer_body(ROWS))
    assert response.status_code == 200
    predict = response.json()["outputs"][0]
    assert predict == {"name": "predict", "datatype": "INT64", "shape": [3], "data": [0, 2, 1]}


async def test_infer_regressor() -> None:
    model, metadata, x = regressor()
    rows = x[:2].tolist()
    async with _client(make_app(model, metadata)) as c:
        response = await c.post("/v2/models/diabetes/infer", json=_infer_body(rows, id="r"))
    assert response.status_code == 200
    assert response.json() == {
        "model_name": "diabetes",
        "model_version": "2",
        "id": "r",
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [2],
                     "data": model.predict(np.asarray(rows)).tolist()}],
    }  # fmt: skip


async def test_infer_categorical_features_as_bytes() -> None:
    model, metadata, reference = mixed_classifier()
    rows = [["12.5", "blue"], ["7.0", "green"], ["7.0", "red"], ["9.0", "purple"]]
    x = np.asarray([[12.5, "blue"], [7.0, "green"], [7.0, "red"], [9.0, "purple"]], dtype=object)
    async with _client(make_app(model, metadata, reference)) as c:
        meta = (await c.get("/v2/models/shapes")).json()
        response = await c.post("/v2/models/shapes/infer", json=_infer_body(rows, "BYTES"))
        numeric = await c.post("/v2/models/shapes/infer", json=_infer_body([[1.0, 2.0]]))
    assert meta["inputs"] == [{"name": "input-0", "datatype": "BYTES", "shape": [-1, 2]}]
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == model.predict(x).tolist()
    assert (numeric.status_code, numeric.json()) == (
        400,
        {"error": "datatype FP64 cannot carry categorical features: send BYTES"},
    )


# -- errors --------------------------------------------------------------------------

GOOD = _infer_body(ROWS)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "invalid JSON: "),
        (b"[1, 2]", 400, "invalid request: the body must be a JSON object"),
        ({"inputs": []}, 400, "expected exactly one input tensor in inputs, got 0"),
        ({"inputs": GOOD["inputs"] * 2}, 400, "expected exactly one input tensor in inputs, got 2"),
        ({"id": 7, **GOOD}, 400, "invalid request: id must be a string"),
        (_infer_body(ROWS, "FP16"), 400,
         "unsupported datatype 'FP16': expected one of FP32, FP64, INT32, INT64, BYTES"),
        (_infer_body(ROWS, shape=[12]), 400, "shape must be [batch, n_features], got [12]"),
        (_infer_body(ROWS, shape=[3, -4]), 400,
         "shape must be [batch, n_features], got [3, -4]"),
        (_infer_body([[1.0, 2.0, 3.0]]), 400,
         "wrong feature count: the model expects 4 features, got shape [1, 3]"),
        (_infer_body(ROWS, shape=[2, 4]), 400, "shape [2, 4] needs 8 values, data has 12"),
        (_infer_body([[1.0, 2.0], [3.0]], shape=[1, 4]), 400,
         "data is ragged: nested lists of different lengths"),
        (_infer_body([["a", "b", "c", "d"]]), 400, "FP64 data must be numbers, got strings"),
        (_infer_body([[True, False, True, True]]), 400,
         "FP64 data must be numbers, got booleans"),
        (_infer_body([[1.5, 2.0, 3.0, 4.0]], "INT64"), 400,
         "INT64 data must be numbers, got mixed values"),
        (_infer_body([[1, 2, 3, 4]], "BYTES"), 400, "BYTES data must be strings"),
        (_infer_body([["x", "2", "3", "4"]], "BYTES"), 400,
         "BYTES data is not numeric: 'x'"),
        (_infer_body([[1.0, "2", None, 4.0]]), 400, "FP64 data must be numbers or null"),
        ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": 5}]}, 400,
         "data must be a list (flat or nested, row-major)"),
        (_infer_body([], shape=[0, 4]), 400, "shape has a batch of 0 rows"),
        (_infer_body(ROWS, outputs=[{"name": "decision_function"}]), 400,
         "unknown output 'decision_function': the model has predict, predict_proba"),
        (_infer_body([[5.1, None, 1.4, 0.2]]), 400, "the model rejected the input: "),
    ],
)  # fmt: skip
async def test_bad_requests_are_400_and_the_server_keeps_serving(
    client: httpx.AsyncClient, body: Any, status: int, error: str
) -> None:
    if isinstance(body, bytes):
        response = await client.post("/v2/models/iris/infer", content=body)
    else:
        response = await client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == status
    message = response.json()["error"]
    assert message.startswith(error) if error.endswith(": ") else message == error
    after = await client.post("/v2/models/iris/infer", json=GOOD)
    assert after.status_code == 200
    assert after.json()["outputs"] == _iris_outputs(ROWS)


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("POST", "/v2/models/nope/infer", 404, "model 'nope' not found"),
        ("GET", "/v2/models/nope", 404, "model 'nope' not found"),
        ("GET", "/v2/models/nope/ready", 404, "model 'nope' not found"),
        ("POST", "/v2/models/iris/versions/2/infer", 404,
         "model 'iris' has no version '2' (serving 3)"),
        ("GET", "/v2/models/iris/versions/2", 404, "model 'iris' has no version '2' (serving 3)"),
        ("GET", "/nothing/here", 404, "not found"),
        ("GET", "/v2/models/iris/explain", 404, "not found"),
        ("GET", "/v2/models/iris/infer", 405, "use POST for /v2/models/iris/infer"),
        ("DELETE", "/v2/health/live", 405, "method DELETE not allowed on /v2/health/live"),
    ],
)  # fmt: skip
async def test_routing_errors(
    client: httpx.AsyncClient, method: str, path: str, status: int, error: str
) -> None:
    response = await client.request(method, path, json=GOOD if method == "POST" else None)
    assert (response.status_code, response.json()) == (status, {"error": error})


async def test_a_bad_row_fails_only_its_own_request_in_a_batch(iris_app: ServingApp) -> None:
    import asyncio

    async with _client(iris_app) as c:
        bad = _infer_body([[5.1, None, 1.4, 0.2]], id="bad")
        goods = [_infer_body([row], id=f"good-{i}") for i, row in enumerate(ROWS)]
        responses = await asyncio.gather(
            *(c.post("/v2/models/iris/infer", json=b) for b in [goods[0], bad, *goods[1:]])
        )
    assert [r.status_code for r in responses] == [200, 400, 200, 200]
    assert responses[1].json()["error"].startswith("the model rejected the input: ")
    for response, i in zip([responses[0], *responses[2:]], range(3), strict=True):
        assert response.json()["id"] == f"good-{i}"
        assert response.json()["outputs"][0]["data"] == _iris_outputs([ROWS[i]])[0]["data"]
