"""Where the planning record meets the registry: claims, status, migration.

The registry knows runtime state and nothing about task files; task files know
nothing about the registry. These functions read both and decide, calling the
one classification function in ``state``.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import process, query, state
from .config import Config
from .errors import ConflictError, NotFoundError, TaskfilesError
from .records import RegistryEntry, format_time, parse_time
from .registry import Registry
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


def claim(
    config: Config, registry: Registry, slug: str, *, worker: str, ref: str | None = None
) -> RegistryEntry:
    """Claim a ready task whose dependencies are completed; ConflictError otherwise."""
    source = planning_source(config, ref, working_tree=ref is None)
    task = query.find(source.tasks, slug)
    if task.status != "ready":
        hint = "run 'task ready' and land it first" if task.status == "not_started" else "it is finished"
        raise ConflictError(f"'{slug}' is {task.status}, not ready; {hint}")
    blocked = [dep for dep in task.depends_on if not _completed(source.tasks, dep)]
    if blocked:
        raise ConflictError(f"'{slug}' waits for {', '.join(blocked)} to be completed")
    return registry.claim(slug, worker=worker, owner=task.owner, max_attempts=_max_attempts(config))


def claim_next(
    config: Config, registry: Registry, *, worker: str, owner: str | None = None, ref: str | None = None
) -> RegistryEntry | None:
    """Pick and claim the next task in one registry transaction (never the same task twice)."""
    source = planning_source(config, ref, working_tree=ref is None)
    canonical = config.canonical_owner(owner)
    candidates = [
        task.slug
        for task in query.dispatch_order(source.tasks, config)
        if canonical is None or task.owner == canonical
    ]
    return registry.claim_first(
        candidates, worker=worker, owner=canonical, max_attempts=_max_attempts(config)
    )


def _completed(tasks: TaskSet, slug: str) -> bool:
    dep = tasks.get(slug)
    return dep is not None and dep.status == "completed"


def _max_attempts(config: Config) -> int:
    return int(config.raw.get("worker", {}).get("max_attempts", 3))


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
        """One row per task that needs a human, its signals together."""
        return [c for c in self.classes if c.bucket == "needs_attention"]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: generated_at, ref, counts, cycle, attention, tasks, warnings."""
        return {
            "generated_at": self.generated_at,
            "ref": self.ref,
            "counts": self.counts,
            "cycle": dict(self.cycle) if self.cycle else None,
            "registry_error": self.registry_error,
            "attention": [
                {"slug": c.slug, "signals": [s.to_dict() for s in c.signals]} for c in self.attention
            ],
            "tasks": [c.to_dict() for c in self.classes],
            "warnings": list(self.warnings),
        }


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
    inputs = state.Inputs(
        now=now,
        limits=state.Limits.from_config(config.raw),
        dead_workers=dead_workers(entries),
        blobs=source.tasks.blobs if source.ref else {},
        ready_since=(cycle or {}).get("ready_since", {}),
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
    generated = cycle.get("generated_at")
    summary["age_seconds"] = round((now - parse_time(generated)).total_seconds(), 1) if generated else None
    return summary


def filter_classes(
    report: StatusReport, config: Config, *, slug: str | None = None, owner: str | None = None
) -> list[state.Classification]:
    """The report's rows for one slug or one (canonical) owner."""
    canonical = config.canonical_owner(owner)
    rows = [c for c in report.classes if slug is None or c.slug == slug]
    if slug is not None and not rows:
        raise NotFoundError(f"no task or registry entry named {slug!r}; 'task list' shows the slugs")
    return [c for c in rows if canonical is None or c.to_dict()["owner"] == canonical]
