"""The S3 client every ctrain role uses, built from the environment.

It exists so that one place decides how ctrain talks to S3-compatible storage (AWS S3,
MinIO, Ceph, moto): boto3 reads the endpoint (``AWS_ENDPOINT_URL``), region and
credentials itself, and this module adds what boto3 does not infer: path-style
addressing by default (``CTRAIN_S3_ADDRESSING_STYLE=path|virtual``) and botocore's
"standard" retry mode, which retries throttling, 5xx and connection errors with
exponential backoff and jitter.

Code that needs S3 takes a client (or a ``ClientFactory``) as a parameter, so tests pass
in a client pointing at a local S3 server instead of patching boto3.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config

__all__ = [
    "ADDRESSING_STYLE_ENV",
    "SSE_ENV",
    "SSE_KMS_KEY_ENV",
    "SSE_TYPES",
    "ClientFactory",
    "S3Client",
    "encryption_args",
    "make_s3_client",
    "parse_s3_uri",
]

ADDRESSING_STYLE_ENV = "CTRAIN_S3_ADDRESSING_STYLE"
_ADDRESSING_STYLES = ("path", "virtual")
_DEFAULT_MAX_ATTEMPTS = 5

# Server-side encryption of every object ctrain writes (`storage.encryption`); pods learn
# it from these variables, set by the operator from the object's storage or its default.
SSE_TYPES = ("None", "AES256", "aws:kms")
SSE_ENV = "CTRAIN_S3_SSE"
SSE_KMS_KEY_ENV = "CTRAIN_S3_SSE_KMS_KEY_ID"

# boto3 has no static types; the alias documents intent at call sites.
S3Client = Any
ClientFactory = Callable[[], S3Client]


def make_s3_client(
    environ: Mapping[str, str] | None = None,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    addressing_style: str | None = None,
    max_attempts: int = _DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
) -> S3Client:
    """Build an S3 client from the environment.

    ``environ`` defaults to ``os.environ``; only the ctrain-specific settings are read
    from it here, everything else (endpoint, region, credentials) boto3 resolves itself
    from the process environment, config files or instance metadata. The keyword
    arguments override the environment (a TrainingJob's ``storage.endpoint`` etc.).
    Credentials are never passed through here: they stay in boto3's own chain.
    """
    env = os.environ if environ is None else environ
    style = (addressing_style or env.get(ADDRESSING_STYLE_ENV, "")).strip().lower() or "path"
    if style not in _ADDRESSING_STYLES:
        raise ValueError(
            f"{ADDRESSING_STYLE_ENV} must be one of {', '.join(_ADDRESSING_STYLES)}, got {style!r}"
        )
    config = Config(
        s3={"addressing_style": style},
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # Threads of one trainer (and tests) share a client; boto3 clients are thread-safe.
        max_pool_connections=32,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; raise ValueError otherwise."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ValueError(f"an s3 URI needs a bucket and a key: {uri!r}")
    return bucket, key


def encryption_args(sse: str | None, kms_key_id: str | None) -> dict[str, str]:
    """put_object's server-side-encryption arguments (`storage.encryption`, `--sse`)."""
    if sse in (None, "None"):
        if kms_key_id:
            raise ValueError("a KMS key id needs --sse aws:kms")
        return {}
    if sse == "AES256":
        if kms_key_id:
            raise ValueError("a KMS key id needs --sse aws:kms")
        return {"ServerSideEncryption": "AES256"}
    if sse == "aws:kms":
        args = {"ServerSideEncryption": "aws:kms"}
        if kms_key_id:
            args["SSEKMSKeyId"] = kms_key_id
        return args
    raise ValueError(f"server-side encryption must be one of {', '.join(SSE_TYPES)}: {sse!r}")
