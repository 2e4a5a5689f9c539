"""Command-line interface: the only package that imports typer.

``app`` is the ``task`` (and ``taskfiles``) command. Each submodule registers
the commands of one area; command bodies parse arguments, call one library
function and format its result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import dispatch, planning, runtime, serve
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
runtime.register(app)
dispatch.register(app)
serve.register(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="task")
