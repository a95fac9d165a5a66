"""Hostile and malformed requests for the `shapes` model (features: size, color).

Each builder returns `Case`s: a class name (for the table), the bytes to send and the
status codes a correct server may answer. HTTP-level cases are raw bytes sent on a
socket (`raw=True`); the others are POST bodies (with optional extra headers).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

import orjson

INFER = "/v2/models/shapes/infer"
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Case:
    kind: str
    payload: bytes
    expect: frozenset[int]
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False  # payload is a whole HTTP request, sent on a socket
    slow: bool = False  # send part of it, then stall (the server's timeouts answer)


def _tensor(data: object, shape: list[int], datatype: str = "BYTES", **extra: object) -> bytes:
    tensor = {"name": "input-0", "datatype": datatype, "shape": shape, "data": data}
    return orjson.dumps({"inputs": [tensor], **extra})


def _bad(kind: str, body: bytes, *codes: int, **headers: str) -> Case:
    return Case(kind, body, frozenset(codes or (400,)), headers)


def malformed_json(rng: random.Random, n: int) -> list[Case]:
    cases = [
        _bad("malformed JSON", b"{not json"),
        _bad("malformed JSON", b""),
        _bad("malformed JSON", b"[" * 100_000 + b"]" * 100_000),  # nesting bomb
        _bad("malformed JSON", b'{"inputs": [{"data": [1, 2'),  # truncated
        _bad("malformed JSON", b"\xff\xfe\x00garbage"),
        _bad("malformed JSON", b'{"inputs": NaN}'),
        _bad("malformed JSON", b'{"a": 1e999}'),
    ]
    while len(cases) < n:
        cases.append(_bad("malformed JSON", rng.randbytes(rng.randint(1, 2000))))
    return cases


def bad_structure() -> list[Case]:
    good = [["1.0", "red"]]
    bodies = [
        b"[1, 2]",
        b"null",
        b'"inputs"',
        b"{}",
        b'{"inputs": {}}',
        b'{"inputs": []}',
        orjson.dumps({"inputs": [{"datatype": "BYTES"}] * 2}),
        orjson.dumps(
            {"id": 7, "inputs": [{"name": "i", "datatype": "BYTES", "shape": [1, 2], "data": good}]}
        ),
        _tensor(good, [1, 2], "FP16"),
        _tensor(good, [1, 2], None),
        _tensor(good, [2]),
        _tensor(good, [1, -2]),
        _tensor(good, [1, 3]),
        _tensor(good, [1.5, 2]),
        _tensor(good, [True, 2]),
        _tensor(good, "1,2"),
        _tensor(good, [1, 2, 1]),
        _tensor([["1.0"], ["red", "x"]], [2, 2]),
        _tensor([[["1.0", "red"]]], [1, 2]),
        _tensor([1, 2], [1, 2]),
        _tensor([True, False], [1, 2]),
        _tensor("data", [1, 2]),
        _tensor([{"a": 1}, "red"], [1, 2]),
        _tensor([["x", "red"]], [1, 2]),
        _tensor([[1.0, 2.0]], [1, 2], "FP64"),
        _tensor([["1", "2"]], [1, 2], "INT64"),
        _tensor(good, [0, 2]),
        _tensor(good, [1, 2], outputs={"name": "predict"}),
        _tensor(good, [1, 2], outputs=[{"name": "explain"}]),
        _tensor(good, [1, 2], outputs=[7]),
        _tensor([None, None], [1, 2]),
        _tensor([["nan", "red"]], [1, 2], parameters=[1]),
        _tensor(good, [1, 2], id=["a"]),
        _tensor(good, [1, 2], id={"a": 1}),
        b'{"inputs": [{"name": "i", "datatype": "BYTES", "shape": [1, 2], "data": '
        b'[18446744073709551616, "red"]}]}',
    ]
    return [_bad("bad structure", body) for body in bodies]


def _binary(values: list[bytes], declared: int | None = None, **tensor: object) -> tuple:
    part = b"".join(struct.pack("<I", len(v)) + v for v in values)
    size = len(part) if declared is None else declared
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "i",
                    "datatype": "BYTES",
                    "shape": [1, 2],
                    "parameters": {"binary_data_size": size},
                    **tensor,
                }
            ]
        }
    )
    return head + part, {"Inference-Header-Content-Length": str(len(head))}


def allocation_bombs() -> list[Case]:
    """Small bodies that once asked for huge allocations, or answers that would amplify."""
    long_among_short = [["1.0", "red"]] * 3000
    long_among_short[0] = ["1.0", "x" * 20_000]
    within = [["1.0", "red"]] * 3000
    within[0] = ["1.0", "y" * 1024]
    cases = [
        _bad("allocation bomb", _tensor(long_among_short, [3000, 2])),
        _bad("allocation bomb", _tensor(["z" * 20_000] + [1.0] * 5999, [3000, 2], "FP64")),
        _bad("allocation bomb", _tensor([["1.0", "red"]], [10**15, 2]), 413),
        _bad("allocation bomb", _tensor([["1.0", "red"]], [MAX_ROWS + 1, 2]), 413),
        _bad(
            "allocation bomb",
            _tensor([["1.0", "red"]], [1, 2], outputs=[{"name": "predict"}] * 100_000),
        ),
        _bad("allocation bomb", _tensor([["1.0", "red"]], [1, 2], id="i" * 100_000)),
        Case("allocation bomb", _tensor(within, [3000, 2]), frozenset({200})),
    ]
    for values, declared, extra in [
        ([b"1.0", b"\xff" * 8], None, {}),  # not UTF-8
        ([b"1.0", b"r" * 50_000], None, {}),  # longer than the string limit
        ([b"1.0"], None, {}),  # too few values
        ([b"1.0", b"red"], 10**9, {}),  # declares more than it has
        ([b"1.0", b"red"], -1, {}),
        ([b"1.0", b"red"], None, {"datatype": "FP64"}),  # 12 bytes of FP64: not a multiple
    ]:
        body, headers = _binary(values, declared, **extra)
        cases.append(_bad("allocation bomb", body, **headers))
    lying = struct.pack("<I", 2**32 - 1) + b"abc"  # a length prefix of 4 GiB
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "i",
                    "datatype": "BYTES",
                    "shape": [1, 2],
                    "parameters": {"binary_data_size": len(lying)},
                }
            ]
        }
    )
    cases.append(
        _bad("allocation bomb", head + lying, **{"Inference-Header-Content-Length": str(len(head))})
    )
    for length in ("999999999", "-5", "abc"):
        cases.append(
            _bad(
                "allocation bomb",
                _tensor([["1.0", "red"]], [1, 2]),
                **{"Inference-Header-Content-Length": length},
            )
        )
    return cases


def over_limits(max_body: int) -> list[Case]:
    padding = b" " * (max_body + 1 - 60)
    big = b'{"inputs": [{"name": "i", "datatype": "BYTES", "shape": [1, 2], "data": ' + padding
    rows = [[f"{i}.5", "red"] for i in range(MAX_ROWS)]
    return [
        _bad("over a limit", big + b'[["1", "red"]]}]}', 413),
        _bad("over a limit", _tensor(rows, [MAX_ROWS, 2]), 200),  # the largest allowed
        _bad("over a limit", _tensor(rows + rows[:1], [MAX_ROWS + 1, 2]), 413),
        _bad("over a limit", _tensor([["1.0", "c" * 1025]], [1, 2])),
        _bad("over a limit", _tensor([["1.0", "red"]], [1, 2], id="d" * 1025)),
    ]


def _request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body and "Transfer-Encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_garbage(rng: random.Random, n: int) -> list[Case]:
    ok = _tensor([["1.0", "red"]], [1, 2])
    any_client_error = frozenset({0, 400, 404, 405, 408, 413, 431})  # 0: closed, no answer
    raws = [
        b"GARBAGE\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost test\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        _request("GET", "/" + "a" * 100_000),
        _request("GET", "/v2/health/live", **{f"X-{i}": "v" * 50 for i in range(2000)}),
        _request("POST", INFER, ok, **{"Content-Length": "-1"}),
        _request("POST", INFER, ok, **{"Content-Length": "1, 2"}),
        _request("POST", INFER, ok, **{"Transfer-Encoding": "chunked", "Content-Length": "5"}),
        _request(
            "POST", INFER, b"zz\r\n" + ok + b"\r\n0\r\n\r\n", **{"Transfer-Encoding": "chunked"}
        ),
        _request("POST", INFER, ok, **{"Transfer-Encoding": "gzip"}),
        _request("POST", INFER, **{"Content-Length": "99999999999999999999"}),
        _request("POST", INFER, **{"Content-Length": "1000000000"}),
        _request("GET", "/v2/models/../../../etc/passwd"),
        _request("GET", "/v2/models/%00"),
        _request("DELETE", INFER),
        _request("PUT", "/v2/health/live"),
        _request("GET", INFER),
        _request("POST", "/v2/models/other/infer", ok),
        _request("POST", "/v2/models/shapes/versions/99/infer", ok),
        _request("GET", "/v2/models/shapes/versions/1/../../x"),
        _request("TRACE", "/"),
        _request("OPTIONS", "*"),
    ]
    while len(raws) < n:
        raws.append(
            b"POST " + INFER.encode() + b" HTTP/1.1\r\n" + rng.randbytes(rng.randint(1, 500))
        )
    return [Case("HTTP garbage", raw, any_client_error, raw=True) for raw in raws]


def slow_clients() -> list[Case]:
    """Sent in part, then the client stalls: the timeouts answer 408 (or close)."""
    ok = _tensor([["1.0", "red"]], [1, 2])
    whole = _request("POST", INFER, ok)
    heads_only = whole[: whole.index(b"\r\n\r\n")]
    return [
        Case("slow client", b"", frozenset({0}), raw=True, slow=True),  # sends nothing
        Case("slow client", heads_only[:30], frozenset({408}), raw=True, slow=True),
        Case("slow client", heads_only, frozenset({408}), raw=True, slow=True),
        Case("slow client", whole[:-10], frozenset({408}), raw=True, slow=True),
        Case("slow client", whole[: len(heads_only) + 4], frozenset({408}), raw=True, slow=True),
    ]
