"""Commands that run work: the heartbeat cycle (``task heartbeat-cycle``, also the
``task-manager-heartbeat`` console script for cron) and the worker wrapper (``task worker run``).

Library modules are imported inside the commands: ``task list`` must not pay for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click

from ..config import Config
from ..errors import Reported, TaskfilesError, UsageError
from ..process import require_sessions
from .app import (
    JsonFlag,
    RepoOption,
    TaskfilesCommand,
    config,
    echo,
    emit_json,
    error,
    load_repo_config,
    run,
    warn,
)
from .params import App, Option, command
from .runtime import LeaseOption, SlugArg

if TYPE_CHECKING:
    from ..dispatch.cycle import CycleResult

OwnerOption = Annotated[
    list[str] | None,
    Option(
        "--owner",
        help="Dispatch only this owner's tasks (repeatable; aliases collapse; with owners configured, "
        "an unknown owner is an error).",
    ),
]
MaxParallelOption = Annotated[
    int | None,
    Option(
        "--max-parallel",
        min=1,
        help="Live workers allowed at once on all hosts together (default: [heartbeat] max_parallel).",
    ),
]
NoDispatchOption = Annotated[
    bool, Option("--no-dispatch", help="Reconcile, classify and write the snapshot; start nothing.")
]
DryRunOption = Annotated[
    bool,
    Option("--dry-run", help="Say what the cycle would do; change nothing (no lock taken, no fetch)."),
]
LoopOption = Annotated[
    float | None,
    Option(
        "--loop",
        min=0,
        metavar="SECONDS",
        help="Run a cycle every SECONDS until interrupted; 0: every [heartbeat] interval_seconds.",
    ),
]
TaskFileOption = Annotated[
    str | None, Option(help="The task file, relative to the worktree (default: found by slug).")
]
PromptFileOption = Annotated[
    str | None, Option(help="The prompt file (default: rendered under the registry).")
]
WorktreeOption = Annotated[
    Path | None, Option(help="Where the agent works (default: the claim's worktree, else here).")
]
AgentOption = Annotated[
    str | None,
    Option(
        help="The agent profile to run ([agents.NAME]; 'default': [worker] command). With neither "
        "--agent nor --budget-usd, the task file's agent and budget_usd are used."
    ),
]
BudgetOption = Annotated[
    float | None,
    Option("--budget-usd", help="This attempt's cost cap in USD (instead of cost_cap_usd)."),
]
DispatchedFlag = Annotated[
    bool, Option("--dispatched", hidden=True, help="Started by the heartbeat: wait for 'go'.")
]


def register(app: App) -> None:
    """Add ``heartbeat-cycle`` and the ``worker`` group to ``app``."""
    app.command("heartbeat-cycle")(heartbeat_cycle)
    group = App("The worker wrapper the heartbeat starts for each dispatched task.")
    group.command("run")(worker_run)
    app.add_group(group, "worker")


def heartbeat_cycle(
    ctx: click.Context,
    owner: OwnerOption = None,
    max_parallel: MaxParallelOption = None,
    no_dispatch: NoDispatchOption = False,
    dry_run: DryRunOption = False,
    loop: LoopOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Run one heartbeat cycle: fetch the base ref (with [heartbeat] fetch), reconcile the
    registry, classify every task, dispatch ready tasks into worktrees, record the cycle
    (snapshot.json). Exit 0 also when another cycle holds the lock."""
    require_sessions("task heartbeat-cycle")
    run_heartbeat(config(ctx), owner, max_parallel, no_dispatch, dry_run, loop, as_json)


def run_heartbeat(
    cfg: Config,
    owners: list[str] | None,
    max_parallel: int | None,
    no_dispatch: bool,
    dry_run: bool,
    every: float | None,
    as_json: bool,
) -> None:
    """One cycle, or one every ``every`` seconds; print each summary."""
    from ..dispatch import cycle

    # An owner the configuration does not know would match no task: every run would
    # dispatch nothing and exit 0, so a typo in a cron line would go unnoticed.
    known = tuple(cfg.owner_named(owner) for owner in owners or ())
    options = cycle.CycleOptions(known, max_parallel, not no_dispatch, dry_run)
    if every is None:
        _show(cycle.run_cycle(cfg, options), as_json)
        return
    try:
        for outcome in cycle.loop(cfg, options, every):
            if isinstance(outcome, TaskfilesError):
                error(outcome)
            else:
                _show(outcome, as_json)
    except KeyboardInterrupt:
        return


def _show(result: CycleResult, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_dict())
    else:
        echo(summary(result))
    for warning in result.warnings:
        warn(warning)
    for failed in result.dispatched:
        if failed.error:
            warn(f"{failed.slug}: dispatch failed: {failed.error}")


def summary(result: CycleResult) -> str:
    """The one line a cycle prints (cron mails it, so one line)."""
    if not result.ran:
        pid = f"pid {result.holder_pid}" if result.holder_pid else "pid unknown"
        return f"another cycle is running ({pid}); skipped"
    counts = ", ".join(f"{bucket} {n}" for bucket, n in result.counts.items() if n) or "no tasks"
    parts = [f"{'dry run' if result.dry_run else 'cycle'} {result.generated_at}: {counts}"]
    fetched = result.fetched
    if fetched is not None and not fetched.ok:
        parts.append(f"fetch of {fetched.remote} {fetched.branch} FAILED (read {fetched.base_ref} as it was)")
    started = [d.slug for d in result.dispatched if not d.error]
    if started:
        parts.append("dispatched " + ", ".join(started))
    if result.would_dispatch:
        parts.append("would dispatch " + ", ".join(result.would_dispatch))
    kinds: dict[str, list[str]] = {}
    for action in result.actions:
        kinds.setdefault(action.kind, []).append(action.slug)
    parts += [f"{kind} {', '.join(slugs)}" for kind, slugs in kinds.items()]
    if result.skipped:
        parts.append(f"skipped {len(result.skipped)} unreadable task file(s) ('task validate')")
    return "; ".join(parts) + f" ({result.duration_ms:g} ms)"


def worker_run(
    ctx: click.Context,
    slug: SlugArg,
    lease: LeaseOption,
    task_file: TaskFileOption = None,
    prompt_file: PromptFileOption = None,
    worktree: WorktreeOption = None,
    agent: AgentOption = None,
    budget_usd: BudgetOption = None,
    dispatched: DispatchedFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Run the configured agent (or the task's agent profile) for one attempt of a claimed task:
    heartbeat, tee its output into the attempt's log, enforce the deadline and cost cap (the
    task's budget_usd when it has one), record the exit with the lease.

    Refused (exit 4) while another wrapper runs for the same task or in the same worktree:
    one live worker per task and per worktree.
    """
    require_sessions("task worker run")
    from ..dispatch import worker
    from ..registry import open_registry

    if budget_usd is not None and not 0 < budget_usd < float("inf"):
        raise UsageError(f"--budget-usd must be a positive number of dollars, not {budget_usd:g}")
    cfg = config(ctx)
    given = agent is not None or budget_usd is not None
    result = worker.run(
        cfg,
        open_registry(cfg),
        slug,
        lease,
        task_file=task_file,
        prompt_file=prompt_file,
        worktree=worktree.resolve() if worktree else None,
        dispatched=dispatched,
        intent=worker.Intent(agent, budget_usd) if given else None,
    )
    if as_json:
        emit_json({**vars(result), "status": result.status})
    else:
        code = "" if result.exit_code is None else f" (exit {result.exit_code})"
        echo(f"{slug}: {result.outcome}{code}" + (f": {result.detail}" if result.detail else ""))
    if result.status:
        raise Reported(result.status)


# -- task-manager-heartbeat: the same cycle as a console script of its own ------------------------


def _manager(
    repo: RepoOption = None,
    owner: OwnerOption = None,
    max_parallel: MaxParallelOption = None,
    no_dispatch: NoDispatchOption = False,
    dry_run: DryRunOption = False,
    loop: LoopOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The heartbeat cycle, for cron: fetch (with [heartbeat] fetch), reconcile, classify,
    dispatch, record the cycle (snapshot.json).

    Exit 0 when the cycle ran or another cycle held the lock; non-zero only for real failures.
    """
    require_sessions("task-manager-heartbeat")
    run_heartbeat(load_repo_config(repo), owner, max_parallel, no_dispatch, dry_run, loop, as_json)


manager = command(_manager, "task-manager-heartbeat", cls=TaskfilesCommand)


def manager_main() -> None:
    """Console-script entry point of ``task-manager-heartbeat``."""
    run(manager, "task-manager-heartbeat")
