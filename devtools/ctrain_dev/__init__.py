"""ctrain's development tooling: the local sandbox and its real node, images, generators.

None of this ships in the ctrain wheel or image. It plugs the `dev` and `generate`
subcommands into the `ctrain` command line through the `ctrain.commands` entry points.
"""
