"""Listing and reading the objects a join needs, with S3 errors classified.

The registry's object store (`ctrain.registry.objects`) gets and puts single documents;
a join also needs each object's LastModified (the newest label wins) and size (an
object too large to hold is skipped, not read). Errors reaching S3 become the registry's
`StorageUnavailable`, so callers handle one exception for "storage failed".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from ctrain.registry import StorageUnavailable
from ctrain.storage import S3Client

__all__ = ["ObjectInfo", "list_objects", "read_object"]

log = logging.getLogger(__name__)

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True, order=True)
class ObjectInfo:
    """One listed object; ordering is (LastModified, key): the order in which labels win."""

    last_modified: datetime
    key: str
    size: int
    etag: str


def _failure(exc: Exception, action: str) -> StorageUnavailable:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        detail = f"{error.get('Code')}: {error.get('Message')}"
        return StorageUnavailable(f"S3 {action} failed ({detail})")
    return StorageUnavailable(f"S3 {action} failed ({exc})")


def list_objects(s3: S3Client, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
    """Every object under `prefix` (all pages)."""
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    last_modified=item["LastModified"],
                    key=str(item["Key"]),
                    size=int(item.get("Size", 0)),
                    etag=str(item.get("ETag", "")),
                )
    except (ClientError, BotoCoreError) as exc:
        raise _failure(exc, f"list s3://{bucket}/{prefix}") from exc


def read_object(s3: S3Client, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when it vanished since it was listed (lifecycle rules)."""
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_CODES:
            log.info("s3://%s/%s was deleted after it was listed", bucket, key)
            return None
        raise _failure(exc, f"get s3://{bucket}/{key}") from exc
    except BotoCoreError as exc:
        raise _failure(exc, f"get s3://{bucket}/{key}") from exc
