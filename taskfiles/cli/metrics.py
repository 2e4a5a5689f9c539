"""``task metrics``: run metrics over a window, overall, per worker, and grouped as asked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import click

from .app import JsonFlag, RefOption, config, echo, emit_json, table
from .params import App, Option

if TYPE_CHECKING:
    from ..metrics import Figures, Metrics


def register(app: App) -> None:
    """Add ``metrics`` to ``app``."""
    app.command("metrics")(metrics)


def metrics(
    ctx: click.Context,
    window: Annotated[
        str,
        Option("--window", help="How far back: 1d, 7d, 30d, 90d or all (7d: today and the six days before)."),
    ] = "7d",
    by: Annotated[
        str | None,
        Option("--by", help="Also group the run figures by owner, worker or label."),
    ] = None,
    ref: RefOption = None,
    working_tree: Annotated[
        bool,
        Option("--working-tree", help="Read completion records from the working tree, not the base ref."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Runs, success rate, durations, retries, failure classes, cost and tasks completed per day.

    Runs come from the registry's events and what gc folded before archiving them, so
    gc never shortens a window; completions from the task files' completed_at (at the
    base ref unless --ref or --working-tree says otherwise).
    """
    from ..metrics import grouping_named, measure, window_named
    from ..registry import open_registry
    from ..status import planning_source

    window, by = window_named(window), grouping_named(by)  # refused before anything is read
    cfg = config(ctx)
    source = planning_source(cfg, ref, working_tree=working_tree)
    found = measure(open_registry(cfg), source.tasks.tasks, datetime.now(UTC), window, by)
    if as_json:
        emit_json(found.to_dict())
    else:
        echo(render(found))


def render(found: Metrics) -> str:
    """The human form: the figures, then a table a day, a worker and a group."""
    f = found.overall
    since = f"{found.since:%Y-%m-%d}" if found.since else "the first record"
    lines = [
        f"window {found.window}: {since} to {found.until:%Y-%m-%d %H:%MZ}",
        f"runs {f.runs}  succeeded {f.succeeded}  failed {f.failed}  success rate {_rate(f)}",
        f"duration p50 {_secs(f.duration_p50)}  p90 {_secs(f.duration_p90)}  mean {_secs(f.duration_mean)}",
        f"retries {found.retries} ({found.manual_retries} manual, "
        f"{found.retries - found.manual_retries} automatic)",
        f"cost ${f.cost_usd:.2f} in the window, ${found.cost_total_usd:.2f} in total"
        + (
            f"; top: {', '.join(f'{t.slug} ${t.cost_usd:.2f}' for t in found.top_tasks)}"
            if found.top_tasks
            else ""
        ),
        f"completed {found.completed} ({found.completed_per_day:.1f}/day)",
    ]
    if f.failure_classes:
        lines.append("failures: " + ", ".join(f"{k} {n}" for k, n in f.failure_classes.items()))
    lines += [f"warning: {w}" for w in found.warnings]
    days = [(d.day, str(d.completed), str(d.runs), f"${d.cost_usd:.2f}") for d in found.per_day]
    lines += ["", table(days, ("DAY", "COMPLETED", "RUNS", "COST"))]
    if found.workers:
        lines += ["", _groups("WORKER", found.workers)]
    if found.by and found.groups:
        lines += ["", _groups(found.by.upper(), found.groups)]
    return "\n".join(lines)


def _groups(header: str, groups: tuple[tuple[str, Figures], ...]) -> str:
    rows = [
        (
            key,
            str(g.runs),
            str(g.succeeded),
            str(g.failed),
            _rate(g),
            _secs(g.duration_p50),
            f"${g.cost_usd:.2f}",
        )
        for key, g in groups
    ]
    return table(rows, (header, "RUNS", "OK", "FAILED", "SUCCESS", "P50", "COST"))


def _rate(f: Figures) -> str:
    return f"{f.success_rate:.0%}" if f.success_rate is not None else "-"


def _secs(seconds: float | None) -> str:
    return f"{seconds:g} s" if seconds is not None else "-"
