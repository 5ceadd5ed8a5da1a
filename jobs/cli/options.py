"""The options several commands share, defined once."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ModelOption = Annotated[str | None, typer.Option("--model", "-m", help="Only this model (default: all).")]
RequiredModelOption = Annotated[str, typer.Option("--model", "-m", help="The model.")]


CONFIG_FLAGS = ("-c", "--config")


def hoist_config(args: list[str]) -> list[str]:
    """``args`` with ``-c PATH`` / ``--config PATH`` / ``--config=PATH`` moved to the front.

    The root takes the option; moving it lets a user write it after the subcommand too
    (``driftkeeper status -c FILE``). Nothing after a ``--`` is touched.

    >>> hoist_config(["status", "--json", "-c", "a.yaml"])
    ['-c', 'a.yaml', 'status', '--json']
    >>> hoist_config(["models", "list", "--config=b.yaml", "--", "-c"])
    ['--config=b.yaml', 'models', 'list', '--', '-c']
    """
    hoisted: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in CONFIG_FLAGS and i + 1 < len(args):
            hoisted += [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith("--config="):
            hoisted.append(arg)
        else:
            rest.append(arg)
        i += 1
    return hoisted + rest


class ConfigAnywhereGroup(TyperGroup):
    """The root group: accepts ``-c/--config`` before or after the subcommand."""

    def parse_args(self, ctx, args):  # untyped: typer vendors click, whose Context type differs by version
        return super().parse_args(ctx, hoist_config(list(args)))
