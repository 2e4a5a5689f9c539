"""``task history SLUG``: a task's file commits and registry events, as one timeline."""

from __future__ import annotations

from typing import Annotated

import click

from .app import JsonFlag, config, echo, emit_json, warn
from .params import App, Argument


def register(app: App) -> None:
    """Add ``history`` to ``app``."""
    app.command("history")(history)


def history(
    ctx: click.Context,
    slug: Annotated[str, Argument(help="The task's slug.")],
    as_json: JsonFlag = False,
) -> None:
    """Show a task's history, oldest first: its file's commits (created, edited keys, readied,
    completed, cancelled, renamed; uncommitted changes last) and its registry events
    (claims, starts, exits, retries, notes, ...), each with who and when.

    A slug whose file is gone still shows its file's commits up to its deletion and its
    registry events; one known nowhere is exit 3.
    """
    from ..history import history as timeline
    from ..registry import open_registry

    cfg = config(ctx)
    found = timeline(cfg, open_registry(cfg), slug)
    if as_json:
        emit_json(found.to_dict())
        return
    for warning in found.warnings:
        warn(warning)
    where = f"{found.path} (deleted)" if found.gone else found.path
    echo(f"{slug}: {where or '(no task file)'}")
    for item in found.items:
        echo(f"{item.time} {item.source:<8} {item.kind:<16} {item.summary}")
