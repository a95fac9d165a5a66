"""How a watched object names its owner, so that its events enqueue that owner.

A kind declares its children with one of these rules (`Kind.children`); the runtime's
caches index children by owner with them (`Store.owned_by`).
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ctrain.controller.kube import Resource
from ctrain.controller.runtime.store import ObjectRef, Store

__all__ = ["OwnerRule", "controlled_by", "labelled", "stores_for"]

Body = dict[str, Any]
OwnerRule = Callable[[Body], str | None]  # the owner's name (same namespace), or None


def controlled_by(kind: str) -> OwnerRule:
    """The owner is the controller ownerReference of kind `kind`."""

    def owner(body: Body) -> str | None:
        for ref in body["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == kind and ref.get("controller"):
                return str(ref["name"])
        return None

    return owner


def labelled(label: str) -> OwnerRule:
    """The owner's name is the value of `label` (pods, whose controller is a Job or a
    ReplicaSet, carry their ctrain owner as a label)."""

    def owner(body: Body) -> str | None:
        value = (body["metadata"].get("labels") or {}).get(label)
        return str(value) if value else None

    return owner


def stores_for(
    kinds: Iterable[tuple[Resource, Mapping[Resource, OwnerRule]]],
) -> dict[Resource, Store]:
    """One store per kind and per child resource, each indexed by the owner its rules find."""
    rules: dict[Resource, list[tuple[str, OwnerRule]]] = {}
    resources: set[Resource] = set()
    for resource, children in kinds:
        resources.add(resource)
        for child, rule in children.items():
            rules.setdefault(child, []).append((resource.kind, rule))
            resources.add(child)

    def finder(resource: Resource) -> Callable[[Body], ObjectRef | None]:
        def owner(body: Body) -> ObjectRef | None:
            for kind, rule in rules.get(resource, ()):
                name = rule(body)
                if name:
                    return ObjectRef(kind, body["metadata"].get("namespace") or "", name)
            return None

        return owner

    return {resource: Store(resource.kind, finder(resource)) for resource in resources}
