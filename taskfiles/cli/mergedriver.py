"""``task merge-driver``: the git merge driver for task files (install, status, and run, which git calls)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click

from ..errors import Reported
from .app import JsonFlag, config, echo, emit_json
from .params import App, Argument, Option


def register(app: App) -> None:
    """Add the ``merge-driver`` group to ``app``."""
    group = App(
        "A git merge driver for task files: frontmatter merged key by key, the body line by line. "
        "Local merges and rebases only: hosting platforms' merge buttons ignore it."
    )
    group.command("install")(install)
    group.command("status")(status)
    group.command("run", hidden=True)(run)
    app.add_group(group, "merge-driver")


def install(
    ctx: click.Context,
    uninstall: Annotated[
        bool,
        Option("--uninstall", help="Remove the .gitattributes line and the git config section instead."),
    ] = False,
) -> None:
    """Make git merge task files with taskfiles: add '<tasks_dir>/**/*.md merge=taskfiles' to
    .gitattributes (commit it) and [merge "taskfiles"] to this repository's .git/config (each
    clone runs this once). Running it again changes nothing; --uninstall undoes exactly that."""
    from ..plan import mergedriver

    cfg = config(ctx)
    changes = mergedriver.uninstall(cfg) if uninstall else mergedriver.install(cfg)
    for change in changes:
        echo(change)
    if not changes:
        done = "not installed" if uninstall else "already installed"
        echo(f"the task-file merge driver is {done}; nothing changed")
    elif not uninstall:
        echo(f"commit {mergedriver.ATTRIBUTES} so that every clone knows the driver is for task files")


def status(ctx: click.Context, as_json: JsonFlag = False) -> None:
    """Say whether the merge driver is installed here, with which command, and whether git
    would use it for a task file (a later .gitattributes line can override it)."""
    from ..plan import mergedriver

    found = mergedriver.state(config(ctx))
    if as_json:
        emit_json(found.to_dict())
        return
    if not found.installed:
        echo(f"not installed (no {' and no '.join(found.missing)}); run 'task merge-driver install'")
    elif found.command != found.expected:
        echo(f"installed for another interpreter: {found.command}")
        echo("run 'task merge-driver install' to use this one")
    elif found.effective != mergedriver.NAME:
        echo(f"installed, but git reads merge={found.effective} for task files")
        echo(f"a later .gitattributes line wins over '{found.attribute}'; remove it")
    else:
        echo(f"installed: {found.attribute}; git runs {found.command}")


def run(
    ancestor: Annotated[Path, Argument(help="%O: the common ancestor's version.")],
    current: Annotated[Path, Argument(help="%A: our version; the merge result is written here.")],
    other: Annotated[Path, Argument(help="%B: their version.")],
    marker_size: Annotated[int, Argument(help="%L: the conflict marker size.")] = 7,
    path: Annotated[str, Argument(help="%P: the file's path in the repository.")] = "",
) -> None:
    """What git runs to merge a task file (merge.taskfiles.driver): writes the result over
    CURRENT; exit 0 when clean, 1 when conflict markers are left."""
    from ..plan.merge import merge_files

    merged = merge_files(ancestor, current, other, marker_size=marker_size)
    name = path or str(current)
    if merged.note:
        click.echo(f"{name}: merged line by line: {merged.note}", err=True)
    if merged.conflicts:
        click.echo(f"{name}: conflicting changes to {', '.join(merged.conflicts)}", err=True)
        raise Reported(1)
