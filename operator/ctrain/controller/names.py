"""Deterministic names of the objects the operator creates, and label values.

The same input always gives the same name, so a reconcile repeated after a crash finds
what it created instead of creating a twin. Kubernetes limits both names of
label-selected objects and label values to 63 characters; a longer name keeps a readable
head and ends in a hash of the whole, so two long names stay distinct.
"""

import hashlib

__all__ = ["child_name", "label_value"]

LIMIT = 63
_DIGEST = 8  # hex characters of sha256 that keep shortened names apart


def label_value(name: str, limit: int = LIMIT) -> str:
    """`name` as it is if it fits in `limit` characters, else its head and a hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_DIGEST]
    # A name or label value must end in an alphanumeric character.
    return f"{name[: limit - _DIGEST - 1].rstrip('-.')}-{digest}"


def child_name(parent: str, suffix: str, limit: int = LIMIT) -> str:
    """`<parent>-<suffix>` within `limit` characters (a long parent shortened with a hash)."""
    return f"{label_value(parent, limit - len(suffix) - 1)}-{suffix}"
