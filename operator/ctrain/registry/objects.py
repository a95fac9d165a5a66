"""A thin object-store view of one bucket, translating botocore errors into registry errors.

The registry's logic (claims, publish order, aliases) reads better without botocore's
error dictionaries in every method; this module is the only place that inspects them.
Transient failures were already retried by botocore's standard retry mode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ctrain.registry.errors import StorageUnavailable
from ctrain.storage import S3Client

__all__ = ["ConditionFailed", "ObjectStore"]

log = logging.getLogger(__name__)

_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_CONFLICT_STATUSES = frozenset({409, 412})
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class ConditionFailed(Exception):
    """A conditional PUT lost: the object exists (If-None-Match) or changed (If-Match)."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _unavailable(exc: Exception, action: str) -> StorageUnavailable:
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        detail = f"{_code(exc) or _status(exc)}: {message}".strip()
    else:
        detail = str(exc)
    return StorageUnavailable(f"S3 {action} failed ({detail})")


class ObjectStore:
    """get/put/list/delete on one bucket with classified errors; every put carries
    `encryption` (put_object's server-side-encryption arguments, `storage.encryption`)."""

    def __init__(
        self, s3_client: S3Client, bucket: str, encryption: Mapping[str, str] | None = None
    ) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.encryption = dict(encryption or {})

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None if it does not exist."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read(), str(response["ETag"])
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None
            raise _unavailable(exc, f"get {self._where(key)}") from exc
        except BotoCoreError as exc:
            raise _unavailable(exc, f"get {self._where(key)}") from exc

    def get_bytes(self, key: str) -> bytes | None:
        found = self.get(key)
        return None if found is None else found[0]

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES or _status(exc) == 404:
                return False
            raise _unavailable(exc, f"head {self._where(key)}") from exc
        except BotoCoreError as exc:
            raise _unavailable(exc, f"head {self._where(key)}") from exc

    def put(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_none_match: bool = False,
        if_match: str | None = None,
        encryption: Mapping[str, str] | None = None,
    ) -> None:
        """Write an object; with a condition, raise ConditionFailed when it does not hold.

        `encryption`: put_object's server-side-encryption arguments
        (`ctrain.storage.encryption_args`)."""
        extra: dict[str, Any] = {}
        conditional = if_none_match or if_match is not None
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if if_match is not None:
            extra["IfMatch"] = if_match
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                **(self.encryption if encryption is None else encryption),
                **extra,
            )
        except ClientError as exc:
            if conditional and (
                _code(exc) in _CONFLICT_CODES or _status(exc) in _CONFLICT_STATUSES
            ):
                raise ConditionFailed(key) from exc
            raise _unavailable(exc, f"put {self._where(key)}") from exc
        except BotoCoreError as exc:
            raise _unavailable(exc, f"put {self._where(key)}") from exc

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (all pages)."""
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc, f"list {self._where(prefix)}") from exc

    def delete_quietly(self, keys: list[str]) -> list[str]:
        """Delete best-effort (used while already failing); return the keys left behind."""
        left = []
        for key in keys:
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=key)
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not delete %s: %s", self._where(key), exc)
                left.append(key)
        return left
