"""Facts in S3 that objects follow, and how each is read again cheaply.

- `ModelFact`: what a model's `champion`, `latest` or explicit version resolves to in a
  registry. The champion alias and an explicit version's metadata.json are read with
  `If-None-Match` on the ETag of the last read, so an unchanged fact costs one request
  answered `304 Not Modified` with no body; only a change goes through the registry's
  resolution (`ctrain.registry.Registry.resolve`), the one definition of what a
  reference means. `latest` has no object of its own and is a listing.
- `DatasetFact`: the identity of a dataset object (a conditional HEAD) or of the objects
  under a prefix (a listing), as a fingerprint: its ETag, or a sha256 over the keys and
  ETags of a prefix.

`read` never raises for what the store answers (a missing key, a denied bucket): those
are readings with a `Failure`. It raises `Unreachable` when the endpoint did not answer
at all, so the poller can stop asking that endpoint for a while.
"""

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from ctrain.api import Reason
from ctrain.api.common import shown
from ctrain.controller.storage.clients import Endpoint, Location
from ctrain.registry import CHAMPION, LATEST, METADATA_FILE, Registry, RegistryError
from ctrain.registry import StorageUnavailable as RegistryUnavailable
from ctrain.storage import S3Client, parse_s3_uri

__all__ = [
    "DatasetFact",
    "Fact",
    "Failure",
    "ModelFact",
    "ObjectIdentity",
    "Reading",
    "Resolved",
    "Unreachable",
    "fingerprint",
    "read",
]

MESSAGE_LIMIT = 512
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_DENIED = {"403", "AccessDenied", "Forbidden"}
_UNREACHABLE = (BotoConnectionError, HTTPClientError)


@dataclasses.dataclass(frozen=True)
class ModelFact:
    location: Location
    model: str
    ref: str  # champion | latest | a version number

    @property
    def endpoint(self) -> Endpoint:
        return self.location.endpoint

    def __str__(self) -> str:
        return f"{self.ref} of model {self.model} in s3://{self.location.bucket}/"


@dataclasses.dataclass(frozen=True)
class DatasetFact:
    endpoint: Endpoint
    uri: str  # s3://bucket/key, or s3://bucket/prefix/

    def __str__(self) -> str:
        return f"dataset {self.uri}"


Fact = ModelFact | DatasetFact


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A visible model version and its holdout metrics."""

    version: str
    metrics: Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why a fact could not be read: a condition reason and a message for status.

    The message often quotes the store's own error text, which the store chooses: it is
    kept to one line of at most `MESSAGE_LIMIT` characters before it reaches status."""

    reason: str
    message: str

    def __post_init__(self) -> None:
        one_line = " ".join(self.message.split())
        object.__setattr__(self, "message", shown(one_line, MESSAGE_LIMIT))


@dataclasses.dataclass(frozen=True)
class Reading:
    """The latest reading of a fact: its value, or what went wrong, and the ETag it had."""

    value: Resolved | str | None = None  # a model's version, or a dataset's fingerprint
    failure: Failure | None = None
    etag: str | None = dataclasses.field(default=None, compare=False)


class Unreachable(Exception):
    """The endpoint did not answer (refused, timed out): no reading was possible."""


@dataclasses.dataclass(frozen=True)
class ObjectIdentity:
    """What S3 says about one object, enough to tell whether its content changed."""

    key: str
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None
    last_modified: str | None = None

    @classmethod
    def from_head(cls, key: str, head: Mapping[str, Any]) -> "ObjectIdentity":
        """From an S3 HeadObject response."""
        return cls(
            key,
            head.get("ETag"),
            head.get("VersionId"),
            head.get("ContentLength"),
            str(head.get("LastModified") or "") or None,
        )

    @classmethod
    def from_listing(cls, item: Mapping[str, Any]) -> "ObjectIdentity":
        """From one entry of an S3 ListObjectsV2 response."""
        last_modified = str(item.get("LastModified") or "") or None
        return cls(item["Key"], item.get("ETag"), None, item.get("Size"), last_modified)

    def token(self) -> str:
        """The content identity: the ETag when there is one (a re-upload of the same bytes
        keeps it), else the version id, else size and modification time."""
        if self.etag:
            return "etag:" + self.etag.strip('"')
        if self.version_id and self.version_id != "null":
            return "version:" + self.version_id
        return f"size:{self.size}@{self.last_modified}"


def fingerprint(objects: Sequence[ObjectIdentity], *, prefix: bool = False) -> str | None:
    """One string for the dataset: the object's token, or a sha256 over a prefix's objects.

    The objects under a prefix are sorted by key, so listing order never matters; None when
    there is nothing to fingerprint.
    """
    if not objects:
        return None
    if not prefix and len(objects) == 1:
        return objects[0].token()
    lines = "\n".join(f"{o.key}\t{o.token()}" for o in sorted(objects, key=lambda o: o.key))
    return f"sha256:{hashlib.sha256(lines.encode()).hexdigest()}"


def read(s3: S3Client, fact: Fact, previous: Reading | None) -> Reading:
    """Read `fact` again; `previous` when S3 says nothing changed. Raises Unreachable."""
    try:
        if isinstance(fact, DatasetFact):
            return _dataset(s3, fact, previous)
        return _model(s3, fact, previous)
    except _UNREACHABLE as error:
        raise Unreachable(f"{fact.endpoint} did not answer: {error}") from error
    except RegistryUnavailable as error:
        if isinstance(error.__cause__, _UNREACHABLE):
            raise Unreachable(f"{fact.endpoint} did not answer: {error.__cause__}") from error
        return Reading(failure=Failure(Reason.STORAGE_ERROR, str(error)))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _not_modified(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 304 or _code(error) in ("304", "NotModified")


def _conditional_get(
    s3: S3Client, bucket: str, key: str, previous: Reading | None
) -> tuple[str | None, bool]:
    """(the object's ETag or None if it is missing, whether it changed since `previous`)."""
    extra = {"IfNoneMatch": previous.etag} if previous is not None and previous.etag else {}
    try:
        response = s3.get_object(Bucket=bucket, Key=key, **extra)
    except ClientError as error:
        if _not_modified(error):
            return previous.etag if previous else None, False
        if _code(error) in _NOT_FOUND:
            return None, True
        raise
    response["Body"].close()  # a few bytes; only its identity matters here
    return str(response["ETag"]), True


def _model(s3: S3Client, fact: ModelFact, previous: Reading | None) -> Reading:
    registry = Registry(s3, fact.location.bucket, fact.location.prefix)
    try:
        if fact.ref == LATEST:
            version = registry.resolve(fact.model, LATEST)
            known = previous.value if previous is not None else None
            if previous is not None and isinstance(known, Resolved) and known.version == version:
                return previous
            return Reading(_resolved(registry, fact.model, version))
        if fact.ref == CHAMPION:
            key = registry.layout.champion_key(fact.model)
        else:
            key = registry.layout.key(fact.model, fact.ref, METADATA_FILE)
        try:
            etag, changed = _conditional_get(s3, fact.location.bucket, key, previous)
        except ClientError as error:
            return Reading(failure=Failure(Reason.STORAGE_ERROR, f"reading {key}: {error}"))
        if previous is not None and (not changed or (etag is None and _missing(previous))):
            return previous  # unchanged, or still missing
        version = registry.resolve(fact.model, fact.ref)
        return Reading(_resolved(registry, fact.model, version), etag=etag)
    except RegistryUnavailable:
        raise
    except RegistryError as error:
        return Reading(failure=Failure(Reason.VERSION_NOT_FOUND, str(error)))


def _missing(reading: Reading) -> bool:
    """The last reading found no object at all (no alias yet, no such version)."""
    failure = reading.failure
    return (
        reading.etag is None and failure is not None and failure.reason == Reason.VERSION_NOT_FOUND
    )


def _resolved(registry: Registry, model: str, version: str) -> Resolved:
    metrics = registry.metadata(model, version).metrics
    return Resolved(version, {name: float(value) for name, value in metrics.items()})


def _dataset(s3: S3Client, fact: DatasetFact, previous: Reading | None) -> Reading:
    uri = fact.uri
    try:
        bucket, key = parse_s3_uri(uri)
        if not key.endswith("/"):
            extra = {"IfNoneMatch": previous.etag} if previous is not None and previous.etag else {}
            head = s3.head_object(Bucket=bucket, Key=key, **extra)
            found = fingerprint([ObjectIdentity.from_head(key, head)])
            return Reading(found, etag=head.get("ETag"))
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        listed = [o for page in pages for o in page.get("Contents") or []]
        found = fingerprint([ObjectIdentity.from_listing(o) for o in listed], prefix=True)
        if found is None:
            return Reading(failure=Failure(Reason.DATASET_NOT_FOUND, f"no objects under {uri}"))
        return Reading(found)
    except ClientError as error:
        if previous is not None and _not_modified(error):
            return previous
        code = _code(error)
        reason = Reason.STORAGE_ERROR
        if code in _NOT_FOUND:
            reason = Reason.DATASET_NOT_FOUND
        elif code in _DENIED:
            reason = Reason.DATASET_UNREADABLE
        return Reading(failure=Failure(reason, f"checking dataset {uri}: {code or error}"))
    except _UNREACHABLE:
        raise
    except (BotoCoreError, ValueError) as error:
        return Reading(failure=Failure(Reason.STORAGE_ERROR, f"checking dataset {uri}: {error}"))
