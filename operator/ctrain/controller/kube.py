"""The one way the operator talks to the apiserver: JSON in, JSON out, errors classified.

Every call of every reconciler goes through `Kube`: it builds the path from a `Resource`,
sends plain JSON (no generated model classes, which cost more than the request), bounds
each request by the pass's deadline (`ctrain.controller.deadline`), and turns what the
apiserver answers into the outcomes a level-triggered reconciler expects:

- 404 on a read, a patch or a delete: the object is gone (None / False), not an error;
- 409 on a create: it already exists (a pass repeated after a crash), not an error;
- 400 and 422: the apiserver refused what the object's spec led us to send: `Invalid`,
  which the runtime reports in the object's status instead of retrying;
- anything else (5xx, 429, 403, timeouts, refused connections): `ApiError`, retried with
  the object's backoff.

It keeps no metrics and no state; the runtime counts what happened.
"""

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ctrain.api import GROUP, VERSION
from ctrain.api.common import format_time
from ctrain.controller.deadline import timeout

__all__ = [
    "COMPONENT",
    "CONTINUOUSTRAININGS",
    "DEPLOYMENTS",
    "EVENTS",
    "JOBS",
    "MODELDEPLOYMENTS",
    "PODS",
    "REPLICASETS",
    "SERVICES",
    "TRAININGJOBS",
    "ApiError",
    "Invalid",
    "Kube",
    "Resource",
]

log = logging.getLogger("ctrain.operator")
COMPONENT = "ctrain-operator"
REQUEST_SECONDS = 10.0  # one request; a pass's deadline cuts it shorter
CONNECT_SECONDS = 3.0


@dataclasses.dataclass(frozen=True)
class Resource:
    """A namespaced resource type: where its objects live in the API."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None, subresource: str = "") -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{root}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        return f"{path}/{subresource}" if subresource else path


TRAININGJOBS = Resource(GROUP, VERSION, "trainingjobs", "TrainingJob")
MODELDEPLOYMENTS = Resource(GROUP, VERSION, "modeldeployments", "ModelDeployment")
CONTINUOUSTRAININGS = Resource(GROUP, VERSION, "continuoustrainings", "ContinuousTraining")
JOBS = Resource("batch", "v1", "jobs", "Job")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
PODS = Resource("", "v1", "pods", "Pod")
SERVICES = Resource("", "v1", "services", "Service")
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
EVENTS = Resource("", "v1", "events", "Event")


class ApiError(Exception):
    """The apiserver failed or could not be reached; the pass is retried with backoff."""


class Invalid(Exception):
    """The apiserver refused a request (400, 422) built from the object's spec."""

    def __init__(self, what: str, status: int, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.status = status
        self.message = message


def _message(error: ApiException) -> str:
    """The apiserver's own message (a Status object), else the HTTP reason."""
    try:
        status = orjson.loads(error.body or b"{}")
    except orjson.JSONDecodeError:
        status = {}
    return str(status.get("message") or error.reason or error.status)[:1000]


class Kube:
    """Requests to the apiserver over the client's connection pool and credentials."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        what: str,
    ) -> dict[str, Any]:
        seconds = timeout(REQUEST_SECONDS, what)
        try:
            response = self.api_client.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=(min(CONNECT_SECONDS, seconds), seconds),
            )
        except ApiException:
            raise
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ApiError(f"{what}: {error}") from error
        data: dict[str, Any] = orjson.loads(response.data)
        return data

    def _failed(self, error: ApiException, what: str) -> Exception:
        if error.status in (400, 422):
            return Invalid(what, error.status, _message(error))
        return ApiError(f"{what}: {error.status} {_message(error)}")

    # --- reading ----------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        what = f"get {resource.kind} {namespace}/{name}"
        try:
            return self._call("GET", resource.path(namespace, name), what=what)
        except ApiException as error:
            if error.status == 404:
                return None
            raise self._failed(error, what) from error

    def list(
        self, resource: Resource, namespace: str, *, labels: str | None = None
    ) -> list[dict[str, Any]]:
        what = f"list {resource.plural} in {namespace}"
        query = [("labelSelector", labels)] if labels else []
        try:
            found = self._call("GET", resource.path(namespace), query=query, what=what)
        except ApiException as error:
            raise self._failed(error, what) from error
        items: list[dict[str, Any]] = found.get("items") or []
        for item in items:  # a list's items carry neither kind nor apiVersion
            item.setdefault("kind", resource.kind)
            item.setdefault("apiVersion", resource.api_version)
        return items

    # --- writing ----------------------------------------------------------------------------

    def create(self, resource: Resource, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create; the created object, or None when one of that name already exists."""
        namespace, name = body["metadata"]["namespace"], body["metadata"].get("name")
        what = f"create {resource.kind} {namespace}/{name}"
        try:
            return self._call("POST", resource.path(namespace), body=body, what=what)
        except ApiException as error:
            if error.status == 409:
                return None
            if error.status == 403 and "being terminated" in str(error.body):
                return None  # the namespace is going away, and its objects with it
            raise self._failed(error, what) from error

    def patch(
        self, resource: Resource, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A JSON merge patch (maps merge, lists are replaced); None if the object is gone."""
        return self._patch(resource, namespace, name, patch, "")

    def patch_status(
        self, resource: Resource, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge `status` into the status subresource; None if the object is gone."""
        return self._patch(resource, namespace, name, {"status": status}, "status")

    def _patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        subresource: str,
    ) -> dict[str, Any] | None:
        what = f"patch {resource.kind} {namespace}/{name}{'/' + subresource if subresource else ''}"
        try:
            return self._call(
                "PATCH",
                resource.path(namespace, name, subresource),
                body=patch,
                content_type="application/merge-patch+json",
                what=what,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise self._failed(error, what) from error

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete (children follow by garbage collection); False if it was already gone."""
        what = f"delete {resource.kind} {namespace}/{name}"
        options = {"propagationPolicy": "Background"}
        try:
            self._call("DELETE", resource.path(namespace, name), body=options, what=what)
        except ApiException as error:
            if error.status == 404:
                return False
            raise self._failed(error, what) from error
        return True

    def event(self, body: dict[str, Any], reason: str, message: str, warning: bool = False) -> None:
        """A core/v1 Event on `body`, for `kubectl describe` and `kubectl get events`.

        Events are a courtesy: one that cannot be posted is logged, never retried.
        """
        metadata = body["metadata"]
        stamp = format_time(datetime.now(UTC))
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
            self.create(EVENTS, event)
        except (ApiError, Invalid) as error:
            log.warning("could not post event %s on %s: %s", reason, metadata["name"], error)
