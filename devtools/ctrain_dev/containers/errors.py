"""The errors the containers tooling reports as one clear line (no traceback).

ContainersError          anything this package knows how to explain
├── EngineError          no container engine, or it failed to start or answer
└── BuildError           a base image, binary, image or node image could not be built
"""

__all__ = ["BuildError", "ContainersError", "EngineError"]


class ContainersError(RuntimeError):
    """A known failure; its message says what went wrong and what to do."""


class EngineError(ContainersError):
    """No container engine answers, or the project's own one failed to start."""


class BuildError(ContainersError):
    """Building a base image, a Go binary, the ctrain image or a node image failed."""
