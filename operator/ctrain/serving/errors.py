"""The serving errors, and the HTTP status each one maps to.

The app turns any `ServingError` into a JSON body `{"error": "<message>"}` with the
error's `status`, so request-handling code only raises and never builds responses for
failures itself. The hierarchy:

    ServingError                 (500) something went wrong while serving
    ├── InvalidRequest           (400) the request is malformed: JSON, shape, datatype,
    │                                  feature count, unknown output
    ├── NotFound                 (404) no such route, model or version
    ├── MethodNotAllowed         (405)
    ├── ModelNotReady            (503) the model is loading, or was refused
    └── PredictionFailed         (500) the estimator raised on input that was well-formed

    ModelLoadError               the model cannot be loaded (missing, tampered, untrusted,
                                 unreadable); keeps the server alive and not ready
"""

from __future__ import annotations

__all__ = [
    "InvalidRequest",
    "MethodNotAllowed",
    "ModelLoadError",
    "ModelNotReady",
    "NotFound",
    "PredictionFailed",
    "ServingError",
]


class ServingError(Exception):
    """An error answered to the client with `status` and `{"error": str(self)}`."""

    status = 500


class InvalidRequest(ServingError):
    """The client sent something the server cannot use."""

    status = 400


class NotFound(ServingError):
    """No such route, model or model version."""

    status = 404


class MethodNotAllowed(ServingError):
    """The route exists but not for this HTTP method."""

    status = 405


class ModelNotReady(ServingError):
    """The model is not loaded (yet, or at all)."""

    status = 503


class PredictionFailed(ServingError):
    """The estimator raised an unexpected error."""

    status = 500


class ModelLoadError(Exception):
    """The model cannot be loaded; `reason` is a short CamelCase word for machines."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
