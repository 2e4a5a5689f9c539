"""Reconcile the registry with reality: dead and stalled workers, retries, completions, orphans.

The first half of a heartbeat cycle. Each registry entry is classified with the
one classification function (``state.classify``), and its signals decide what to
do: a worker gone or stalled fails its attempt (fenced by its lease); when the
dispatcher started that worker on this host, its session is killed too. Only
workers the dispatcher started are killed, never a pid recorded by hand. A failed
attempt is retried after a backoff or parked (the circuit breaker, retries
exhausted, a failure class that is not retryable); a task completed or cancelled
at the base ref releases its entry; an entry whose task is gone is pruned after a
grace period. Completion is read from the task file at the base ref, so squash and
rebase merges count like any other. A task file that cannot be read is not a
deleted task: its worker is still judged (gone or stalled, then retried or
parked), but its entry is neither released nor pruned.

Every change goes through the registry API; the only files touched outside the
registry are worktrees being removed (their branches stay).
"""

from __future__ import annotations

import contextlib
import signal
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .. import git, process, state
from ..config import HeartbeatSettings, WorkerSettings
from ..errors import ConflictError, GitError, NotFoundError
from ..plan.taskfile import Task
from ..registry.records import RegistryEntry, format_time, parse_time
from ..slugs import slug_of
from ..status import Observation
from .scene import Scene, started_by_dispatcher


@dataclass(frozen=True)
class Action:
    """One thing reconciliation did (or, in a dry run, would do) to one task."""

    slug: str
    kind: str  # worker_gone, stalled, retry_scheduled, parked, released, pruned, worktree_removed
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"slug": self.slug, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class Reconciled:
    """What reconciliation did, which entries are orphans since when, and what went wrong."""

    actions: tuple[Action, ...] = ()
    orphan_since: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """What to do with a failed attempt: retry at ``at``, or park for ``reason``."""

    park: bool
    reason: str
    at: datetime | None = None


class _Out:
    def __init__(self) -> None:
        self.actions: list[Action] = []
        self.warnings: list[str] = []

    def act(self, slug: str, kind: str, detail: str = "") -> None:
        self.actions.append(Action(slug, kind, detail))


def reconcile(scene: Scene, seen: Observation) -> Reconciled:
    """Settle every unreleased entry against the tasks ``seen`` read at the base ref.

    Each entry's row comes from the observation; a task whose file cannot be read is
    classified on a stand-in with the observation's own inputs, so its worker is still
    judged while its entry is neither released nor pruned.
    """
    tasks = seen.tasks
    orphans = seen.record.orphan_since if seen.record else {}
    unreadable = {slug_of(path): path for path in tasks.skipped}
    rows = {c.slug: c for c in seen.rows if c.entry is not None}  # not by_slug: 50,000 rows for a few
    out, since = _Out(), {}
    for slug, entry in sorted(seen.entries.items()):
        if entry.state == "released":
            continue
        if slug in tasks.by_slug:
            _settle(scene, rows[slug], out)
        elif slug in unreadable:  # not a deleted task: judge its worker, keep its entry
            task = _unreadable(slug, unreadable[slug])
            _settle(scene, state.classify(task, entry, tasks, seen.inputs), out)
        else:
            since[slug] = orphans.get(slug, scene.stamp)
            _orphan(scene, entry, since[slug], out)
    kept = {slug: when for slug, when in since.items() if not _pruned(out, slug)}
    return Reconciled(tuple(out.actions), kept, tuple(out.warnings))


def _unreadable(slug: str, path: str) -> Task:
    """A stand-in for a task whose file cannot be read: never done, so never released."""
    return Task(slug, path, title=slug, status="ready", priority="")


def _pruned(out: _Out, slug: str) -> bool:
    return any(a.slug == slug and a.kind == "pruned" for a in out.actions)


def _settle(scene: Scene, c: state.Classification, out: _Out) -> None:
    entry = c.entry
    if entry is None or c.task is None:
        return
    if c.bucket == "done":
        _release_done(scene, c.task, entry, out)
        return
    kinds = {s.kind: s.reason for s in c.signals}
    settled: RegistryEntry | None = entry
    if entry.is_live:
        for kind in ("worker_gone", "stalled"):
            if kind in kinds:
                settled = _fail(scene, entry, kind, kinds[kind], out)
                break
    if settled is not None and settled.state == "failed":
        _after_failure(scene, settled, out)


# -- failed attempts ---------------------------------------------------------------------------


def _fail(scene: Scene, entry: RegistryEntry, kind: str, reason: str, out: _Out) -> RegistryEntry | None:
    """Fail the live attempt (fenced), then kill what is left of its worker."""
    out.act(entry.slug, kind, reason)
    if scene.dry_run:
        return None
    failed: RegistryEntry | None
    try:
        failed = scene.registry.fail(entry.slug, entry.lease, failure_class=kind, error=reason)
    except ConflictError:  # the worker recorded its exit meanwhile: that record stands
        failed = scene.registry.find(entry.slug)
    _kill(scene, entry)
    return failed


def _kill(scene: Scene, entry: RegistryEntry) -> None:
    """Kill the worker's whole session (wrapper and agent) when the dispatcher started it here.

    A pid recorded by hand (``task start --pid $$``) may be a terminal's shell, whose
    session is the user's: such a worker only loses its lease, and a wrapper learns
    that at its next heartbeat and stops its agent itself.
    """
    pid = entry.pid
    if pid is None or entry.host != scene.host or not started_by_dispatcher(entry):
        return
    if process.is_alive(pid) and not process.leads_session(pid):
        return  # not the session the dispatcher created for it
    process.kill_session(pid, entry.pid_start_time, signal.SIGKILL)


def decide(
    entry: RegistryEntry, worker: WorkerSettings, heartbeat: HeartbeatSettings, now: datetime
) -> Decision:
    """Retry a failed attempt after a backoff, or park it: the retry policy, as a pure function."""
    cls = entry.failure_class or "unknown"
    error = entry.last_error or cls
    if cls in worker.non_retryable:
        return Decision(True, f"{cls} is not retryable: {error}")
    if entry.failure_streak >= heartbeat.circuit_breaker:
        return Decision(True, f"circuit open: {cls} {entry.failure_streak} times in a row ({error})")
    if entry.consecutive_failures >= entry.max_attempts:
        return Decision(True, f"retries exhausted: {entry.consecutive_failures} failed attempts ({error})")
    delay = backoff_seconds(entry.consecutive_failures, entry.slug, entry.attempt, heartbeat)
    return Decision(False, f"{cls}: {error}", now + timedelta(seconds=delay))


def backoff_seconds(failures: int, slug: str, attempt: int, heartbeat: HeartbeatSettings) -> float:
    """Exponential backoff (base x 2^(failures-1), capped) plus jitter.

    The jitter is a fraction derived from the slug and attempt: spread across tasks
    like random jitter, yet the same on every reading, so a dry run tells the truth.
    """
    exponent = min(max(failures - 1, 0), 30)
    delay = min(heartbeat.backoff_max_seconds, heartbeat.backoff_base_seconds * float(2**exponent))
    spread = zlib.crc32(f"{slug}:{attempt}".encode()) / 2**32
    return delay * (1 + heartbeat.backoff_jitter * spread)


def _after_failure(scene: Scene, entry: RegistryEntry, out: _Out) -> None:
    decision = decide(entry, scene.config.worker, scene.config.heartbeat, scene.now)
    kind = "parked" if decision.park else "retry_scheduled"
    detail = decision.reason if decision.park else f"at {format_time(decision.at or scene.now)}"
    out.act(entry.slug, kind, detail)
    if scene.dry_run:
        return
    registry = scene.registry
    try:
        if decision.park:
            registry.park(entry.slug, reason=decision.reason, lease=entry.lease)
        else:
            registry.schedule_retry(
                entry.slug, at=decision.at or scene.now, reason=decision.reason, lease=entry.lease
            )
    except ConflictError as exc:  # claimed or changed by someone else since it was read
        out.warnings.append(f"{entry.slug}: {exc}")


# -- tasks that are finished or gone -----------------------------------------------------------


def _release_done(scene: Scene, task: Task, entry: RegistryEntry, out: _Out) -> None:
    """The task is completed or cancelled at the base ref: end the claim, stop its worker."""
    out.act(task.slug, "released", f"{task.status} at {scene.config.base_ref}")
    if scene.dry_run:
        return
    try:
        scene.registry.release(task.slug, reason=f"{task.status} at {scene.config.base_ref}")
    except (ConflictError, NotFoundError) as exc:  # pruned or changed by someone else meanwhile
        out.warnings.append(f"{task.slug}: {exc}")
        return
    if entry.is_live:
        _kill(scene, entry)
    if scene.config.heartbeat.remove_worktree_on_done:
        _remove_worktree(scene, entry, out)


def _orphan(scene: Scene, entry: RegistryEntry, since: str, out: _Out) -> None:
    """An entry whose task is gone from the base ref: pruned once the grace period is over."""
    grace = scene.config.heartbeat.orphan_grace_seconds
    if (scene.now - parse_time(since)).total_seconds() <= grace:
        return
    out.act(entry.slug, "pruned", f"task gone from {scene.config.base_ref} since {since}")
    if scene.dry_run:
        return
    registry = scene.registry
    if entry.is_live:
        with contextlib.suppress(ConflictError):  # it ended on its own meanwhile
            registry.stop(entry.slug, reason="registry_orphan: the task file is gone")
        _kill(scene, entry)
    try:
        registry.prune(entry.slug, reason="registry_orphan: the task file is gone from the base ref")
    except (ConflictError, NotFoundError) as exc:
        out.warnings.append(f"{entry.slug}: {exc}")
        return
    if scene.config.heartbeat.remove_worktree_on_done:
        _remove_worktree(scene, entry, out)


def _remove_worktree(scene: Scene, entry: RegistryEntry, out: _Out) -> None:
    """Remove the task's worktree, keeping its branch; a dirty worktree is kept and reported."""
    if not entry.worktree:
        return
    try:
        removed = git.remove_worktree(scene.main_root, Path(entry.worktree))
    except GitError as exc:
        out.warnings.append(f"{entry.slug}: worktree {entry.worktree} kept: {exc}")
        return
    if removed:
        out.act(entry.slug, "worktree_removed", f"{entry.worktree} (branch {entry.branch} kept)")
