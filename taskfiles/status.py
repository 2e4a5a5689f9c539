"""``observe()``: the one reading of the world that every reader consumes.

The registry knows runtime state and nothing about task files; task files know
nothing about the registry. ``observe`` reads both once (the entries, each host's
last cycle record, which workers on this host are gone), builds the classification
inputs once (for a task edited since its dispatch, the commit that did it), calls
``state.classify_all`` and returns an ``Observation``: typed rows, attention (one
definition), counts that always match the rows, the free capacity, the dispatch
order, the last cycle's age and staleness (and each dispatch host's), and the task
files it could not read (``skipped``), which every reader names.

``task status``, ``task next`` (with and without ``--claim``) and ``task claim``
(``claims``), the heartbeat (reconcile and dispatch) and ``task serve`` all stand
on it; none of them re-derives readiness, attention or counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from . import git, process, state
from .config import Config
from .errors import GitError, NotFoundError, TaskfilesError
from .plan import query
from .plan.source import TaskSet, load
from .plan.taskfile import Task
from .registry import CycleRecord, Registry, RegistryEntry
from .registry.records import format_time
from .registry.runtimeview import age_seconds
from .slugs import slug_of


@dataclass(frozen=True)
class Source:
    """Which planning state was read: a ref, or the working tree (ref None)."""

    tasks: TaskSet
    ref: str | None
    note: str = ""  # why the ref was not used, when it was not


def planning_source(config: Config, ref: str | None = None, *, working_tree: bool = False) -> Source:
    """Tasks at ``ref``, else at the base ref when it exists, else the working tree."""
    if working_tree:
        return Source(load(config), None)
    if ref is not None:
        return Source(load(config, ref), ref)
    try:
        return Source(load(config, config.base_ref), config.base_ref)
    except NotFoundError:
        note = f"base ref {config.base_ref!r} does not exist yet; showing the working tree"
        return Source(load(config), None, note)


@dataclass(frozen=True)
class CycleView:
    """The last heartbeat cycle as a reader sees it: who, when, how long ago, and whether stale."""

    record: CycleRecord
    age_seconds: float | None  # None: its time cannot be read
    stale_after: float

    @property
    def stale(self) -> bool:
        """True when the cycle is older than ``[limits] cycle_stale_seconds`` (cron stopped?)."""
        return self.age_seconds is None or self.age_seconds > self.stale_after

    def to_dict(self) -> dict[str, Any]:
        """JSON form: generated_at, owner, duration_ms, host, counts, age_seconds, stale, stale_after."""
        record = self.record
        return {
            "generated_at": record.generated_at,
            "owner": record.owner,
            "duration_ms": record.duration_ms,
            "host": record.host,
            "counts": dict(record.counts),
            "age_seconds": self.age_seconds,
            "stale": self.stale,
            "stale_after": self.stale_after,
        }

    def host_dict(self) -> dict[str, Any]:
        """JSON form in ``hosts``: host, generated_at, age_seconds, stale, duration_ms."""
        full = self.to_dict()
        return {key: full[key] for key in ("host", "generated_at", "age_seconds", "stale", "duration_ms")}


# The ``cycle`` of a JSON status before any heartbeat cycle ran: the same keys, and stale.
NO_CYCLE: Mapping[str, Any] = {
    "generated_at": None,
    "owner": None,
    "duration_ms": None,
    "host": None,
    "counts": {},
    "age_seconds": None,
    "stale": True,
    "stale_after": None,
}


@dataclass(frozen=True)
class Capacity:
    """How many workers may run at once (on all hosts together, and on any one host), how many
    claims are live (on every host, and per host), how many more may start."""

    max_parallel: int
    live: int
    max_parallel_per_host: int | None = None  # None: no cap per host besides max_parallel
    live_by_host: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[RegistryEntry], max_parallel: int, per_host: int | None = None) -> Capacity:
        """The capacity left by ``entries``: every live entry counts, whatever its host."""
        live = [entry for entry in entries if entry.is_live]
        by_host = Counter(entry.host for entry in live if entry.host)
        return cls(max_parallel, len(live), per_host, dict(sorted(by_host.items())))

    @property
    def free(self) -> int:
        """Workers that may still start, on all hosts together."""
        return max(0, self.max_parallel - self.live)

    def free_on(self, host: str) -> int:
        """Workers ``host`` may still start: what is free on all hosts, and within its own cap."""
        if self.max_parallel_per_host is None:
            return self.free
        return max(0, min(self.free, self.max_parallel_per_host - self.live_by_host.get(host, 0)))

    def to_dict(self) -> dict[str, Any]:
        """JSON form: max_parallel, live, free, max_parallel_per_host, live_by_host."""
        return {
            "max_parallel": self.max_parallel,
            "live": self.live,
            "free": self.free,
            "max_parallel_per_host": self.max_parallel_per_host,
            "live_by_host": dict(self.live_by_host),
        }


@dataclass(frozen=True)
class Observation:
    """Every task's effective state at one instant, and what follows from it.

    ``rows`` may be narrowed (``narrow``, ``only``); counts and attention always
    follow the rows, so a filtered view never shows a count its rows contradict.
    """

    generated_at: str
    source: Source
    rows: tuple[state.Classification, ...]
    entries: Mapping[str, RegistryEntry]
    inputs: state.Inputs
    capacity: Capacity
    cycle: CycleView | None  # None: no cycle has run (or its record cannot be read)
    priorities: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    registry_error: str | None = None
    hosts: tuple[CycleView, ...] = ()  # each dispatch host's last cycle, newest first

    @property
    def ref(self) -> str | None:
        """The git ref the task files were read at (None: the working tree)."""
        return self.source.ref

    @property
    def tasks(self) -> TaskSet:
        """The planning state that was classified."""
        return self.source.tasks

    @property
    def skipped(self) -> tuple[str, ...]:
        """Task files that could not be read, so no row shows them (repository-relative paths)."""
        return self.tasks.skipped

    @property
    def skipped_note(self) -> str | None:
        """One line naming the first few skipped files and their count, and what tells why."""
        return skipped_note(self.skipped)

    @property
    def notices(self) -> tuple[str, ...]:
        """Every warning a reader shows: ``warnings``, then the skipped files' note."""
        note = self.skipped_note
        return (*self.warnings, note) if note else self.warnings

    @property
    def counts(self) -> dict[str, int]:
        """Rows per bucket, every bucket present."""
        return state.counts(self.rows)

    @property
    def attention(self) -> list[state.Classification]:
        """The rows a human should look at: every one with a signal or in needs_attention."""
        return [c for c in self.rows if c.signals or c.bucket == "needs_attention"]

    @property
    def record(self) -> CycleRecord | None:
        """The last cycle's record as read (it carries the cycle's own memory)."""
        return self.cycle.record if self.cycle else None

    @property
    def stale(self) -> bool:
        """True when no heartbeat cycle ran recently (or ever)."""
        return self.cycle is None or self.cycle.stale

    @cached_property
    def by_slug(self) -> dict[str, state.Classification]:
        """Every row by slug."""
        return {c.slug: c for c in self.rows}

    def row(self, slug: str) -> state.Classification:
        """The row of ``slug``; NotFoundError (naming an unreadable file, if that is why) otherwise."""
        found = self.by_slug.get(slug)
        if found is not None:
            return found
        if any(slug_of(path) == slug for path in self.tasks.skipped):
            query.find(self.tasks, slug)  # names the file that cannot be read
        raise NotFoundError(f"no task or registry entry named {slug!r}; 'task list' shows the slugs")

    def dispatchable(self, owners: Collection[str] = ()) -> list[Task]:
        """Tasks a worker may take now, in dispatch order (priority, then slug), for ``owners``
        (canonical names; empty: all). The one readiness rule: ``state.dispatchable``."""
        wanted = set(owners)
        rank = {priority: index for index, priority in enumerate(self.priorities)}
        ready = [
            c.task
            for c in self.rows
            if c.task is not None and state.dispatchable(c) and (not wanted or c.task.owner in wanted)
        ]
        return sorted(ready, key=lambda task: (rank.get(task.priority, len(rank)), task.slug))

    def narrow(self, rows: Iterable[state.Classification]) -> Observation:
        """The same observation showing only ``rows``."""
        return replace(self, rows=tuple(rows))

    def only(self, config: Config, *, slug: str | None = None, owner: str | None = None) -> Observation:
        """The rows of one slug and/or one (canonical) owner."""
        if slug is None and owner is None:
            return self
        rows = [self.row(slug)] if slug is not None else list(self.rows)
        canonical = config.canonical_owner(owner)
        return self.narrow(c for c in rows if canonical is None or c.owner == canonical)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: generated_at, ref, counts, capacity, cycle, hosts, registry_error, attention,
        tasks, warnings (``notices``), skipped."""
        return {
            "generated_at": self.generated_at,
            "ref": self.ref,
            "counts": self.counts,
            "capacity": self.capacity.to_dict(),
            "cycle": self.cycle.to_dict() if self.cycle else NO_CYCLE,
            "hosts": [view.host_dict() for view in self.hosts],
            "registry_error": self.registry_error,
            "attention": [
                {"slug": c.slug, "bucket": c.bucket, "signals": [s.to_dict() for s in c.signals]}
                for c in self.attention
            ],
            "tasks": [c.to_dict() for c in self.rows],
            "warnings": list(self.notices),
            "skipped": list(self.skipped),
        }


def skipped_note(paths: tuple[str, ...], shown: int = 3) -> str | None:
    """``skipped N unreadable task file(s): a, b, c and N-3 more; run 'task validate'`` (None: none)."""
    if not paths:
        return None
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    names = ", ".join(paths[:shown])
    return f"skipped {len(paths)} unreadable task file(s): {names}{more}; run 'task validate' to see why"


def observe(
    config: Config,
    registry: Registry,
    *,
    now: datetime,
    source: Source,
    max_parallel: int | None = None,
    tolerant: bool = True,
) -> Observation:
    """Read the registry once and classify every task of ``source`` against it at ``now``.

    ``tolerant``: an unreadable registry becomes ``registry_error`` (and no entries)
    instead of an error, for views that still show the plan. ``max_parallel``
    overrides ``[heartbeat] max_parallel`` for the capacity.

    The cycle records are each host's last (``Registry.read_cycles``, newest first); the
    newest is ``cycle``, whose memory (``ready_since``, ``orphan_since``) every host's
    next cycle carries on.
    """
    warnings = [source.note] if source.note else []
    try:
        entries = registry.unreleased()  # a released entry is history: classified as none
        cycles: Sequence[CycleRecord] = registry.read_cycles(rows=False)  # rows: for outside readers
        registry_error = None
    except TaskfilesError as error:
        if not tolerant:
            raise
        entries, cycles, registry_error = {}, (), str(error)
    return classify(
        config,
        source,
        entries,
        cycles[0] if cycles else None,
        now=now,
        max_parallel=max_parallel,
        warnings=tuple(warnings),
        registry_error=registry_error,
        hosts=cycles,
    )


def classify(
    config: Config,
    source: Source,
    entries: Mapping[str, RegistryEntry],
    record: CycleRecord | None,
    *,
    now: datetime,
    max_parallel: int | None = None,
    dead: frozenset[str] | None = None,
    warnings: tuple[str, ...] = (),
    registry_error: str | None = None,
    hosts: Sequence[CycleRecord] | None = None,
) -> Observation:
    """``observe`` for entries already read: the heartbeat re-classifies after its own writes.

    ``dead``: the workers an earlier probe found gone (a dead process stays dead, and the
    workers started since are alive), so a re-classification probes no process again.
    ``record`` is the newest cycle record; ``hosts`` each host's last (default: ``record``).
    """
    settings = config.heartbeat
    capacity = Capacity.of(
        entries.values(), max_parallel or settings.max_parallel, settings.max_parallel_per_host
    )
    blobs = _blobs(source.tasks, entries) if source.ref else {}
    inputs = state.Inputs(
        now=now,
        limits=config.limits,
        dead_workers=dead_workers(entries) if dead is None else dead,
        blobs=blobs,
        ready_since=record.ready_since if record else {},
        capacity_free=capacity.free > 0,
        edits=_edits(config, source.tasks, entries, blobs),
    )
    rows = state.classify_all(source.tasks, entries, inputs)
    return Observation(
        generated_at=format_time(now),
        source=source,
        rows=tuple(rows),
        entries=entries,
        inputs=inputs,
        capacity=capacity,
        cycle=_cycle_view(record, now, config.limits.cycle_stale_after),
        priorities=config.priorities,
        warnings=warnings,
        registry_error=registry_error,
        hosts=tuple(_host_views(record, hosts, now, config.limits.cycle_stale_after)),
    )


def _blobs(tasks: TaskSet, entries: Mapping[str, RegistryEntry]) -> dict[str, str]:
    """slug -> blob id at the ref, for the tasks with an entry: the only ones whose file is
    compared with the one they were dispatched with (a map of every task costs ~30 ms at 50,000)."""
    found = {}
    for slug in entries:
        task = tasks.by_slug.get(slug)
        blob = tasks.paths_to_blobs.get(task.path) if task else None
        if blob is not None:
            found[slug] = blob
    return found


def dead_workers(entries: Mapping[str, RegistryEntry], host: str | None = None) -> frozenset[str]:
    """Live entries on this host (``host``, default ``process.host_identity()``) whose worker
    process is gone: its pid, with its start time, no longer runs.

    A pid is probed only on the host that recorded it; a worker on another host is
    judged by its heartbeat age alone (``stalled``).
    """
    here = host if host is not None else process.host_identity()
    return frozenset(
        slug
        for slug, entry in entries.items()
        if entry.is_live and process.probe(entry.host, entry.pid, entry.pid_start_time, here) is False
    )


def _edits(
    config: Config, tasks: TaskSet, entries: Mapping[str, RegistryEntry], blobs: Mapping[str, str]
) -> dict[str, state.Edit]:
    """For each task that ``state.root_task_edited``, the commit that changed its file on the
    base ref: read from git for those tasks only (a few, each once per process)."""
    found: dict[str, state.Edit] = {}
    for slug, entry in entries.items():
        task = tasks.by_slug.get(slug)
        if task is None or not state.root_task_edited(task, entry, blobs.get(slug)):
            continue
        edit = _edit(config.root, tasks.commit or "", task.path, entry.task_blob or "")
        if edit is not None:
            found[slug] = edit
    return found


@lru_cache(maxsize=1024)
def _edit(root: Path, commit: str, path: str, blob: str) -> state.Edit | None:
    """Immutable once asked: a commit's history never changes (so the server asks git once)."""
    if not commit:
        return None
    try:
        change = git.change_since(root, commit, path, blob)
    except GitError:  # e.g. a shallow clone without the history: since falls back to the dispatch
        return None
    if change is None:
        return None
    return state.Edit(format_time(datetime.fromtimestamp(change.time, UTC)), change.commit)


def _cycle_view(record: CycleRecord | None, now: datetime, stale_after: float) -> CycleView | None:
    if record is None:
        return None
    return CycleView(record, age_seconds(record.generated_at, now), stale_after)


def _host_views(
    record: CycleRecord | None, hosts: Sequence[CycleRecord] | None, now: datetime, stale_after: float
) -> list[CycleView]:
    """Each host's last cycle, newest first (one per host: a store that keeps several keeps the newest)."""
    records = hosts if hosts is not None else ([record] if record else [])
    views: dict[str, CycleView] = {}
    for found in sorted(records, key=lambda r: r.generated_at, reverse=True):
        views.setdefault(found.host, CycleView(found, age_seconds(found.generated_at, now), stale_after))
    return list(views.values())
