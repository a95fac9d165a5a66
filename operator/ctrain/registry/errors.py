"""The registry's exceptions, one hierarchy so callers can catch at the level they need.

::

    RegistryError                 anything the registry cannot do
    ├── InvalidReference          a model name or version reference of the wrong shape
    ├── VersionNotFound           no visible version (or no champion) for a reference
    ├── VersionConflict           a version number or alias could not be claimed/updated
    │   └── ChampionMoved         the champion is no longer the version a move expected
    ├── IntegrityError            stored bytes do not match their metadata (sha256, JSON)
    ├── UntrustedModel            model.skops holds types outside ctrain's trust list
    └── StorageUnavailable        S3 failed after botocore's retries (network, auth, bucket)

The trainer reports them as the `StorageError` termination reason, except while reading
the champion it compares against: then only `StorageUnavailable` fails the run, and any
other error marks the champion "not comparable". The server treats all of them as
"model not loadable" (not ready), naming the class in its readiness body.
"""

from __future__ import annotations

__all__ = [
    "ChampionMoved",
    "IntegrityError",
    "InvalidReference",
    "RegistryError",
    "StorageUnavailable",
    "UntrustedModel",
    "VersionConflict",
    "VersionNotFound",
]


class RegistryError(Exception):
    """Base class of every error the model registry raises."""


class InvalidReference(RegistryError, ValueError):
    """A model name or a version reference (`champion`, `latest`, `<n>`) is malformed."""


class VersionNotFound(RegistryError, LookupError):
    """The requested version is not visible (no metadata.json), or no champion is set."""


class VersionConflict(RegistryError):
    """Another writer won a race the registry could not resolve by retrying."""


class ChampionMoved(VersionConflict):
    """A compare-and-set of the champion lost: it is ``current``, not ``expected``."""

    def __init__(self, expected: str | None, current: str | None) -> None:
        def shown(version: str | None) -> str:
            return "none" if version is None else f"v{version}"

        super().__init__(f"the champion is {shown(current)}, not {shown(expected)} as expected")
        self.expected = expected
        self.current = current


class IntegrityError(RegistryError):
    """Stored artifacts are inconsistent: sha256 mismatch or unreadable metadata."""


class UntrustedModel(RegistryError):
    """model.skops contains object types ctrain does not trust; it is not loaded."""

    def __init__(self, message: str, untrusted: list[str]) -> None:
        super().__init__(message)
        self.untrusted = untrusted


class StorageUnavailable(RegistryError):
    """S3 itself failed (after retries): endpoint unreachable, access denied, no bucket."""
