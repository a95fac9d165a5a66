"""The sandbox's checks of its needs and its one-line explanations of known failures."""

from pathlib import Path

import click
import click.testing
import pytest

from ctrain_dev.clierrors import one_line_errors
from ctrain_dev.containers.errors import EngineError
from ctrain_dev.sandbox import preflight
from ctrain_dev.sandbox.binaries import BuildError

pytestmark = pytest.mark.unit

EVERYTHING = {"ip": "/usr/sbin/ip", "nsenter": "/usr/bin/nsenter"}


def machine(
    platform: str = "linux",
    euid: int = 0,
    tools: dict[str, str] | None = None,
    go: tuple[int, int] | None = (1, 26),
) -> preflight.Machine:
    found = EVERYTHING if tools is None else tools
    return preflight.Machine(platform, euid, found.get, lambda: go)


def test_a_ready_machine_has_no_problems():
    assert preflight.problems(machine(), needs_build=True) == []


def test_linux_only_is_said_first_and_alone():
    found = preflight.problems(machine(platform="darwin", euid=501, tools={}), needs_build=True)
    assert len(found) == 1
    assert "Linux only" in found[0] and "kind" in found[0]


def test_every_missing_need_is_listed_at_once():
    found = preflight.problems(machine(euid=1000, tools={}, go=None), needs_build=True)
    text = " | ".join(found)
    assert "root" in text
    assert "`ip` is missing: install iproute2" in text
    assert "`nsenter` is missing: install util-linux" in text
    assert "Go 1.24 or newer" in text and "KUBEBUILDER_ASSETS" in text
    assert len(found) == 4


def test_go_matters_only_when_a_build_is_due():
    assert preflight.problems(machine(go=None), needs_build=False) == []
    too_old = preflight.problems(machine(go=(1, 21)), needs_build=True)
    assert too_old == ["Go 1.21 is too old to build the Kubernetes binaries: need 1.24+"]


def test_check_raises_one_sandbox_error_naming_everything():
    with pytest.raises(preflight.SandboxError) as error:
        preflight.check(needs_build=False, machine=machine(euid=1000))
    assert str(error.value).startswith("the sandbox cannot start: it needs root")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ("I0101 listening\nE0101 listen tcp 10.3.0.1:6443: bind: address already in use\n",
         "kube-apiserver could not listen: a port it was given is in use"),
        ("open /var/lib/x: permission denied\n", "refused a permission it needs"),
        ("panic: something else entirely\n", "kube-apiserver exited: panic: something else"),
    ],
)  # fmt: skip
def test_an_early_exit_is_explained_from_the_log(tmp_path: Path, log: str, expected: str):
    path = tmp_path / "kube-apiserver.log"
    path.write_text(log)
    explanation = preflight.explain_exit("kube-apiserver", path)
    assert expected in explanation
    assert str(path) in explanation


def test_an_exit_without_a_log_still_says_where_to_look(tmp_path: Path):
    explanation = preflight.explain_exit("etcd", tmp_path / "missing.log")
    assert explanation.startswith("etcd exited: no output")


@pytest.mark.parametrize(
    "error",
    [
        preflight.SandboxError("the sandbox cannot start: it needs root"),
        BuildError("building kube failed: cannot find package (full output: /x.log)"),
        EngineError("dockerd exited with code 1: failed to start daemon\n...: more"),
    ],
)
def test_known_errors_become_one_line_without_a_traceback(error: Exception):
    @click.command()
    @one_line_errors
    def command() -> None:
        raise error

    result = click.testing.CliRunner().invoke(command, [])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_unknown_errors_keep_their_traceback():
    @click.command()
    @one_line_errors
    def command() -> None:
        raise KeyError("a bug")

    result = click.testing.CliRunner().invoke(command, [])
    assert isinstance(result.exception, KeyError)
