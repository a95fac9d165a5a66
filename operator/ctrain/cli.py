"""The `ctrain` command line: one entry point, one subcommand per role.

Subcommands live in `ctrain.commands.<name>` and are imported only when used, so
`ctrain serve` in a serving pod never pays for the operator's imports. Other
distributions add subcommands through the `ctrain.commands` entry-point group: the
development tooling (`devtools/`, not part of the image) adds `dev` and `generate` there.
"""

import importlib
from importlib.metadata import entry_points

import click

__all__ = ["PLUGIN_GROUP", "SUBCOMMANDS", "main"]

# name -> "module:attribute" of a click command or group.
SUBCOMMANDS = {
    "operator": "ctrain.commands.operator:operator",
    "train": "ctrain.commands.train:train",
    "serve": "ctrain.commands.serve:serve",
    "models": "ctrain.commands.models:models",
    "evaluate-live": "ctrain.commands.evaluate_live:evaluate_live",
}
PLUGIN_GROUP = "ctrain.commands"


def _targets() -> dict[str, str]:
    plugins = {point.name: point.value for point in entry_points(group=PLUGIN_GROUP)}
    return {**plugins, **SUBCOMMANDS}  # a plugin never replaces a built-in role


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_targets())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _targets().get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="ctrain")
def main() -> None:
    """ctrain: continuous training of machine-learning models on Kubernetes."""


if __name__ == "__main__":
    main()
