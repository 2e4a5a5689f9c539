"""Run metrics over a recent window, from the event log and the task files.

A run is an attempt that ended: ``task.exited`` (any exit code) or ``task.failed``
(worker gone, stalled). Each such event carries the entry as it left it, so its
start time, finish time and reported cost come with it. Throughput counts tasks
whose durable ``completed_at`` falls in the window: the completion record is
what landed, whatever the registry says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..registry.records import Event, parse_time
from ..state import Classification

RUN_ENDS = frozenset({"task.exited", "task.failed"})


@dataclass(frozen=True)
class Metrics:
    """What the overview's metrics card shows."""

    window_days: int
    runs: int = 0
    succeeded: int = 0
    avg_run_seconds: float | None = None
    retries: int = 0
    cost_window_usd: float = 0.0  # reported by the runs that ended in the window
    cost_total_usd: float = 0.0  # every attempt of every task still in the registry
    completed: int = 0
    per_day: tuple[tuple[str, int], ...] = ()  # (YYYY-MM-DD, tasks completed), oldest first
    error: str | None = None  # the event log could not be read

    @property
    def success_rate(self) -> float | None:
        """Share of runs that exited 0, or None without runs."""
        return self.succeeded / self.runs if self.runs else None

    @property
    def per_day_avg(self) -> float:
        """Tasks completed per day over the window."""
        return self.completed / self.window_days if self.window_days else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (rates as fractions, durations in seconds, costs in USD)."""
        return {
            "window_days": self.window_days,
            "runs": self.runs,
            "succeeded": self.succeeded,
            "success_rate": self.success_rate,
            "avg_run_seconds": self.avg_run_seconds,
            "retries": self.retries,
            "cost_window_usd": round(self.cost_window_usd, 4),
            "cost_total_usd": round(self.cost_total_usd, 4),
            "completed": self.completed,
            "completed_per_day": round(self.per_day_avg, 2),
            "per_day": [{"day": day, "completed": n} for day, n in self.per_day],
            "error": self.error,
        }


def compute(
    events: Sequence[Event] | str, classes: Iterable[Classification], now: datetime, window_days: int
) -> Metrics:
    """Metrics for the ``window_days`` before ``now``; ``events`` may be the reason they are unreadable."""
    cutoff = now - timedelta(days=window_days)
    rows = list(classes)
    total_cost = sum(c.entry.total_cost_usd for c in rows if c.entry is not None)
    days = _days(now, window_days)
    done = Counter(_day(c) for c in rows if c.task is not None and c.task.status == "completed")
    per_day = tuple((day, done.get(day, 0)) for day in days)
    base = Metrics(
        window_days,
        cost_total_usd=total_cost,
        completed=sum(n for _, n in per_day),
        per_day=per_day,
    )
    if isinstance(events, str):
        return _replace(base, error=events)
    return _runs(base, [e for e in events if _after(e.time, cutoff)])


def _runs(base: Metrics, events: list[Event]) -> Metrics:
    ends = [e for e in events if e.type in RUN_ENDS]
    ok = [e for e in ends if e.type == "task.exited" and (e.details or {}).get("exit_code") == 0]
    durations = [d for d in (_duration(e) for e in ends) if d is not None]
    cost = sum(float(_run(e).get("cost_usd") or 0.0) for e in ends)
    return _replace(
        base,
        runs=len(ends),
        succeeded=len(ok),
        avg_run_seconds=round(sum(durations) / len(durations), 1) if durations else None,
        retries=sum(1 for e in events if e.type == "task.retry_scheduled"),
        cost_window_usd=cost,
    )


def _replace(metrics: Metrics, **changes: Any) -> Metrics:
    from dataclasses import replace

    return replace(metrics, **changes)


def _after(stamp: str, cutoff: datetime) -> bool:
    try:
        return parse_time(stamp) >= cutoff
    except ValueError:
        return False


def _run(event: Event) -> Mapping[str, Any]:
    """The run an end event closes: its details (older events: the entry they carried)."""
    return event.details if "started_at" in event.details else (event.entry or {})


def _duration(event: Event) -> float | None:
    run = _run(event)
    start = run.get("started_at") or run.get("claimed_at")
    end = run.get("finished_at") or event.time
    try:
        return (parse_time(end) - parse_time(start)).total_seconds() if start else None
    except (TypeError, ValueError):
        return None


def _day(c: Classification) -> str:
    """The completion day, YYYY-MM-DD (completed_at may be a date or a time)."""
    return str(c.task.completed_at or "")[:10] if c.task else ""


def _days(now: datetime, window_days: int) -> list[str]:
    today = now.date()
    return [(today - timedelta(days=n)).isoformat() for n in range(window_days - 1, -1, -1)]
