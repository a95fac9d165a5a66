"""What a trigger compares to tell new training data: the dataset plus its labels.

With `dataset.feedback.enabled` a run trains on the base data set and on the model's
labelled production rows, so new labels are new data ("never train the same data
twice" must see them). Production rows become labelled only when a label object is
uploaded or replaced, so the labels' identity is a digest of the label objects' keys and
ETags: one LIST request, no object read. Predictions logged without labels do not
change it (they add no labelled row), nor does the window moving on.
"""

from __future__ import annotations

import hashlib

from ctrain.feedback.layout import LABEL_SUFFIXES, labels_root
from ctrain.feedback.objects import list_objects
from ctrain.registry.layout import Layout
from ctrain.storage import S3Client

__all__ = ["data_identity", "labels_identity"]


def labels_identity(s3: S3Client, layout: Layout, model: str) -> str | None:
    """`labels:<sha256>` of the model's label objects (key and ETag), None when none."""
    objects = sorted(
        (info.key, info.etag)
        for info in list_objects(s3, layout.bucket, labels_root(layout, model))
        if info.key.lower().endswith(LABEL_SUFFIXES)
    )
    if not objects:
        return None
    digest = hashlib.sha256()
    for key, etag in objects:
        digest.update(f"{key}\n{etag}\n".encode())
    return f"labels:{digest.hexdigest()[:32]}"


def data_identity(dataset: str | None, labels: str | None) -> str | None:
    """One string for a run's data: the dataset's version (ETag) and the labels' identity,
    e.g. `"abc123"+labels:9f…`; equal strings mean no new data."""
    if labels is None:
        return dataset
    return f"{dataset or ''}+{labels}"
