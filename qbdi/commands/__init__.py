"""The ``qbdi`` subcommands, one module each: ``add_arguments(parser)`` declares a command's
options and ``run(args) -> int`` runs it (see :data:`qbdi.cli.COMMANDS`). Commands are the
only place that parses options and prints; the packages they call stay free of both."""
