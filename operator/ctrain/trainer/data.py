"""Reading the training data and fingerprinting it.

A dataset is one table: a CSV or Parquet object in S3 (read through the injected S3
client, so any S3-compatible store works), or one of scikit-learn's bundled toy sets
(``builtin://iris|wine|breast_cancer|diabetes``), which need no storage at all.

The fingerprint (``sha256:<hex>``) identifies exactly what was trained on: the sha256 of
the object's raw bytes, or for a builtin set of its canonical CSV serialization (columns
as below, no index, ``\\n`` line ends), so it changes only when the data changes.

Builtin sets are shaped like a user's table: snake_case feature names
(``sepal length (cm)`` → ``sepal_length``) and the target in the column ``target`` with
readable labels for the classification sets (iris species names, ``malignant``/``benign``,
``class_0``...); diabetes keeps its numeric (regression) target.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from ctrain.api import DatasetSpec, Reason
from ctrain.api.trainingjob import BUILTIN_TARGET
from ctrain.storage import S3Client, parse_s3_uri
from ctrain.trainer.errors import TrainerError

__all__ = ["BUILTIN_DATASETS", "Dataset", "builtin_frame", "fingerprint", "load_dataset"]

log = logging.getLogger(__name__)

BUILTIN_DATASETS = ("iris", "wine", "breast_cancer", "diabetes")
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_DENIED_CODES = frozenset({"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId"})


@dataclass(frozen=True)
class Dataset:
    """A loaded table and where it came from."""

    frame: pd.DataFrame
    uri: str
    fingerprint: str  # "sha256:<hex>"

    @property
    def rows(self) -> int:
        return len(self.frame)


def fingerprint(data: bytes) -> str:
    """``sha256:<hex>`` of raw bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_dataset(spec: DatasetSpec, s3: S3Client | None) -> Dataset:
    """Load the dataset a TrainingJob names; raise TrainerError with a contract reason."""
    if spec.is_builtin:
        name = spec.uri.removeprefix("builtin://")
        frame = builtin_frame(name)
        canonical = frame.to_csv(index=False, lineterminator="\n").encode()
        return Dataset(frame, spec.uri, fingerprint(canonical))
    if s3 is None:
        raise TrainerError(Reason.STORAGE_ERROR, f"no S3 client to read {spec.uri}")
    data = _read_object(s3, spec.uri)
    file_format = spec.resolved_format
    if file_format is None:
        raise TrainerError(Reason.INVALID_SPEC, f"cannot tell the format of {spec.uri}")
    frame = _parse(data, file_format, spec.uri)
    return Dataset(frame, spec.uri, fingerprint(data))


def builtin_frame(name: str) -> pd.DataFrame:
    """One of scikit-learn's toy sets as a DataFrame with a ``target`` column."""
    from sklearn import datasets  # deferred: only builtin:// runs need the loaders

    loaders = {
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
    }
    if name not in loaders:
        raise TrainerError(
            Reason.DATASET_NOT_FOUND,
            f"builtin://{name} does not exist; one of: {', '.join(BUILTIN_DATASETS)}",
        )
    bunch = loaders[name](as_frame=True)
    features = bunch.data.rename(columns=_snake_case)
    if "target_names" in bunch:  # a classification set: integer codes -> label names
        labels = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
        target = pd.Series(labels, name=BUILTIN_TARGET, index=features.index)
    else:
        target = bunch.target.rename(BUILTIN_TARGET)
    return pd.concat([features, target], axis=1)


def _snake_case(name: str) -> str:
    without_units = re.sub(r"\s*\([^)]*\)", "", name)
    return re.sub(r"[^0-9a-zA-Z]+", "_", without_units).strip("_").lower()


def _read_object(s3: S3Client, uri: str) -> bytes:
    try:
        bucket, key = parse_s3_uri(uri)
    except ValueError as exc:
        raise TrainerError(Reason.INVALID_SPEC, str(exc)) from exc
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
        data: bytes = response["Body"].read()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _NOT_FOUND_CODES:
            raise TrainerError(
                Reason.DATASET_NOT_FOUND, f"dataset {uri} not found ({code})"
            ) from exc
        if code in _DENIED_CODES:
            raise TrainerError(
                Reason.DATASET_UNREADABLE, f"dataset {uri}: access denied ({code})"
            ) from exc
        raise TrainerError(
            Reason.STORAGE_ERROR, f"reading dataset {uri} failed ({code}: {error.get('Message')})"
        ) from exc
    except BotoCoreError as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"reading dataset {uri} failed: {exc}") from exc
    log.info("read dataset uri=%s bytes=%d", uri, len(data))
    return data


def _parse(data: bytes, file_format: Literal["csv", "parquet"], uri: str) -> pd.DataFrame:
    if not data.strip():
        raise TrainerError(Reason.DATASET_UNREADABLE, f"dataset {uri} is empty")
    try:
        if file_format == "csv":
            frame = pd.read_csv(io.BytesIO(data))
        else:
            frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # classified: whatever the parser rejects is unreadable data
        raise TrainerError(
            Reason.DATASET_UNREADABLE,
            f"dataset {uri} is not readable as {file_format}: {type(exc).__name__}: {exc}",
        ) from exc
    if frame.columns.empty:
        raise TrainerError(Reason.DATASET_UNREADABLE, f"dataset {uri} has no columns")
    frame.columns = [str(column) for column in frame.columns]
    return frame
