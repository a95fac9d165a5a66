"""The operator's door to S3: one client per endpoint, short timeouts, few attempts.

Every S3 request the operator itself makes (champion aliases, version checks, dataset
fingerprints) takes its client from `S3Clients.access`, and nowhere else: that is the
one place to refuse an endpoint or a bucket before any request is sent. Clients are kept
per (endpoint, region, addressing style), since a boto3 client is costly to build and
thread-safe to share. The operator's requests are small and answered in milliseconds by
a healthy store, so a request that takes seconds means the store is unwell: connect and
read timeouts of a few seconds and two attempts keep one broken endpoint from holding a
worker for long.

`access` is also the operator's S3 allowlist (a confused deputy: a namespace user could
otherwise make the operator read any endpoint and bucket with the operator's own
credentials): outside the default storage and `OperatorConfig.s3_allowed`, or on a
plain-HTTP endpoint not allowed, it raises `Forbidden` before any request is sent.
"""

import dataclasses
import threading

from ctrain.api import StorageSpec
from ctrain.api.common import shown
from ctrain.controller.config import OperatorConfig
from ctrain.controller.podspec import storage_settings
from ctrain.storage import S3Client, make_s3_client

__all__ = ["Endpoint", "Forbidden", "Location", "S3Clients", "location"]

CONNECT_SECONDS = 2.0
READ_SECONDS = 3.0
ATTEMPTS = 2  # the first try and one retry (botocore's standard mode, with its backoff)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """What an S3 client is built for."""

    url: str | None  # None: AWS S3 itself
    region: str
    addressing_style: str

    def __str__(self) -> str:
        return self.url or f"AWS S3 ({self.region})"


@dataclasses.dataclass(frozen=True)
class Location:
    """A registry: a bucket and prefix on an endpoint."""

    endpoint: Endpoint
    bucket: str
    prefix: str


def location(storage: StorageSpec | None, config: OperatorConfig) -> Location:
    """Where an object's models live: its `storage` over the operator's defaults, exactly as
    its pods are told (`podspec.storage_settings`)."""
    settings = storage_settings(storage, config)
    endpoint = Endpoint(settings["endpoint"], settings["region"], settings["addressingStyle"])
    return Location(endpoint, settings["bucket"], settings["prefix"])


class Forbidden(Exception):
    """The operator may not send requests there; no request was made."""


class S3Clients:
    """One boto3 client per endpoint, built on first use and kept for the process."""

    def __init__(
        self,
        config: OperatorConfig,
        *,
        connect_timeout: float = CONNECT_SECONDS,
        read_timeout: float = READ_SECONDS,
        attempts: int = ATTEMPTS,
    ) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._clients: dict[Endpoint, S3Client] = {}
        self._timeouts = (connect_timeout, read_timeout)
        self._attempts = attempts

    def access(self, endpoint: Endpoint, bucket: str) -> S3Client:
        """The client for requests to `bucket` on `endpoint`; raises `Forbidden`."""
        refused = self._config.endpoint_refused(endpoint.url)
        if refused:
            raise Forbidden(refused)
        if not self._config.storage_allowed(endpoint.url, bucket):
            raise Forbidden(
                f"the operator may not read bucket {shown(bucket)!r} on {shown(str(endpoint))}: "
                "only the default "
                "storage and the operator's allowlist (storage.allowed) are read"
            )
        with self._lock:
            found = self._clients.get(endpoint)
            if found is None:
                found = self._clients[endpoint] = make_s3_client(
                    endpoint_url=endpoint.url,
                    region_name=endpoint.region,
                    addressing_style=endpoint.addressing_style,
                    max_attempts=self._attempts,
                    connect_timeout=self._timeouts[0],
                    read_timeout=self._timeouts[1],
                )
            return found
