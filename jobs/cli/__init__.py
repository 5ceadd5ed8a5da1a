"""The ``driftkeeper`` command line: ``main`` wires the commands of the modules beside it.

Exit codes live in :mod:`jobs.runner.exit_codes` (no typer), options in :mod:`jobs.cli.options`.
"""

from jobs.cli.commands import app, main

__all__ = ["app", "main"]
