"""Command-line interface: the only package that imports typer.

``app`` is the ``task`` (and ``taskfiles``) command. Each submodule registers
the commands of one area (its ``register(app)``); command bodies parse arguments,
call one library function and format its result. ``COMMANDS`` names the module of
every command, so a command line imports and builds only the command it runs.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.main import get_command_from_info, get_command_name, get_group_from_info
from typer.models import CommandInfo, TyperInfo

from .app import TaskfilesGroup, new_app, set_repo

# Each command module and the commands (then groups) its register() adds, in order;
# `task --help` lists them so. Adding a module is one line here: tests/test_startup.py
# fails when a line is missing or differs from what register() adds.
COMMANDS: dict[str, tuple[str, ...]] = {
    "planning": ("init", "new", "list", "show", "ready", "complete", "validate", "next"),
    "edits": ("set", "assign", "cancel"),
    "runtime": (
        *("claim", "start", "heartbeat", "finish", "release", "note", "progress", "blocker"),
        *("evidence", "artifact", "stop", "retry", "review", "park", "unpark", "log", "logs"),
        *("events", "gc", "status", "migrate", "registry"),
    ),
    "history": ("history",),
    "changes": ("changes",),
    "dispatch": ("heartbeat-cycle", "worker"),
    "serve": ("serve",),
    "metrics": ("metrics",),
    "mcp": ("mcp",),
    "mergedriver": ("merge-driver",),
}
MODULE_OF = {name: module for module, names in COMMANDS.items() for name in names}


class LazyGroup(TaskfilesGroup):
    """The top-level group: a command is imported and built when it is looked up.

    typer turns every registered command into a click command before it reads the
    arguments, and importing every command module costs ~40 ms; a command line runs one.
    Help and an unknown name look every command up, so they read as before (click's
    "Did you mean" included).
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            if cmd_name in MODULE_OF:
                self.commands[cmd_name] = self._build(cmd_name)
            else:
                self.list_commands(ctx)  # what an unknown name is compared with
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        built = self.commands
        self.commands = {name: built[name] if name in built else self._build(name) for name in MODULE_OF}
        return super().list_commands(ctx)

    def _build(self, name: str) -> click.Command:
        # What typer.main.get_group does for each command of a whole app.
        info = registered(MODULE_OF[name])[name]
        short, markup = app.pretty_exceptions_short, self.rich_markup_mode
        if isinstance(info, TyperInfo):
            return get_group_from_info(
                info, pretty_exceptions_short=short, suggest_commands=False, rich_markup_mode=markup
            )
        return get_command_from_info(info, pretty_exceptions_short=short, rich_markup_mode=markup)


@cache
def registered(module: str) -> dict[str, CommandInfo | TyperInfo]:
    """What ``taskfiles.cli.<module>``'s register() adds, by name: commands, then groups."""
    scratch = typer.Typer()
    importlib.import_module(f"{__name__}.{module}").register(scratch)
    infos: list[CommandInfo | TyperInfo] = [*scratch.registered_commands, *scratch.registered_groups]
    return {_name(info): info for info in infos}


def _name(info: CommandInfo | TyperInfo) -> str:
    """The name typer gives a registered command or group."""
    if isinstance(info, TyperInfo):
        named = info.name or (info.typer_instance.info.name if info.typer_instance else None)
        return str(named)  # a group without a name has no table line to match (the test says so)
    return info.name or get_command_name(getattr(info.callback, "__name__", ""))


app = new_app(
    "Run a team's work queue out of the git repository.\n\n"
    "Task files under tasks/ hold the durable plan; the runtime registry under "
    "registry/ holds everything that happens while work runs.",
    cls=LazyGroup,
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


def main() -> None:
    """Console-script entry point."""
    app(prog_name="task")
