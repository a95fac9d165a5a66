"""A loaded model, with everything a request needs computed once.

`ServedModel.from_loaded` inspects the estimator and metadata.json a single time: task,
class labels and their datatype, output metadata, the v2 metadata response body, the
input layout and the response templates. Requests then only run `predict` on a batch
(`predict_batch`) and encode their slice of the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ctrain.serving.codec import PREDICT, PREDICT_PROBA, InputSpec, ResponseEncoder
from ctrain.serving.errors import ModelLoadError
from ctrain.serving.source import LoadedModel

__all__ = ["PLATFORM", "ServedModel"]

PLATFORM = "sklearn"


@dataclass(frozen=True)
class ServedModel:
    """An estimator ready to predict, and its precomputed protocol surface."""

    name: str
    version: str
    estimator: Any
    features: tuple[str, ...]
    feature_types: Mapping[str, str]
    classes: np.ndarray | None  # None for regressors
    spec: InputSpec
    encoder: ResponseEncoder
    metadata_body: bytes  # GET /v2/models/<name>
    predict_dtype: np.dtype[Any] | None  # None: string labels, left as they are
    loaded: LoadedModel
    # A Pipeline split into its transformers and final estimator, so a batch that wants
    # predict and predict_proba transforms its rows once, not once per output.
    transforms: tuple[Any, ...]
    final: Any

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @classmethod
    def from_loaded(cls, name: str, loaded: LoadedModel, default_version: str = "1") -> ServedModel:
        """Check the estimator against its metadata and precompute the protocol surface."""
        estimator, metadata = loaded.estimator, loaded.metadata
        if not callable(getattr(estimator, "predict", None)):
            raise ModelLoadError("InvalidModel", f"{type(estimator).__name__} cannot predict")
        version = str(metadata.get("version") or default_version)
        n_features = _n_features(estimator, metadata)
        features = tuple(metadata.get("features") or (f"f{i}" for i in range(n_features)))
        if len(features) != n_features:
            raise ModelLoadError(
                "InvalidModel",
                f"metadata.json lists {len(features)} features, the model expects {n_features}",
            )
        feature_types = {
            f: str(metadata.get("featureTypes", {}).get(f, "numeric")) for f in features
        }
        categorical = tuple(i for i, f in enumerate(features) if feature_types[f] == "categorical")

        classes = getattr(estimator, "classes_", None)
        has_proba = classes is not None and callable(getattr(estimator, "predict_proba", None))
        if classes is not None:
            classes = np.asarray(classes)
            predict_datatype, predict_dtype = _label_datatype(classes)
            predict_width = None
        else:
            predict_datatype, predict_dtype = "FP64", np.dtype(np.float64)
            n_targets = getattr(estimator, "n_outputs_", 1)
            predict_width = n_targets if isinstance(n_targets, int) and n_targets > 1 else None
        outputs = (PREDICT, PREDICT_PROBA) if has_proba else (PREDICT,)
        input_datatype = "BYTES" if categorical else "FP64"
        proba_width = len(classes) if has_proba and classes is not None else None
        output_meta = [
            {
                "name": PREDICT,
                "datatype": predict_datatype,
                "shape": [-1] if predict_width is None else [-1, predict_width],
            }
        ]
        if proba_width is not None:
            output_meta.append(
                {"name": PREDICT_PROBA, "datatype": "FP64", "shape": [-1, proba_width]}
            )
        parameters: dict[str, Any] = {
            "task": "classification" if classes is not None else "regression",
            "features": list(features),
            "featureTypes": feature_types,
        }
        if classes is not None:
            parameters["classes"] = classes.tolist()
        metadata_body = orjson.dumps(
            {
                "name": name,
                "versions": [version],
                "platform": PLATFORM,
                "inputs": [
                    {"name": "input-0", "datatype": input_datatype, "shape": [-1, n_features]}
                ],
                "outputs": output_meta,
                "parameters": parameters,
            }
        )
        transforms, final = _split_pipeline(estimator)
        return cls(
            name=name,
            version=version,
            estimator=estimator,
            features=features,
            feature_types=feature_types,
            classes=classes,
            spec=InputSpec(n_features, categorical, outputs),
            encoder=ResponseEncoder(
                name,
                version,
                predict_datatype=predict_datatype,
                predict_width=predict_width,
                proba_width=proba_width,
                string_labels=predict_datatype == "BYTES",
            ),
            metadata_body=metadata_body,
            predict_dtype=predict_dtype,
            loaded=loaded,
            transforms=transforms,
            final=final,
        )

    def predict_batch(self, rows: np.ndarray, outputs: Iterable[str]) -> dict[str, np.ndarray]:
        """Run the estimator once on `rows` for each requested output."""
        wanted = set(outputs)
        result: dict[str, np.ndarray] = {}
        # Exactly what Pipeline.predict/predict_proba do, with the transforms shared.
        for transform in self.transforms:
            rows = transform.transform(rows)
        if PREDICT in wanted:
            predicted = np.asarray(self.final.predict(rows))
            if self.predict_dtype is not None and predicted.dtype != self.predict_dtype:
                predicted = predicted.astype(self.predict_dtype)
            result[PREDICT] = predicted
        if PREDICT_PROBA in wanted:
            result[PREDICT_PROBA] = np.asarray(self.final.predict_proba(rows), dtype=np.float64)
        return result


def _split_pipeline(estimator: Any) -> tuple[tuple[Any, ...], Any]:
    """(transformers, final estimator) of a (nested) Pipeline; ((), estimator) otherwise."""
    from sklearn.pipeline import Pipeline

    if type(estimator) is not Pipeline:
        return (), estimator
    steps = [step for _, step in estimator.steps]
    transforms = tuple(s for s in steps[:-1] if s is not None and s != "passthrough")
    inner, final = _split_pipeline(steps[-1])
    return transforms + inner, final


def _n_features(estimator: Any, metadata: Mapping[str, Any]) -> int:
    n = getattr(estimator, "n_features_in_", None)
    if isinstance(n, int | np.integer):
        return int(n)
    features = metadata.get("features")
    if isinstance(features, list) and features:
        return len(features)
    raise ModelLoadError(
        "InvalidModel", "the number of features is unknown: no n_features_in_, no features"
    )


def _label_datatype(classes: np.ndarray) -> tuple[str, np.dtype[Any] | None]:
    kind = classes.dtype.kind
    if kind in "iub":
        return "INT64", np.dtype(np.int64)
    if kind == "f":
        return "FP64", np.dtype(np.float64)
    if kind == "O" and all(isinstance(c, int | np.integer) for c in classes.tolist()):
        return "INT64", np.dtype(np.int64)
    return "BYTES", None
