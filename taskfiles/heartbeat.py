"""The heartbeat cycle (``task-manager-heartbeat``): what cron runs every minute.

One cycle, idempotent:

1. take the cycle lock without waiting (another cycle holds it: report its pid, do nothing);
2. read the task files at the base ref, and the registry;
3. reconcile (``reconcile``): dead and stalled workers, retries, completions, orphans;
4. classify every task with the one classification function (``state``);
5. dispatch ready tasks up to the parallel limit (``dispatch``);
6. write ``snapshot.json`` for readers that must not recompute.

A cycle never writes a tracked file: task files are read at a ref, worktrees are
ignored through ``info/exclude``, and prompts and logs live under the registry.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import cache, dispatch, git, process, reconcile, runtime, state, tasksource
from .config import Config
from .dispatch import Dispatched
from .errors import ConfigError, TaskfilesError
from .reconcile import Action, Scene
from .records import RegistryEntry, utc_now
from .registry import Registry, open_registry
from .taskfile import Task
from .tasksource import TaskSet

Clock = Callable[[], datetime]
LOCK_NAME = "heartbeat.lock"
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class CycleOptions:
    """What the command line asks of a cycle."""

    owners: tuple[str, ...] = ()  # dispatch only these (canonical) owners' tasks; empty: all
    max_parallel: int | None = None  # None: [heartbeat] max_parallel
    dispatch: bool = True
    dry_run: bool = False  # decide everything, change nothing


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did; ``ran`` is False when another cycle held the lock."""

    ran: bool
    holder_pid: int | None = None  # the other cycle's pid, when known
    generated_at: str | None = None
    duration_ms: float = 0.0
    ref: str | None = None
    commit: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    actions: tuple[Action, ...] = ()
    dispatched: tuple[Dispatched, ...] = ()
    would_dispatch: tuple[str, ...] = ()  # a dry run's picks
    attention: tuple[state.Classification, ...] = ()
    warnings: tuple[str, ...] = ()
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``--json``)."""
        return {
            "ran": self.ran,
            "holder_pid": self.holder_pid,
            "generated_at": self.generated_at,
            "duration_ms": self.duration_ms,
            "ref": self.ref,
            "commit": self.commit,
            "dry_run": self.dry_run,
            "counts": dict(self.counts),
            "actions": [a.to_dict() for a in self.actions],
            "dispatched": [d.to_dict() for d in self.dispatched],
            "would_dispatch": list(self.would_dispatch),
            "attention": [_attention(c) for c in self.attention],
            "warnings": list(self.warnings),
        }


# -- the lock ----------------------------------------------------------------------------------


@contextlib.contextmanager
def cycle_lock(folder: Path) -> Iterator[int | None]:
    """Hold the cycle lock for the block, yielding None; or, when another process holds it,
    yield that process's pid (0 when it has not written it yet) without waiting."""
    with process.pid_lock(folder / LOCK_NAME, "cycle lock") as holder:
        yield holder


# -- the cycle ---------------------------------------------------------------------------------


def run_cycle(
    config: Config,
    options: CycleOptions = CycleOptions(),
    *,
    clock: Clock | None = None,
    registry: Registry | None = None,
) -> CycleResult:
    """Run one heartbeat cycle, or return at once (``ran=False``) when another one runs."""
    clock = clock or utc_now
    registry = registry or open_registry(config, clock=clock)
    # The cycle makes ~100k short objects over 10,000 tasks; the cyclic GC would rescan them.
    with cache.gc_paused():
        if options.dry_run:  # changes nothing, so it need not wait its turn
            return _cycle(config, registry, options, clock)
        with cycle_lock(config.registry_dir) as holder:
            if holder is not None:
                return CycleResult(ran=False, holder_pid=holder)
            return _cycle(config, registry, options, clock)


def _cycle(config: Config, registry: Registry, options: CycleOptions, clock: Clock) -> CycleResult:
    started = time.perf_counter()
    scene = Scene(config, registry, clock(), socket.gethostname(), options.dry_run)
    _check_command(config, options)
    tasks = tasksource.load(config, config.base_ref)
    if not options.dry_run:
        _ignore_registry(config)
    previous = registry.read_cycle() or {}
    entries = registry.entries()
    settled = reconcile.reconcile(scene, tasks, entries, previous.get("orphan_since") or {})
    if settled.actions and not options.dry_run:
        entries = registry.entries()
    ready_since = dict(previous.get("ready_since") or {})
    picked = _dispatch(scene, tasks, entries, ready_since, options)
    result = CycleResult(
        ran=True,
        generated_at=scene.stamp,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        ref=config.base_ref,
        commit=tasks.commit,
        counts=state.counts(picked.classes),
        actions=settled.actions,
        dispatched=tuple(picked.launched),
        would_dispatch=tuple(t.slug for t in picked.chosen) if options.dry_run else (),
        attention=tuple(c for c in picked.classes if c.bucket == "needs_attention"),
        warnings=settled.warnings,
        dry_run=options.dry_run,
    )
    if not options.dry_run:
        seen = _seen_ready(picked.classes, ready_since, scene.stamp)
        registry.write_cycle(
            {
                **snapshot(result, picked.classes, scene, options, seen),
                "orphan_since": dict(settled.orphan_since),
            }
        )
    return result


def _check_command(config: Config, options: CycleOptions) -> None:
    if options.dispatch and not options.dry_run and not config.worker.command:
        raise ConfigError(
            "[worker] command is not set, so nothing can be dispatched; set it to the agent's "
            'argument list, e.g. command = ["my-agent", "{prompt_file}"], or run with --no-dispatch'
        )


@dataclass(frozen=True)
class _Picked:
    classes: list[state.Classification]  # after dispatch
    chosen: list[Task]
    launched: list[Dispatched]


def _dispatch(
    scene: Scene,
    tasks: TaskSet,
    entries: Mapping[str, RegistryEntry],
    ready_since: Mapping[str, str],
    options: CycleOptions,
) -> _Picked:
    """Classify, pick the tasks that fit the free capacity, dispatch them, classify again."""
    limit = options.max_parallel or scene.config.heartbeat.max_parallel
    free = dispatch.free_slots(list(entries.values()), limit)
    classes = _classify(tasks, entries, scene, ready_since, free > 0)
    chosen = []
    if options.dispatch and free:
        chosen = dispatch.candidates(classes, tasks, scene, options.owners)[:free]
    launched = [] if options.dry_run else dispatch.dispatch(scene, tasks, chosen)
    if launched:
        entries = scene.registry.entries()
        classes = _classify(tasks, entries, scene, ready_since, free > len(launched))
    return _Picked(classes, chosen, launched)


def _ignore_registry(config: Config) -> None:
    """Keep the registry out of ``git status`` through info/exclude when it lives in the main worktree."""
    repo = config.repo
    if repo is None or not config.registry_dir.is_relative_to(repo.main_root):
        return
    rel = config.registry_dir.relative_to(repo.main_root).as_posix()
    if rel != ".":
        git.ensure_excluded(repo.common_dir, f"/{rel}/")


def _classify(
    tasks: TaskSet,
    entries: Mapping[str, RegistryEntry],
    scene: Scene,
    ready_since: Mapping[str, str],
    free: bool,
) -> list[state.Classification]:
    inputs = state.Inputs(
        now=scene.now,
        limits=state.Limits.from_config(scene.config.raw),
        dead_workers=runtime.dead_workers(entries),
        blobs=tasks.blobs,
        ready_since=ready_since,
        capacity_free=free,
    )
    return state.classify_all(tasks, entries, inputs)


def _seen_ready(
    classes: Sequence[state.Classification], before: Mapping[str, str], stamp: str
) -> dict[str, str]:
    """When each task now ready was first seen ready (carried over from the last cycle)."""
    return {c.slug: before.get(c.slug, stamp) for c in classes if c.state in dispatch.DISPATCHABLE_STATES}


# -- snapshot.json -----------------------------------------------------------------------------


def snapshot(
    result: CycleResult,
    classes: Sequence[state.Classification],
    scene: Scene,
    options: CycleOptions,
    ready_since: Mapping[str, str],
) -> dict[str, Any]:
    """The ``snapshot.json`` document: who ran the cycle, when, how long, and every task's state."""
    actor = scene.registry.actor
    return {
        "version": SNAPSHOT_VERSION,
        "owner": f"{actor.who}@{scene.host}",
        "host": scene.host,
        "pid": os.getpid(),
        "generated_at": result.generated_at,
        "duration_ms": result.duration_ms,
        "ref": result.ref,
        "commit": result.commit,
        "owners": list(options.owners),
        "counts": dict(result.counts),
        "attention": [_attention(c) for c in result.attention],
        "tasks": {c.slug: _row(c) for c in classes},
        "actions": [a.to_dict() for a in result.actions],
        "dispatched": [d.to_dict() for d in result.dispatched],
        "warnings": list(result.warnings),
        "ready_since": dict(ready_since),
    }


def _row(c: state.Classification) -> dict[str, Any]:
    row: dict[str, Any] = {"bucket": c.bucket, "state": c.state}
    if c.signals:
        row["signals"] = [s.kind for s in c.signals]
    return row


def _attention(c: state.Classification) -> dict[str, Any]:
    owner = (c.task.owner if c.task else None) or (c.entry.owner if c.entry else None)
    return {
        "slug": c.slug,
        "owner": owner,
        "state": c.state,
        "signals": [s.to_dict() for s in c.signals],
    }


# -- --loop ------------------------------------------------------------------------------------


def loop(
    config: Config,
    options: CycleOptions,
    every: float,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    cycles: int | None = None,
) -> Iterator[CycleResult | TaskfilesError]:
    """Run a cycle every ``every`` seconds (``cycles`` times; None: forever), yielding each
    result, or the error that ended a cycle: one bad cycle does not end the loop.

    ``every`` 0 means ``[heartbeat] interval_seconds``.
    """
    every = every or config.heartbeat.interval_seconds
    count = 0
    while cycles is None or count < cycles:
        began = time.monotonic()
        try:
            yield run_cycle(config, options, clock=clock)
        except TaskfilesError as error:
            yield error
        count += 1
        if cycles is None or count < cycles:
            sleep(max(0.0, every - (time.monotonic() - began)))
