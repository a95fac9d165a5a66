"""Status and Events, written one way for every kind.

Reconcilers build a status model (`ctrain.api` `*Status`); `write_status` serialises it,
compares it with what the object holds (both read through the same model, so a field
the apiserver defaulted or a time written in another format is no change), and sends a
JSON merge patch only when something changed; fields the new status no longer has are
sent as null, which removes them. Empty collections are left out: a status grows as the
operator learns. Events are posted for transitions only, which the kinds decide.
"""

from collections.abc import Iterable
from typing import Any

from ctrain.api.common import StatusModel
from ctrain.controller import metrics
from ctrain.controller.kube import Resource
from ctrain.controller.runtime.context import Context

__all__ = ["Event", "post_events", "serialise", "write_status"]

Body = dict[str, Any]
Event = tuple[str, str, bool]  # reason, message, warning


def serialise(status: StatusModel) -> dict[str, Any]:
    """The status as the apiserver stores it: camelCase, no nulls, no empty collections."""
    return {
        key: value
        for key, value in status.to_wire().items()
        if not (isinstance(value, list | dict) and not value)
    }


def write_status(
    context: Context, resource: Resource, body: Body, status: StatusModel
) -> Body | None:
    """Patch the object's status to `status` if it differs; the object as it is now (None
    when it is gone)."""
    new = serialise(status)
    old = body.get("status") or {}
    metrics.PHASES.record(body["kind"], body["metadata"]["uid"], new.get("phase"))
    if serialise(type(status).parse(old)) == new and set(old) <= set(new):
        return body
    patch = _merge_patch(old, new)
    metadata = body["metadata"]
    written = context.kube.patch_status(resource, metadata["namespace"], metadata["name"], patch)
    if written is None:
        metrics.PHASES.record(body["kind"], metadata["uid"], None)
    return context.remember(resource, written)


def _merge_patch(old: Body, new: Body) -> Body:
    """The JSON merge patch from `old` to `new`: a key `new` no longer has is sent as null,
    in nested objects too (a merge patch merges maps, so an absent key would be kept)."""
    patch: Body = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            patch[key] = {**_merge_patch(before, value), **value}
        else:
            patch[key] = value
    return patch


def post_events(context: Context, body: Body, events: Iterable[Event]) -> None:
    post = context.post_event or context.kube.event
    for reason, message, warning in events:
        post(body, str(reason), message, warning)
