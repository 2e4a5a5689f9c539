"""Command-line interface: the only package that imports click.

``app`` is the ``task`` (and ``taskfiles``) command. Each submodule declares the
commands of one area (its ``register(app)``, with ``params.App``); command bodies parse
arguments, call one library function and format its result. ``COMMANDS`` names the
module of every command, so a command line imports and builds only the command it runs.
"""

from __future__ import annotations

import importlib
from functools import cache

import click

from .app import RepoOption, TaskfilesGroup, run, set_repo
from .params import App

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

    Importing every command module costs ~40 ms; a command line runs one. Help and an
    unknown name look every command up, so they read as before (click's "Did you mean"
    included).
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
        return registered(MODULE_OF[name]).build(name)


@cache
def registered(module: str) -> App:
    """What ``taskfiles.cli.<module>``'s register() declares."""
    declared = App()
    importlib.import_module(f"{__name__}.{module}").register(declared)
    return declared


def _root(ctx: click.Context, repo: RepoOption = None) -> None:
    set_repo(ctx, repo)


app = App(
    "Run a team's work queue out of the git repository.\n\n"
    "Task files under tasks/ hold the durable plan; the runtime registry under "
    "registry/ holds everything that happens while work runs.",
    cls=LazyGroup,
).group(options=_root)


def main() -> None:
    """Console-script entry point."""
    run(app, "task")
