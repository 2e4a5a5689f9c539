"""Where the planning record meets the registry: claims, status, migration.

The registry knows runtime state and nothing about task files; task files know
nothing about the registry. These functions read both and decide, calling the
one classification function in ``state``.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import process, query, state
from .config import Config
from .errors import ConflictError, NotFoundError, TaskfilesError
from .records import RegistryEntry, format_time, parse_time
from .registry import Registry
from .taskfile import Task
from .tasksource import TaskSet, load


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
class EntriesRead:
    """Registry entries for a planning view, or why they could not be read."""

    entries: Mapping[str, RegistryEntry]
    warning: str | None = None


def read_entries(config: Config, registry: Registry | None = None) -> EntriesRead:
    """Every registry entry, read once, for views that must work without the registry.

    No registry folder means nothing ever ran: no entries, and no store is opened.
    An unreadable registry is a warning here, not an error: the plan is still shown.
    """
    if registry is None:
        if not config.registry_dir.exists():
            return EntriesRead({})
        from .registry import open_registry

        registry = open_registry(config)
    try:
        return EntriesRead(registry.entries())  # every entry checked here, not mid-listing
    except TaskfilesError as error:
        return EntriesRead({}, f"runtime state not shown: {error}")


def runtime_view(entry: RegistryEntry | None, now: datetime) -> dict[str, Any] | None:
    """The runtime facts ``task list``/``show`` print next to a task (None: no entry)."""
    if entry is None:
        return None
    return {
        "state": entry.state,
        "lease": entry.lease,
        "attempt": entry.attempt,
        "max_attempts": entry.max_attempts,
        "worker": entry.worker,
        "heartbeat_at": entry.heartbeat_at,
        "heartbeat_age_seconds": _age_seconds(entry.heartbeat_at, now),
    }


def claim(
    config: Config, registry: Registry, slug: str, *, worker: str, ref: str | None = None
) -> RegistryEntry:
    """Claim a ready task whose dependencies are completed; ConflictError otherwise."""
    source = planning_source(config, ref, working_tree=ref is None)
    task = query.find(source.tasks, slug)
    refusal = _not_claimable(task, source.tasks)
    if refusal:
        raise ConflictError(refusal)
    blob = source.tasks.blobs.get(slug)
    return registry.claim(
        slug, worker=worker, owner=task.owner, max_attempts=_max_attempts(config), task_blob=blob
    )


def _not_claimable(task: Task, tasks: TaskSet) -> str | None:
    """Why the planning record forbids claiming ``task``; the registry checks the rest."""
    slug = task.slug
    if state.legacy_claim(task):
        keys = ", ".join(f"{key}: {value}" for key, value in task.legacy.items())
        return f"'{slug}' is claimed in its frontmatter by an older tool ({keys}); run 'task migrate' first"
    if task.status != "ready":
        hint = "run 'task ready' and land it first" if task.status == "not_started" else "it is finished"
        return f"'{slug}' is {task.status}, not ready; {hint}"
    if task.legacy:  # classified needs_attention (legacy_runtime_keys), so the heartbeat skips it too
        keys = ", ".join(sorted(task.legacy))
        return f"'{slug}' has runtime keys in its frontmatter ({keys}); run 'task migrate' first"
    if not query.deps_met(task, tasks):
        statuses = {dep: _status_of(tasks, dep) for dep in task.depends_on}
        blocked = [f"{dep} ({status})" for dep, status in statuses.items() if status != "completed"]
        return f"'{slug}' waits for {', '.join(blocked)}; its dependencies must be completed first"
    return None


def _status_of(tasks: TaskSet, slug: str) -> str:
    dep = tasks.get(slug)
    return dep.status if dep else "missing"


def claim_next(
    config: Config, registry: Registry, *, worker: str, owner: str | None = None, ref: str | None = None
) -> RegistryEntry | None:
    """Pick and claim the next task, recording its owner; never the same task twice.

    Candidates go to the registry in runs of one owner, each run one transaction
    that claims its first claimable task, so the claim records the task's owner
    as ``task claim`` does, and two agents racing still never get the same task.
    """
    source = planning_source(config, ref, working_tree=ref is None)
    canonical = config.canonical_owner(owner)
    candidates = [
        task
        for task in query.dispatch_order(source.tasks, config)
        if (canonical is None or task.owner == canonical) and not task.legacy
    ]
    for task_owner, run in itertools.groupby(candidates, key=lambda task: task.owner):
        entry = registry.claim_first(
            [task.slug for task in run],
            worker=worker,
            owner=task_owner,
            max_attempts=_max_attempts(config),
            task_blobs=source.tasks.blobs,
        )
        if entry is not None:
            return entry
    return None


def _max_attempts(config: Config) -> int:
    return config.worker.max_attempts


@dataclass(frozen=True)
class StatusReport:
    """Everything ``task status`` shows; the status page and heartbeat share its parts."""

    generated_at: str
    ref: str | None
    classes: tuple[state.Classification, ...]
    cycle: Mapping[str, Any] | None  # the last heartbeat cycle's summary, if any
    warnings: tuple[str, ...] = ()
    registry_error: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return state.counts(self.classes)

    @property
    def attention(self) -> list[state.Classification]:
        """One row per task with a signal (needs_attention, or done with a lingering entry)."""
        return attention(self.classes)

    def to_dict(self, rows: Sequence[state.Classification] | None = None) -> dict[str, Any]:
        """JSON form: generated_at, ref, counts, cycle, registry_error, attention, tasks, warnings.

        ``rows`` narrows ``tasks`` and ``attention`` (``filter_classes``); counts stay whole.
        """
        shown = self.classes if rows is None else rows
        return {
            "generated_at": self.generated_at,
            "ref": self.ref,
            "counts": self.counts,
            "cycle": dict(self.cycle) if self.cycle else None,
            "registry_error": self.registry_error,
            "attention": [
                {"slug": c.slug, "bucket": c.bucket, "signals": [s.to_dict() for s in c.signals]}
                for c in attention(shown)
            ],
            "tasks": [c.to_dict() for c in shown],
            "warnings": list(self.warnings),
        }


def attention(rows: Iterable[state.Classification]) -> list[state.Classification]:
    """The rows a human should look at: every one that carries a signal."""
    return [c for c in rows if c.signals or c.bucket == "needs_attention"]


def status(
    config: Config,
    registry: Registry,
    *,
    now: datetime,
    ref: str | None = None,
    working_tree: bool = False,
) -> StatusReport:
    """Classify every task against the registry at ``now``."""
    source = planning_source(config, ref, working_tree=working_tree)
    warnings = [source.note] if source.note else []
    try:
        entries = registry.entries()
        cycle = registry.read_cycle()
        registry_error = None
    except TaskfilesError as error:
        entries, cycle, registry_error = {}, None, str(error)
    ready_since = (cycle or {}).get("ready_since")
    inputs = state.Inputs(
        now=now,
        limits=state.Limits.from_config(config.raw),
        dead_workers=dead_workers(entries),
        blobs=source.tasks.blobs if source.ref else {},
        ready_since=ready_since if isinstance(ready_since, dict) else {},
        capacity_free=capacity_free(config, entries),
    )
    classes = state.classify_all(source.tasks, entries, inputs)
    return StatusReport(
        format_time(now),
        source.ref,
        tuple(classes),
        _cycle_summary(cycle, now),
        tuple(warnings),
        registry_error,
    )


def capacity_free(config: Config, entries: Mapping[str, RegistryEntry]) -> bool:
    """Whether the heartbeat could dispatch one more task now, counted as its cycle counts."""
    from .dispatch import free_slots  # dispatch imports reconcile, which imports this module

    return free_slots(list(entries.values()), config.heartbeat.max_parallel) > 0


def dead_workers(entries: Mapping[str, RegistryEntry]) -> frozenset[str]:
    """Live entries on this host whose worker process is gone (pid + start time)."""
    host = socket.gethostname()
    return frozenset(
        slug
        for slug, entry in entries.items()
        if entry.is_live
        and entry.pid is not None
        and entry.host == host
        and not process.is_alive(entry.pid, entry.pid_start_time)
    )


def _cycle_summary(cycle: Mapping[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    if not cycle:
        return None
    keys = ("generated_at", "owner", "duration_ms", "host", "counts")
    summary = {key: cycle.get(key) for key in keys}
    summary["age_seconds"] = _age_seconds(cycle.get("generated_at"), now)
    return summary


def _age_seconds(stamp: object, now: datetime) -> float | None:
    """How old ``stamp`` is; None when snapshot.json holds no readable time."""
    try:
        return round((now - parse_time(str(stamp))).total_seconds(), 1) if stamp else None
    except (TypeError, ValueError):
        return None


def filter_classes(
    report: StatusReport, config: Config, *, slug: str | None = None, owner: str | None = None
) -> list[state.Classification]:
    """The report's rows for one slug or one (canonical) owner."""
    canonical = config.canonical_owner(owner)
    rows = [c for c in report.classes if slug is None or c.slug == slug]
    if slug is not None and not rows:
        raise NotFoundError(f"no task or registry entry named {slug!r}; 'task list' shows the slugs")
    return [c for c in rows if canonical is None or _owner(c) == canonical]


def _owner(c: state.Classification) -> str | None:
    return (c.task.owner if c.task else None) or (c.entry.owner if c.entry else None)
