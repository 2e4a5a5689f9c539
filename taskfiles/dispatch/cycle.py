"""The heartbeat cycle (``task-manager-heartbeat``): what cron runs every minute.

One cycle, idempotent:

1. take this host's cycle lock without waiting (another cycle holds it: report its pid, do nothing);
2. with ``[heartbeat] fetch``, fetch the base ref's branch (``fetch``; a failure is a warning);
   read the task files at the base ref and ``observe`` them against the registry (entries,
   each host's last cycle record and this host's dead workers read once, every task
   classified once);
3. reconcile (``reconcile``) from that observation: dead and stalled workers, retries,
   completions, orphans; observe again only when reconciling wrote something;
4. dispatch the observation's dispatchable tasks up to the free capacity: what is free on all
   hosts together and, under ``max_parallel_per_host``, on this one (``launch``);
5. write this host's cycle record (``snapshot.json``) for readers that must not recompute.

Several hosts may run cycles on one registry, each from its own clone: each names itself
by its host identity (``process.host_identity``), probes and kills only its own workers,
and judges the others' by their heartbeats.

A cycle never writes a tracked file: task files are read at a ref, worktrees are
ignored through ``info/exclude``, and prompts and logs live with the registry and
this host's files.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import git, process, state
from ..config import Config
from ..errors import ConfigError, TaskfilesError
from ..plan import cache
from ..plan.source import load
from ..plan.taskfile import Task
from ..registry import CycleRecord, Registry, open_registry
from ..registry.records import utc_now
from ..status import Observation, Source, classify, observe
from . import fetch, reconcile
from .fetch import Fetched
from .hostfiles import HostFiles
from .reconcile import Action
from .scene import Scene

if TYPE_CHECKING:
    from .launch import Dispatched

Clock = Callable[[], datetime]
Timer = Callable[[], float]  # seconds on a monotonic clock, as time.perf_counter


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
    skipped: tuple[str, ...] = ()  # task files at the base ref that could not be read
    dry_run: bool = False
    fetched: Fetched | None = None  # the fetch of the base ref, when [heartbeat] fetch asks for one
    host: str = ""  # the host identity the cycle ran as

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
            "host": self.host,
            "fetch": self.fetched.to_dict() if self.fetched else None,
            "counts": dict(self.counts),
            "actions": [a.to_dict() for a in self.actions],
            "dispatched": [d.to_dict() for d in self.dispatched],
            "would_dispatch": list(self.would_dispatch),
            "attention": [_attention(c) for c in self.attention],
            "warnings": list(self.warnings),
            "skipped": list(self.skipped),
        }


# -- the lock ----------------------------------------------------------------------------------


@contextlib.contextmanager
def cycle_lock(config: Config) -> Iterator[int | None]:
    """Hold this host's cycle lock for the block, yielding None; or, when another process
    holds it, yield that process's pid (0 when it has not written it yet) without waiting."""
    with HostFiles.of(config).cycle_lock() as holder:
        yield holder


# -- the cycle ---------------------------------------------------------------------------------


def run_cycle(
    config: Config,
    options: CycleOptions = CycleOptions(),
    *,
    clock: Clock | None = None,
    registry: Registry | None = None,
    timer: Timer = time.perf_counter,
) -> CycleResult:
    """Run one heartbeat cycle, or return at once (``ran=False``) when another one runs.

    Its ``duration_ms`` is measured on ``timer``, from the cycle's start (the lock held) to
    its record written (in the record itself: to the record encoded, just before it is stored)."""
    clock = clock or utc_now
    registry = registry or open_registry(config, clock=clock)
    # The cycle makes ~100k short objects over 10,000 tasks; the cyclic GC would rescan them.
    with cache.gc_paused():
        if options.dry_run:  # changes nothing, so it need not wait its turn
            return _cycle(config, registry, options, clock, timer)
        with cycle_lock(config) as holder:
            if holder is not None:
                return CycleResult(ran=False, holder_pid=holder)
            return _cycle(config, registry, options, clock, timer)


def _cycle(
    config: Config, registry: Registry, options: CycleOptions, clock: Clock, timer: Timer
) -> CycleResult:
    started = timer()
    scene = Scene(config, registry, clock(), process.host_identity(), options.dry_run)
    _check_command(config, options)
    fetched = fetch.fetch_base(config, dry_run=options.dry_run)
    # Without the bodies: a dispatch reads its task's (launch); 90 MB at 50,000 tasks.
    source = Source(load(config, config.base_ref, bodies=False), config.base_ref)
    if not options.dry_run:
        _ignore_registry(config)
    seen = observe(
        config, registry, now=scene.now, source=source, max_parallel=options.max_parallel, tolerant=False
    )
    settled = reconcile.reconcile(scene, seen)
    if settled.actions and not options.dry_run:  # its writes changed the entries: read them again
        seen = _again(scene, seen, options)
    chosen, launched, seen = _dispatch(scene, seen, options)
    result = CycleResult(
        ran=True,
        generated_at=scene.stamp,
        ref=config.base_ref,
        commit=source.tasks.commit,
        counts=seen.counts,
        actions=settled.actions,
        dispatched=tuple(launched),
        would_dispatch=tuple(t.slug for t in chosen) if options.dry_run else (),
        attention=tuple(seen.attention),
        warnings=(*_warning(fetched), *settled.warnings),
        skipped=seen.skipped,
        dry_run=options.dry_run,
        fetched=fetched,
        host=scene.host,
    )
    if not options.dry_run:
        kept = record(result, seen, scene, options, settled.orphan_since)
        registry.write_cycle(kept, elapsed=lambda: _since(started, timer))
    # Read after the record is written: the cycle's duration counts building and writing it.
    return replace(result, duration_ms=round(_since(started, timer), 1))


def _since(started: float, timer: Timer) -> float:
    """Milliseconds from ``started`` to now on ``timer``."""
    return (timer() - started) * 1000


def _warning(fetched: Fetched | None) -> tuple[str, ...]:
    return (fetched.warning,) if fetched and fetched.warning else ()


def _check_command(config: Config, options: CycleOptions) -> None:
    if options.dispatch and not options.dry_run and not config.worker.command:
        raise ConfigError(
            "[worker] command is not set, so nothing can be dispatched; set it to the agent's "
            'argument list, e.g. command = ["my-agent", "{prompt_file}"], or run with --no-dispatch'
        )


def _dispatch(
    scene: Scene, seen: Observation, options: CycleOptions
) -> tuple[list[Task], list[Dispatched], Observation]:
    """Pick the dispatchable tasks that fit the capacity free for this host and dispatch them;
    after a launch, classify again (the claims changed the entries): the cycle's last word."""
    free = seen.capacity.free_on(scene.host)
    chosen: list[Task] = []
    launched: list[Dispatched] = []
    if options.dispatch and free:
        owners = [scene.config.canonical_owner(owner) or owner for owner in options.owners]
        candidates = seen.dispatchable(owners)
        chosen = candidates[:free]
        if not options.dry_run and chosen:
            from . import launch  # only a cycle that starts a worker pays for launch, worker, prompt

            # Every candidate in order, not only the first ``free``: a task another host
            # claimed meanwhile is passed over, and the next one takes its slot.
            launched = launch.dispatch(scene, seen.tasks, candidates, seen.capacity)
    if launched:
        seen = _again(scene, seen, options, started={d.slug for d in launched})
    return chosen, launched, seen


def _again(
    scene: Scene, seen: Observation, options: CycleOptions, started: AbstractSet[str] = frozenset()
) -> Observation:
    """Classify the entries as the cycle's own writes left them: the same tasks, the same
    records, the same probe of dead workers (less the tasks it ``started`` since, whose
    workers are new); only the entries are read again."""
    return classify(
        scene.config,
        seen.source,
        scene.registry.unreleased(),  # as observe() reads them
        seen.record,
        now=scene.now,
        max_parallel=options.max_parallel,
        dead=seen.inputs.dead_workers - started,
        hosts=tuple(view.record for view in seen.hosts),
    )


def _ignore_registry(config: Config) -> None:
    """Keep the registry out of ``git status`` through info/exclude when it lives in the main worktree."""
    repo = config.repo
    if repo is None or not config.registry_dir.is_relative_to(repo.main_root):
        return
    rel = config.registry_dir.relative_to(repo.main_root).as_posix()
    if rel != ".":
        git.ensure_excluded(repo.common_dir, f"/{rel}/")


def _seen_ready(seen: Observation, stamp: str) -> dict[str, str]:
    """When each task now ready was first seen ready (carried over from the last cycle)."""
    before = seen.record.ready_since if seen.record else {}
    return {c.slug: before.get(c.slug, stamp) for c in seen.rows if state.dispatchable(c)}


# -- snapshot.json -----------------------------------------------------------------------------


def record(
    result: CycleResult,
    seen: Observation,
    scene: Scene,
    options: CycleOptions,
    orphan_since: Mapping[str, str],
) -> CycleRecord:
    """The cycle record (``snapshot.json``): who ran the cycle, when, every task's state, and
    the cycle's memory for the next one. How long it took is stamped as it is written
    (``Registry.write_cycle``'s ``elapsed``)."""
    actor = scene.registry.actor
    return CycleRecord(
        generated_at=result.generated_at or scene.stamp,
        owner=f"{actor.who}@{scene.host}",
        host=scene.host,
        pid=os.getpid(),
        ref=result.ref,
        commit=result.commit,
        owners=tuple(options.owners),
        counts=dict(result.counts),
        attention=tuple(_attention(c) for c in result.attention),
        tasks=_rows(seen.rows),
        actions=tuple(a.to_dict() for a in result.actions),
        dispatched=tuple(d.to_dict() for d in result.dispatched),
        warnings=result.warnings,
        skipped=result.skipped,
        ready_since=_seen_ready(seen, scene.stamp),
        orphan_since=dict(orphan_since),
    )


def _rows(rows: Iterable[state.Classification]) -> dict[str, dict[str, Any]]:
    """Each task's bucket, state and signals; the rows without a signal that read alike are
    one dict (a record is never changed), which spares ~50,000 of them a cycle."""
    alike: dict[tuple[str, str], dict[str, Any]] = {}
    found: dict[str, dict[str, Any]] = {}
    for c in rows:
        if c.signals:
            found[c.slug] = {"bucket": c.bucket, "state": c.state, "signals": [s.kind for s in c.signals]}
            continue
        row = alike.get((c.bucket, c.state))
        if row is None:
            row = alike[(c.bucket, c.state)] = {"bucket": c.bucket, "state": c.state}
        found[c.slug] = row
    return found


def _attention(c: state.Classification) -> dict[str, Any]:
    return {
        "slug": c.slug,
        "owner": c.owner,
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
