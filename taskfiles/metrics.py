"""Run metrics over a window: what ``task metrics`` prints and ``/api/metrics`` and the overview show.

A run is an attempt that ended (``task.exited`` with any exit code, or ``task.failed``:
worker gone, stalled), read from the registry's live events and from what gc folded
into its rollup before archiving them (``registry.rollup``), each once by its key, so
gc never shortens a window. Cost in the window is what the runs that ended in it
reported; the total is every attempt of every entry, the entries gc removed included.
Throughput counts tasks whose durable ``completed_at`` falls in the window: the
completion record is what landed, whatever the registry says.

A room above plan and registry: the CLI and the server both call ``measure``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from .errors import UsageError
from .plan.taskfile import Task
from .registry import Registry, RegistryEntry
from .registry.records import format_time
from .registry.rollup import Removed, Retry, Rollup, Run, retry_of, run_of

WINDOWS: dict[str, int | None] = {"1d": 1, "7d": 7, "30d": 30, "90d": 90, "all": None}
DEFAULT_WINDOW = "7d"
GROUPINGS = ("owner", "worker", "label")
TOP_TASKS = 10
NONE = "(none)"  # the group of a run whose owner, worker or label is unknown


def window_named(raw: str) -> str:
    """``raw`` when it names a window (``7d``; a bare ``7`` reads as ``7d``); UsageError otherwise."""
    name = raw.strip().lower()
    name = f"{name}d" if name.isdigit() else name
    if name not in WINDOWS:
        raise UsageError(f"window {raw!r} is not one of {', '.join(WINDOWS)}")
    return name


def grouping_named(raw: str | None) -> str | None:
    """``raw`` when it names a grouping (None: no grouping); UsageError otherwise."""
    if raw is None or raw == "":
        return None
    if raw not in GROUPINGS:
        raise UsageError(f"by {raw!r} is not one of {', '.join(GROUPINGS)}")
    return raw


def window_start(window: str, now: datetime) -> datetime | None:
    """Midnight (UTC) of the window's first day: ``7d`` is today and the six days before, so
    the totals are the sums of the days the chart shows; None for ``all``."""
    days = WINDOWS[window]
    if days is None:
        return None
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    return datetime.combine(first, time.min, tzinfo=UTC)


@dataclass(frozen=True)
class Figures:
    """What a set of runs did: counts, durations (seconds), cost and why runs failed."""

    runs: int = 0
    succeeded: int = 0
    duration_p50: float | None = None
    duration_p90: float | None = None
    duration_mean: float | None = None
    cost_usd: float = 0.0
    failure_classes: Mapping[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        """Runs that did not exit 0."""
        return self.runs - self.succeeded

    @property
    def success_rate(self) -> float | None:
        """Share of runs that exited 0, or None without runs."""
        return self.succeeded / self.runs if self.runs else None

    @classmethod
    def of(cls, runs: Sequence[Run]) -> Figures:
        """The figures of ``runs``."""
        durations = sorted(r.duration_s for r in runs if r.duration_s is not None)
        mean = sum(durations) / len(durations) if durations else None
        failures = Counter(r.failure for r in runs if r.failure is not None)
        return cls(
            runs=len(runs),
            succeeded=sum(1 for r in runs if r.ok),
            duration_p50=_percentile(durations, 0.5),
            duration_p90=_percentile(durations, 0.9),
            duration_mean=round(mean, 1) if mean is not None else None,
            cost_usd=sum(r.cost_usd for r in runs),
            failure_classes=dict(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "runs": self.runs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "success_rate": round(self.success_rate, 4) if self.success_rate is not None else None,
            "duration_s": {"p50": self.duration_p50, "p90": self.duration_p90, "mean": self.duration_mean},
            "cost_usd": round(self.cost_usd, 4),
            "failure_classes": dict(self.failure_classes),
        }


def _percentile(ordered: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile of ``ordered`` (None when empty)."""
    if not ordered:
        return None
    return round(ordered[max(math.ceil(share * len(ordered)) - 1, 0)], 1)


@dataclass(frozen=True)
class Day:
    """One day of the window (UTC): tasks completed, runs ended and what they cost."""

    day: str  # YYYY-MM-DD
    completed: int = 0
    runs: int = 0
    cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "day": self.day,
            "completed": self.completed,
            "runs": self.runs,
            "cost_usd": round(self.cost_usd, 4),
        }


@dataclass(frozen=True)
class TaskCost:
    """What one task's runs in the window cost."""

    slug: str
    cost_usd: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"slug": self.slug, "cost_usd": round(self.cost_usd, 4), "runs": self.runs}


@dataclass(frozen=True)
class Metrics:
    """Run metrics over one window, overall, per worker and grouped as asked."""

    window: str
    since: datetime | None  # None: all time
    until: datetime
    overall: Figures
    retries: int
    manual_retries: int
    cost_total_usd: float
    tasks_with_cost: int
    top_tasks: tuple[TaskCost, ...]
    per_day: tuple[Day, ...]
    workers: tuple[tuple[str, Figures], ...]
    by: str | None = None
    groups: tuple[tuple[str, Figures], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def completed(self) -> int:
        """Tasks completed in the window."""
        return sum(day.completed for day in self.per_day)

    @property
    def completed_per_day(self) -> float:
        """Tasks completed per day over the window."""
        return self.completed / len(self.per_day) if self.per_day else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``task metrics --json`` and ``/api/metrics`` (README documents it)."""
        cost_window = self.overall.cost_usd
        return {
            "window": self.window,
            "since": format_time(self.since) if self.since else None,
            "until": format_time(self.until),
            **self.overall.to_dict(),
            "retries": {
                "total": self.retries,
                "manual": self.manual_retries,
                "automatic": self.retries - self.manual_retries,
            },
            "cost_total_usd": round(self.cost_total_usd, 4),
            "cost_per_task": {
                "tasks": self.tasks_with_cost,
                "total_usd": round(cost_window, 4),
                "mean_usd": round(cost_window / self.tasks_with_cost, 4) if self.tasks_with_cost else None,
                "top": [t.to_dict() for t in self.top_tasks],
            },
            "completed": {
                "total": self.completed,
                "per_day_mean": round(self.completed_per_day, 2),
            },
            "per_day": [day.to_dict() for day in self.per_day],
            "workers": [{"worker": key, **f.to_dict()} for key, f in self.workers],
            "by": self.by,
            "groups": [{self.by: key, **f.to_dict()} for key, f in self.groups] if self.by else [],
            "warnings": list(self.warnings),
        }


def measure(
    registry: Registry,
    tasks: Iterable[Task],
    now: datetime,
    window: str = DEFAULT_WINDOW,
    by: str | None = None,
) -> Metrics:
    """The metrics of ``window`` before ``now``, from the registry's events and rollup and the
    task files' completion records; RegistryError when the registry cannot be read."""
    window, by = window_named(window), grouping_named(by)
    since = window_start(window, now)
    page = registry.events(since=since)
    rolled = registry.rollups()
    runs, retries = _history(rolled, page.events, since)
    return compute(
        runs,
        retries,
        tuple(tasks),
        now=now,
        window=window,
        by=by,
        cost_total=total_cost(registry.entries(), rolled.removed),
        warnings=page.warnings,
    )


def _history(rolled: Rollup, events: Iterable[Any], since: datetime | None) -> tuple[list[Run], list[Retry]]:
    """The runs and retries since ``since``: the rollup's and the live events', each once."""
    runs = {r.key: r for r in rolled.runs}
    retries = {r.key: r for r in rolled.retries}
    for event in events:
        if (run := run_of(event)) is not None:
            runs.setdefault(run.key, run)
        elif (retry := retry_of(event)) is not None:
            retries.setdefault(retry.key, retry)
    cutoff = format_time(since) if since else ""
    return (
        sorted((r for r in runs.values() if r.time >= cutoff), key=lambda r: r.time),
        sorted((r for r in retries.values() if r.time >= cutoff), key=lambda r: r.time),
    )


def total_cost(entries: Mapping[str, RegistryEntry], removed: Iterable[Removed]) -> float:
    """Every attempt's cost: the entries' totals, and those of entries gc removed (one still
    there with the same lease is that entry, counted once)."""
    gone = sum(r.cost_usd for r in removed if (e := entries.get(r.slug)) is None or e.lease != r.lease)
    return sum(e.total_cost_usd for e in entries.values()) + gone


def compute(
    runs: Sequence[Run],
    retries: Sequence[Retry],
    tasks: Sequence[Task],
    *,
    now: datetime,
    window: str,
    by: str | None = None,
    cost_total: float = 0.0,
    warnings: Sequence[str] = (),
) -> Metrics:
    """The metrics of ``runs`` and ``retries`` (already within the window) and of the tasks
    completed in it."""
    since = window_start(window, now)
    by_slug = {task.slug: task for task in tasks}
    done = [t for t in tasks if t.status == "completed" and t.completed_at]
    return Metrics(
        window=window,
        since=since,
        until=now,
        overall=Figures.of(runs),
        retries=len(retries),
        manual_retries=sum(1 for r in retries if r.manual),
        cost_total_usd=cost_total,
        tasks_with_cost=len({r.slug for r in runs if r.cost_usd}),
        top_tasks=_top_tasks(runs),
        per_day=_per_day(runs, done, now, WINDOWS[window]),
        workers=_grouped(runs, lambda r: [r.worker or NONE]),
        by=by,
        groups=_grouped(runs, _keys(by, by_slug)) if by else (),
        warnings=tuple(warnings),
    )


def _keys(by: str | None, tasks: Mapping[str, Task]) -> Callable[[Run], list[str]]:
    """The groups one run belongs to: its owner, its worker, or each label of its task."""

    def keys(run: Run) -> list[str]:
        task = tasks.get(run.slug)
        if by == "owner":
            return [run.owner or (task.owner if task else None) or NONE]
        if by == "worker":
            return [run.worker or NONE]
        return list(task.labels) if task and task.labels else [NONE]

    return keys


def _grouped(runs: Sequence[Run], keys: Callable[[Run], list[str]]) -> tuple[tuple[str, Figures], ...]:
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        for key in keys(run):
            groups[key].append(run)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return tuple((key, Figures.of(members)) for key, members in ordered)


def _top_tasks(runs: Sequence[Run]) -> tuple[TaskCost, ...]:
    cost: defaultdict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    for run in runs:
        cost[run.slug] += run.cost_usd
        count[run.slug] += 1
    ranked = sorted((slug for slug in cost if cost[slug]), key=lambda s: (-cost[s], s))
    return tuple(TaskCost(slug, cost[slug], count[slug]) for slug in ranked[:TOP_TASKS])


def _per_day(runs: Sequence[Run], done: Sequence[Task], now: datetime, days: int | None) -> tuple[Day, ...]:
    completed = Counter(utc_day(str(t.completed_at)) for t in done)
    ended = Counter(r.time[:10] for r in runs)
    cost: defaultdict[str, float] = defaultdict(float)
    for run in runs:
        cost[run.time[:10]] += run.cost_usd
    today = now.astimezone(UTC).date()
    if days is None:  # all time: from the first day anything happened
        known = [d for d in (*completed, *ended) if _is_day(d) and d <= today.isoformat()]
        first = date.fromisoformat(min(known)) if known else today
        days = (today - first).days + 1
    span = [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
    return tuple(Day(d, completed.get(d, 0), ended.get(d, 0), cost.get(d, 0.0)) for d in span)


def utc_day(stamp: str) -> str:
    """The UTC day (YYYY-MM-DD) of a ``completed_at``: a time with an offset is moved to
    UTC first (``2026-03-01T23:30:00-05:00`` is the 2nd); a date, or a time without an
    offset, is its own day."""
    try:
        moment = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return stamp[:10]
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date().isoformat()


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
