"""Where the served model comes from: an injected `ModelSource`.

The server does not know about S3. It asks a source for a `LoadedModel` (the fitted
estimator, its metadata.json and its reference.json), so that:

- `ctrain serve --model/--version` wires in the registry (`RegistrySource`),
- `ctrain serve --model-dir` reads the same three files from a directory
  (`DirectorySource`; the benchmark and tests use it),
- unit tests hand over an estimator fitted in-process (`StaticSource`).

`load()` is blocking (network, deserialisation); the model holder runs it in a thread.
Every refusal is a `ModelLoadError` whose `reason` says why, for the readiness body.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ctrain.serving.errors import ModelLoadError

__all__ = [
    "DirectorySource",
    "LoadedModel",
    "ModelSource",
    "RegistrySource",
    "StaticSource",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A fitted estimator with the registry files that describe it."""

    estimator: Any
    metadata: Mapping[str, Any]
    reference: Mapping[str, Any] | None = None
    # Where reference.json was read from, reported by GET /drift ("s3://..." or a path).
    reference_uri: str | None = None


class ModelSource(Protocol):
    """Something that can produce the model to serve."""

    @property
    def description(self) -> str:
        """Where the model comes from, for log lines."""
        ...

    def load(self) -> LoadedModel:
        """Fetch, verify and deserialise the model; raise ModelLoadError if refused."""
        ...


@dataclass
class StaticSource:
    """A model already in memory (tests, embedding)."""

    estimator: Any
    metadata: Mapping[str, Any]
    reference: Mapping[str, Any] | None = None
    reference_uri: str | None = "memory://reference.json"
    description: str = "memory"

    def load(self) -> LoadedModel:
        return LoadedModel(self.estimator, self.metadata, self.reference, self.reference_uri)


@dataclass
class DirectorySource:
    """model.skops + metadata.json (+ reference.json) in a local directory.

    The same checks as the registry: the sha256 recorded in metadata.json must match
    model.skops, and the file may only hold trusted types (`ctrain.registry.trust`).
    """

    path: Path
    description: str = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.description = str(self.path)

    def load(self) -> LoadedModel:
        metadata = _read_json(self.path / "metadata.json", required=True)
        assert metadata is not None
        model_path = self.path / str(metadata.get("modelFile", "model.skops"))
        try:
            data = model_path.read_bytes()
        except OSError as exc:
            raise ModelLoadError("ModelNotFound", f"cannot read {model_path}: {exc}") from exc
        expected = metadata.get("modelSha256")
        if not expected:
            raise ModelLoadError("IntegrityError", "metadata.json has no modelSha256")
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ModelLoadError(
                "IntegrityError",
                f"sha256 of {model_path.name} is {actual}, metadata.json says {expected}",
            )
        estimator = _loads_trusted(data)
        reference_path = self.path / "reference.json"
        reference = _read_json(reference_path, required=False)
        uri = reference_path.resolve().as_uri() if reference is not None else None
        return LoadedModel(estimator, metadata, reference, uri)


@dataclass
class RegistrySource:
    """A version of a model in the S3 registry (`ctrain.registry.Registry`).

    `ref` is `champion`, `latest` or a version; it is resolved once, at load time, so a
    pod serves one fixed version for its whole life (a new champion means a rollout).
    """

    registry: Any
    model: str
    ref: str

    @property
    def description(self) -> str:
        where = f"s3://{self.registry.bucket}/{self.registry.prefix}".rstrip("/")
        return f"registry model {self.model} version {self.ref} in {where}"

    def load(self) -> LoadedModel:
        from ctrain.registry import REFERENCE_FILE, RegistryError

        try:
            loaded = self.registry.load(self.model, self.ref)  # resolve + sha256 + skops
        except RegistryError as exc:
            raise ModelLoadError(type(exc).__name__, str(exc)) from exc
        version = loaded.version
        reference: Mapping[str, Any] | None
        uri: str | None = None
        try:
            reference = self.registry.reference(self.model, version).to_wire()
            uri = self.registry.artifact_uri(self.model, version) + REFERENCE_FILE
        except RegistryError as exc:
            # Drift monitoring is optional: a model without statistics still serves.
            log.warning("no drift statistics for %s v%s: %s", self.model, version, exc)
            reference = None
        metadata = loaded.metadata.to_wire(exclude_none=True)
        return LoadedModel(loaded.estimator, metadata, reference, uri)


def _read_json(path: Path, *, required: bool) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if not required:
            return None
        raise ModelLoadError("ModelNotFound", f"{path} does not exist") from exc
    except OSError as exc:
        raise ModelLoadError("ModelNotFound", f"cannot read {path}: {exc}") from exc
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ModelLoadError("IntegrityError", f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelLoadError("IntegrityError", f"{path.name} must hold a JSON object")
    return value


def _loads_trusted(data: bytes) -> Any:
    # The registry's trust list: a directory gets exactly the checks S3 gets.
    from ctrain.registry import RegistryError
    from ctrain.registry.trust import loads_trusted

    try:
        return loads_trusted(data)
    except RegistryError as exc:
        raise ModelLoadError(type(exc).__name__, str(exc)) from exc
