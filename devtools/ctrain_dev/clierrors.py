"""Known failures of the dev tooling, printed as one line instead of a traceback.

Each of these errors carries a message that says what went wrong and what to do (no
root, a port in use, a failed binary build with the path of its log, an engine that did
not start). The command line prints it as click does any usage error: `Error: ...`, exit
code 1. Anything else is a bug and keeps its traceback.
"""

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ctrain_dev import gobuild, host
from ctrain_dev.containers.errors import ContainersError
from ctrain_dev.sandbox.binaries import BuildError
from ctrain_dev.sandbox.preflight import SandboxError

F = TypeVar("F", bound=Callable[..., Any])

KNOWN_ERRORS = (SandboxError, BuildError, gobuild.GoBuildError, ContainersError, host.NetworkError)


def one_line_errors(command: F) -> F:
    """Turn a known failure of `command` into `Error: <message on one line>`, exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KNOWN_ERRORS as error:
            raise click.ClickException(" ".join(str(error).split())) from None

    return wrapper  # type: ignore[return-value]
