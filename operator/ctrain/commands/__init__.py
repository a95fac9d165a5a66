"""The subcommands of `ctrain`, one module each (see `ctrain.cli`)."""
