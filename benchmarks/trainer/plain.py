"""The baseline the trainer is measured against: a plain scikit-learn fit + skops save.

What a data scientist would write for the same job, run as its own process like `ctrain
train`: read the same object from the same S3 over HTTP, parse it, fit the same pipeline
(median-impute + standardize the numbers, one-hot the categories, the same estimator) on
as many rows as the trainer fits on, save it with skops and upload it. No validation, no
holdout scoring, no comparison, no reference statistics: everything the trainer does on
top is its overhead.

Prints one JSON line: the seconds of each phase, measured with this process's clock.
"""

import argparse
import io
import json
import time

import boto3
import pandas as pd
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", required=True, help="s3://bucket/key of the table")
    parser.add_argument("--target", required=True)
    parser.add_argument("--categorical", default="", help="comma-separated categorical columns")
    parser.add_argument("--test-size", type=float, default=0.1)
    parser.add_argument("--out", required=True, help="s3://bucket/key to upload the model to")
    args = parser.parse_args()
    phases: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = now - clock
        clock = now

    s3 = boto3.client("s3")  # endpoint and credentials from the environment, like ctrain
    bucket, key = args.uri.removeprefix("s3://").split("/", 1)
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    lap("read")
    reader = pd.read_parquet if key.endswith(".parquet") else pd.read_csv
    frame = reader(io.BytesIO(data))
    lap("parse")
    categorical = [name for name in args.categorical.split(",") if name]
    numeric = [name for name in frame.columns if name not in (*categorical, args.target)]
    train, _ = train_test_split(frame, test_size=args.test_size, random_state=0)
    lap("split")
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        (
                            "numeric",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer(strategy="median")),
                                    ("scale", StandardScaler()),
                                ]
                            ),
                            numeric,
                        ),
                        (
                            "categorical",
                            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                            categorical,
                        ),
                    ],
                    sparse_threshold=0.0,
                ),
            ),
            ("estimator", LogisticRegression(random_state=0)),
        ]
    )
    pipeline.fit(train[numeric + categorical], train[args.target])
    lap("fit")
    blob = skops.io.dumps(pipeline)
    lap("save")
    out_bucket, out_key = args.out.removeprefix("s3://").split("/", 1)
    s3.put_object(Bucket=out_bucket, Key=out_key, Body=blob)
    lap("upload")
    print(json.dumps({"phases": phases, "train_rows": len(train), "bytes": len(blob)}))


if __name__ == "__main__":
    main()
