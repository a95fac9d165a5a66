"""Where each registry object lives in the bucket (DESIGN.md, "Model registry layout").

Pure functions, no I/O: the one place that spells the key layout, so the trainer, the
server and the `ctrain models` command cannot disagree about it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from ctrain.registry.errors import InvalidReference

__all__ = [
    "CHAMPION",
    "CLAIM_FILE",
    "LATEST",
    "METADATA_FILE",
    "MODEL_FILE",
    "REFERENCE_FILE",
    "REJECTED_FILE",
    "Layout",
    "check_model_name",
    "check_version",
]

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
REFERENCE_FILE = "reference.json"
CLAIM_FILE = ".claim"
REJECTED_FILE = "rejected.json"
CHAMPION = "champion"
LATEST = "latest"

_MODEL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VERSION = re.compile(r"^[1-9][0-9]*$")


def check_model_name(model: str) -> str:
    """A model name is a DNS-1123 label; anything else could escape its key prefix."""
    if len(model) > 63 or not _MODEL_NAME.match(model):
        raise InvalidReference(f"invalid model name {model!r}: must be a DNS-1123 label")
    return model


def check_version(version: str | int) -> str:
    """Versions are positive decimal integers written as strings ("1", "2", ...)."""
    text = str(version)
    if not _VERSION.match(text):
        raise InvalidReference(f"invalid version {text!r}: must be a positive integer")
    return text


@dataclass(frozen=True)
class Layout:
    """Keys of one registry: a bucket and an optional prefix inside it."""

    bucket: str
    prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

    def model_root(self, model: str) -> str:
        head = f"{self.prefix}/" if self.prefix else ""
        return f"{head}{check_model_name(model)}/"

    def versions_root(self, model: str) -> str:
        return f"{self.model_root(model)}versions/"

    def version_root(self, model: str, version: str | int) -> str:
        return f"{self.versions_root(model)}{check_version(version)}/"

    def key(self, model: str, version: str | int, name: str) -> str:
        return f"{self.version_root(model, version)}{name}"

    def champion_key(self, model: str) -> str:
        return f"{self.model_root(model)}aliases/{CHAMPION}"

    def champion_log_key(self, model: str) -> str:
        return f"{self.champion_key(model)}.log"

    def predictions_root(self, model: str) -> str:
        """Where serving pods write logged predictions (docs/contracts.md, "Prediction logs")."""
        return f"{self.model_root(model)}predictions/"

    def prediction_log_key(self, model: str, day: date, name: str) -> str:
        """`<prefix>/<model>/predictions/<yyyy>/<mm>/<dd>/<name>.parquet`."""
        return f"{self.predictions_root(model)}{day:%Y/%m/%d}/{name}.parquet"

    def artifact_uri(self, model: str, version: str | int) -> str:
        return f"s3://{self.bucket}/{self.version_root(model, version)}"

    def version_of(self, model: str, key: str) -> tuple[str, str] | None:
        """Split a key under `versions/` into (version, file name), or None if it is not one."""
        root = self.versions_root(model)
        if not key.startswith(root):
            return None
        version, _, name = key[len(root) :].partition("/")
        if not _VERSION.match(version) or not name or "/" in name:
            return None
        return version, name
