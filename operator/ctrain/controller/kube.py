"""The only module that talks to the apiserver: idempotent create, status patches, Events.

Every call treats 409 (already exists) and 404 (already gone) as the outcomes a
level-triggered reconciler expects after a restart, never as errors.
"""

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ctrain.api import GROUP, VERSION
from ctrain.controller import metrics
from ctrain.controller.conditions import now

__all__ = ["COMPONENT", "Kube"]

log = logging.getLogger("ctrain.operator")
COMPONENT = "ctrain-operator"


@dataclasses.dataclass
class Kube:
    """API clients for the operator's reconcilers (injected, so tests can point them anywhere)."""

    api_client: client.ApiClient
    locks: dict[str, threading.Lock] = dataclasses.field(default_factory=dict)
    _guard: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    def lock(self, uid: str) -> threading.Lock:
        """One reconcile at a time per object, whichever event triggered it."""
        with self._guard:
            return self.locks.setdefault(uid, threading.Lock())

    @contextlib.contextmanager
    def locked(self, plural: str, namespace: str, name: str) -> Iterator[dict[str, Any] | None]:
        """The custom object re-read under its lock, so one reconcile at a time works on it,
        whichever event triggered it; None when it is gone or being deleted."""
        body = self.get_custom(plural, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            yield None
            return
        with self.lock(body["metadata"]["uid"]):
            yield self.get_custom(plural, namespace, name)

    def raw(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a client method and return plain JSON dicts (not generated model classes)."""
        response = call(*args, _preload_content=False, **kwargs)
        return self.api_client.deserialize(response, "object")

    def read_or_none(self, call: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.raw(call, *args)
            return result
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create(self, call: Callable[..., Any], namespace: str, body: dict[str, Any]) -> bool:
        """Create; False if it already existed (a restart mid-reconcile)."""
        try:
            call(namespace, body)
        except ApiException as error:
            if error.status == 409:
                return False
            if error.status == 403 and "being terminated" in str(error.body):
                return False  # the namespace is going away, and its objects with it
            raise
        return True

    def delete(self, call: Callable[..., Any], name: str, namespace: str) -> bool:
        """Delete (background propagation); False if it was already gone."""
        try:
            call(name, namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    # --- custom resources ---------------------------------------------------------------

    def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.read_or_none(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )

    def list_custom(
        self, plural: str, namespace: str | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        if namespace:
            result = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, **kwargs
            )
        else:
            result = self.custom.list_cluster_custom_object(GROUP, VERSION, plural, **kwargs)
        return list(result["items"])

    def patch_status(self, plural: str, body: dict[str, Any], status: dict[str, Any]) -> bool:
        """Write status if it changed; False if the object is gone.

        A JSON merge patch keeps keys it does not mention, so keys dropped from the status
        are sent as null to remove them.
        """
        old = body.get("status") or {}
        metrics.PHASES.record(body["kind"], body["metadata"]["uid"], status.get("phase"))
        if status == old:
            return True
        patch = {**{key: None for key in old if key not in status}, **_json(status)}
        metadata = body["metadata"]
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, metadata["namespace"], plural, metadata["name"], {"status": patch}
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def event(self, body: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        """A core/v1 Event on `body`, for `kubectl describe` and `kubectl get events`."""
        metadata = body["metadata"]
        stamp = now()
        event = {
            "metadata": {
                "generateName": f"{metadata['name']}.",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(metadata["namespace"], event)
        except ApiException as error:
            log.warning("could not post event %s on %s: %s", reason, metadata["name"], error.reason)


def _json(value: Any) -> Any:
    """Plain JSON types (StrEnum values become str) for the request body."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value
