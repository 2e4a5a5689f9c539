"""Command-line interface: the only package that imports typer.

``app`` is the ``task`` (and ``taskfiles``) command. Each submodule registers
the commands of one area; command bodies parse arguments, call one library
function and format its result.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from . import dispatch, edits, history, mcp, metrics, planning, runtime, serve
from .app import new_app, set_repo

app = new_app(
    "Run a team's work queue out of the git repository.\n\n"
    "Task files under tasks/ hold the durable plan; the runtime registry under "
    "registry/ holds everything that happens while work runs."
)


@app.callback()
def _root(
    ctx: typer.Context,
    repo: Annotated[
        Path | None,
        typer.Option("--repo", "-C", help="Run as if started in this folder (default: the current one)."),
    ] = None,
) -> None:
    set_repo(ctx, repo)


planning.register(app)
edits.register(app)
runtime.register(app)
history.register(app)
dispatch.register(app)
serve.register(app)
metrics.register(app)
mcp.register(app)


def main() -> None:
    """Console-script entry point."""
    only(sys.argv[1:])(prog_name="task")


def only(argv: list[str]) -> typer.Typer:
    """``app`` cut down to the one command ``argv`` names, or the whole app.

    typer turns every registered command into a click command before it reads the
    arguments: ~25 ms for 32 commands, a tenth of a warm ``task list`` over 10,000
    tasks. A command line that names one top-level command needs only that one;
    anything else (help, groups, unknown names) gets the whole app and its messages.
    """
    name = _command_name(argv)
    chosen = [info for info in app.registered_commands if info.name == name]
    if len(chosen) != 1:
        return app
    single = new_app(str(app.info.help))
    single.registered_callback = app.registered_callback
    single.registered_commands = chosen
    return single


def _command_name(argv: list[str]) -> str | None:
    args = iter(argv)
    for arg in args:
        if arg in ("-C", "--repo"):
            next(args, None)
        elif not arg.startswith("--repo="):
            return None if arg.startswith("-") else arg
    return None
