"""A recording fake of the API wrapper, and a harness that runs the real runtime on it.

`FakeApi` stands in for `ctrain.controller.kube.Kube` (the one door to the apiserver): it
keeps objects in memory with the apiserver's outcomes a reconciler relies on (409 on a
second create, None for a missing object, merge patches, resourceVersions, uids), records
every call as a short tuple, and reports every change back like a watch would. The idea
is kopf's `k8s_mocked` fixture (nolar/kopf tests/conftest.py): assert the exact sequence
of API calls a pass makes, with no control plane.

`Harness` builds the operator's real runtime (stores, storage watch, per-kind loops) on
a FakeApi and runs queued passes synchronously, so a test applies objects, drains the
queues and reads what was called.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ctrain.controller.config import OperatorConfig
from ctrain.controller.handlers import build_runtime
from ctrain.controller.kube import Invalid, Resource
from ctrain.controller.runtime.engine import Runtime

Body = dict[str, Any]
Call = tuple[str, ...]


def _merge(target: Body, patch: Body) -> Body:
    """RFC 7386 JSON merge patch: maps merge, null removes, anything else replaces."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _matches(body: Body, labels: str | None) -> bool:
    if not labels:
        return True
    have = body["metadata"].get("labels") or {}
    return all(have.get(k) == v for k, v in (part.split("=", 1) for part in labels.split(",")))


class FakeApi:
    """In-memory objects behind the `Kube` interface, every call recorded."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Body] = {}  # (kind, namespace, name)
        self.calls: list[Call] = []
        self.events: list[tuple[str, str, str, bool]] = []  # (object, reason, message, warning)
        self.refuse: dict[tuple[str, str], Exception] = {}  # (verb, kind) -> raised once
        self.watch: Callable[[Resource, str, Body], None] | None = None
        self._versions = itertools.count(100)

    def _check(self, verb: str, kind: str) -> None:
        error = self.refuse.pop((verb, kind), None)
        if error is not None:
            raise error

    def _changed(self, resource: Resource, event: str, body: Body) -> None:
        if self.watch is not None:
            self.watch(resource, event, copy.deepcopy(body))

    def put(self, resource: Resource, body: Body) -> Body:
        """An object made by someone else (a user, another controller), as the watch sees it."""
        metadata = body.setdefault("metadata", {})
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("generation", 1)
        metadata.setdefault("creationTimestamp", "2026-03-01T10:00:00Z")
        metadata["resourceVersion"] = str(next(self._versions))
        body.setdefault("kind", resource.kind)
        body.setdefault("apiVersion", resource.api_version)
        key = (resource.kind, metadata["namespace"], metadata["name"])
        event = "MODIFIED" if key in self.objects else "ADDED"
        self.objects[key] = copy.deepcopy(body)
        self._changed(resource, event, body)
        return copy.deepcopy(body)

    def remove(self, resource: Resource, namespace: str, name: str) -> None:
        body = self.objects.pop((resource.kind, namespace, name), None)
        if body is not None:
            self._changed(resource, "DELETED", body)

    def find(self, resource: Resource, namespace: str, name: str) -> Body | None:
        return self.objects.get((resource.kind, namespace, name))

    # --- the Kube interface -----------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> Body | None:
        self.calls.append(("get", resource.kind, name))
        self._check("get", resource.kind)
        found = self.find(resource, namespace, name)
        return copy.deepcopy(found) if found else None

    def list(self, resource: Resource, namespace: str, *, labels: str | None = None) -> list[Body]:
        self.calls.append(("list", resource.kind, labels or ""))
        self._check("list", resource.kind)
        return [
            copy.deepcopy(body)
            for (kind, ns, _), body in sorted(self.objects.items())
            if kind == resource.kind and ns == namespace and _matches(body, labels)
        ]

    def create(self, resource: Resource, body: Body) -> Body | None:
        metadata = body["metadata"]
        self.calls.append(("create", resource.kind, metadata.get("name", "")))
        self._check("create", resource.kind)
        if self.find(resource, metadata["namespace"], metadata["name"]) is not None:
            return None
        return self.put(resource, copy.deepcopy(body))

    def patch(self, resource: Resource, namespace: str, name: str, patch: Body) -> Body | None:
        self.calls.append(("patch", resource.kind, name))
        self._check("patch", resource.kind)
        found = self.find(resource, namespace, name)
        if found is None:
            return None
        merged = _merge(found, patch)
        if merged.get("spec") != found.get("spec"):
            merged["metadata"]["generation"] = found["metadata"].get("generation", 1) + 1
        return self.put(resource, merged)

    def patch_status(
        self, resource: Resource, namespace: str, name: str, status: Body
    ) -> Body | None:
        self.calls.append(("patch_status", resource.kind, name))
        self._check("patch_status", resource.kind)
        found = self.find(resource, namespace, name)
        if found is None:
            return None
        return self.put(resource, _merge(found, {"status": status}))

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        self.calls.append(("delete", resource.kind, name))
        self._check("delete", resource.kind)
        if self.find(resource, namespace, name) is None:
            return False
        self.remove(resource, namespace, name)
        return True

    def event(self, body: Body, reason: str, message: str, warning: bool = False) -> None:
        self.calls.append(("event", reason))
        self.events.append((body["metadata"]["name"], reason, message, warning))

    # --- reading what happened --------------------------------------------------------------

    def writes(self) -> list[Call]:
        """The calls that changed something (reads left out), in order."""
        return [call for call in self.calls if call[0] not in ("get", "list")]

    def reset(self) -> None:
        self.calls.clear()
        self.events.clear()


def invalid(message: str) -> Invalid:
    return Invalid("create", 422, message)


class Harness:
    """The operator's runtime over a FakeApi, run one pass at a time."""

    def __init__(self, config: OperatorConfig | None = None, now: datetime | None = None):
        self.api = FakeApi()
        self.now = now or datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
        self.runtime: Runtime = build_runtime(
            self.api,  # type: ignore[arg-type]
            config or OperatorConfig(),
            background_events=False,
        )
        self.runtime.context.clock = lambda: self.now
        self.api.watch = self.runtime.observe

    @property
    def context(self) -> Any:
        return self.runtime.context

    def drain(self, limit: int = 100, storage: bool = True) -> int:
        """Run every ready pass (and the storage watch's reads) until nothing is ready;
        the number of passes. More than `limit` passes means the operator loops."""
        passes = 0
        loops = [*self.runtime.loops.values()]
        if storage:
            loops.append(self.runtime.storage_loop)
        progress = True
        while progress:
            progress = False
            for loop in loops:
                key = loop.queue.get(block=False)
                if key is None:
                    continue
                try:
                    loop.run(key)
                finally:
                    loop.queue.done(key)
                passes += 1
                progress = True
                if passes > limit:
                    raise AssertionError(f"more than {limit} passes: the operator loops")
        return passes
