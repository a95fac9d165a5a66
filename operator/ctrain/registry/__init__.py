"""The model registry in S3: versions, artifacts, the champion and rejections (see `.core`).

Public names are re-exported here; import them from `ctrain.registry`.
"""

from ctrain.registry.core import ChampionChange, JobClaim, LoadedModel, Registry, sha256_hex
from ctrain.registry.errors import (
    ChampionMoved,
    IntegrityError,
    InvalidReference,
    RegistryError,
    StorageUnavailable,
    UntrustedModel,
    VersionConflict,
    VersionNotFound,
)
from ctrain.registry.layout import (
    CHAMPION,
    LATEST,
    METADATA_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    REJECTED_FILE,
    Layout,
)
from ctrain.registry.trust import TRUSTED_TYPES

__all__ = [
    "CHAMPION",
    "LATEST",
    "METADATA_FILE",
    "MODEL_FILE",
    "REFERENCE_FILE",
    "REJECTED_FILE",
    "TRUSTED_TYPES",
    "ChampionChange",
    "ChampionMoved",
    "IntegrityError",
    "InvalidReference",
    "JobClaim",
    "Layout",
    "LoadedModel",
    "Registry",
    "RegistryError",
    "StorageUnavailable",
    "UntrustedModel",
    "VersionConflict",
    "VersionNotFound",
    "sha256_hex",
]
