"""The serving errors, and the HTTP status each one maps to.

The app turns any `ServingError` into a JSON body `{"error": "<message>"}` with the
error's `status`, so request-handling code only raises and never builds responses for
failures itself. The hierarchy:

    ServingError                 (500) something went wrong while serving
    ├── InvalidRequest           (400) the request is malformed: JSON, shape, datatype,
    │                                  feature count, unknown output, a string too long
    ├── NotFound                 (404) no such route, model or version
    ├── MethodNotAllowed         (405)
    ├── RequestTimeout           (408) the body did not arrive in time (connection closed)
    ├── PayloadTooLarge          (413) body or rows over their limit (connection closed)
    ├── ModelNotReady            (503) the model is loading, or was refused
    ├── Overloaded               (503) too much work in progress; `Retry-After` says when
    ├── ClientDisconnected       (499) the client went away before its answer (metrics only)
    └── PredictionFailed         (500) the estimator raised on input that was well-formed

    ModelLoadError               the model cannot be loaded (missing, tampered, untrusted,
                                 unreadable); keeps the server alive and not ready
"""

from __future__ import annotations

__all__ = [
    "ClientDisconnected",
    "InvalidRequest",
    "MethodNotAllowed",
    "ModelLoadError",
    "ModelNotReady",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PredictionFailed",
    "RequestTimeout",
    "ServingError",
]

_CLOSE = ((b"connection", b"close"),)


class ServingError(Exception):
    """An error answered to the client with `status` and `{"error": str(self)}`."""

    status = 500
    # Extra response headers. `connection: close` where the request body may be unread:
    # the connection cannot carry another request, and draining it is the attack.
    headers: tuple[tuple[bytes, bytes], ...] = ()


class InvalidRequest(ServingError):
    """The client sent something the server cannot use."""

    status = 400


class NotFound(ServingError):
    """No such route, model or model version."""

    status = 404


class MethodNotAllowed(ServingError):
    """The route exists but not for this HTTP method."""

    status = 405


class RequestTimeout(ServingError):
    """The request body did not arrive within the body timeout."""

    status = 408
    headers = _CLOSE


class PayloadTooLarge(ServingError):
    """The body, or the rows of one request, exceed their limit."""

    status = 413
    headers = _CLOSE


class ClientDisconnected(ServingError):
    """The client closed the connection before the body arrived; nobody reads the answer."""

    status = 499


class ModelNotReady(ServingError):
    """The model is not loaded (yet, or at all)."""

    status = 503


class Overloaded(ServingError):
    """Too many requests in progress or queued: retry after `retry_after` seconds."""

    status = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers = ((b"retry-after", str(retry_after).encode()),)


class PredictionFailed(ServingError):
    """The estimator raised an unexpected error."""

    status = 500


class ModelLoadError(Exception):
    """The model cannot be loaded; `reason` is a short CamelCase word for machines."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
