"""The overview page's content: every section built from one ``Reading``.

Nothing here classifies: buckets, states and signals come from the observation
``status.observe`` made, the ready queue's order from its ``dispatchable()``.
Long sections are cut to ``limit`` rows and say how many there were.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..config import Config, Limits
from ..state import BUCKETS, Classification, counts
from .board import Reading

FILTER_KEYS = ("owner", "milestone", "label", "workstream", "q")


@dataclass(frozen=True)
class Filters:
    """Owner, milestone, label, workstream and free text; empty means any. Kept in the URL."""

    owner: str = ""
    milestone: str = ""
    label: str = ""
    workstream: str = ""
    q: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> Filters:
        """Read the filters from query parameters (unknown ones are ignored)."""
        return cls(**{key: params.get(key, "").strip()[:200] for key in FILTER_KEYS})

    @property
    def active(self) -> bool:
        """True when any filter is set."""
        return any(getattr(self, key) for key in FILTER_KEYS)

    def query(self, **extra: str) -> str:
        """The URL query string that keeps these filters (plus ``extra``)."""
        pairs = {key: getattr(self, key) for key in FILTER_KEYS} | extra
        return urlencode({k: v for k, v in pairs.items() if v})

    def to_dict(self) -> dict[str, str]:
        """The filters that are set."""
        return {key: getattr(self, key) for key in FILTER_KEYS if getattr(self, key)}


def select(classes: Iterable[Classification], filters: Filters, config: Config) -> list[Classification]:
    """The rows that pass every filter (an orphaned entry has only an owner to match)."""
    if not filters.active:
        return list(classes)
    owner = config.canonical_owner(filters.owner) if filters.owner else None
    needle = filters.q.lower()
    return [c for c in classes if _matches(c, filters, owner, needle)]


def _matches(c: Classification, f: Filters, owner: str | None, needle: str) -> bool:
    task = c.task
    if owner is not None and c.owner != owner:
        return False
    if task is None:
        return not (f.milestone or f.label or f.workstream) and (not needle or needle in c.slug.lower())
    return (
        (not f.milestone or task.milestone == f.milestone)
        and (not f.label or f.label in task.labels)
        and (not f.workstream or task.workstream == f.workstream)
        and (
            not needle
            or needle in c.slug.lower()
            or needle in task.title.lower()
            or needle in task.body.lower()
        )
    )


@dataclass(frozen=True)
class Section:
    """Rows of one bucket as shown, and how many there were in all."""

    rows: tuple[Classification, ...]
    total: int

    @property
    def hidden(self) -> int:
        return self.total - len(self.rows)


@dataclass(frozen=True)
class Overview:
    """Everything the overview template shows."""

    counts: dict[str, int]
    attention: Section
    active: Section
    ready: Section
    waiting: Section
    review: Section
    done: Section
    cycle: dict[str, Any] | None
    cycle_stale: bool
    hosts: list[dict[str, Any]]  # each dispatch host's last cycle, newest first
    limits: Limits
    choices: dict[str, list[str]]  # values seen, for the filter pickers


def build(reading: Reading, filters: Filters, config: Config, *, limit: int = 100) -> Overview:
    """The overview of ``reading`` narrowed by ``filters``."""
    rows = select(reading.seen.rows, filters, config)
    grouped: dict[str, list[Classification]] = {bucket: [] for bucket in BUCKETS}
    for c in rows:
        grouped[c.bucket].append(c)
    shown = {c.slug for c in rows} if filters.active else None
    attention = [c for c in reading.attention if shown is None or c.slug in shown]
    rank = reading.dispatch_rank
    ready = sorted(grouped["ready"], key=lambda c: (rank.get(c.slug, len(rank)), c.slug))
    done = sorted(grouped["done"], key=_completed_key, reverse=True)
    cycle = reading.seen.cycle.to_dict() if reading.seen.cycle else None
    return Overview(
        counts=counts(rows),
        attention=_cut(attention, limit),
        active=_cut(sorted(grouped["active"], key=_started_key), limit),
        ready=_cut(ready, limit),
        waiting=_cut(grouped["waiting"], limit),
        review=_cut(grouped["review"], limit),
        done=_cut(done, min(limit, 20)),
        cycle=cycle,
        cycle_stale=reading.seen.stale,
        hosts=[{**view.host_dict(), "owner": view.record.owner} for view in reading.seen.hosts],
        limits=config.limits,
        choices=reading.memo("choices", lambda: choices(reading)),
    )


def _cut(rows: Sequence[Classification], limit: int) -> Section:
    return Section(tuple(rows[:limit]), len(rows))


def _completed_key(c: Classification) -> str:
    return str(c.task.completed_at or "") if c.task else ""


def _started_key(c: Classification) -> str:
    entry = c.entry
    return (entry.started_at or entry.claimed_at or "") if entry else ""


def choices(reading: Reading) -> dict[str, list[str]]:
    """Every owner, milestone, label and workstream the tasks use, sorted."""
    found: dict[str, set[str]] = {"owner": set(), "milestone": set(), "label": set(), "workstream": set()}
    for task in reading.tasks.tasks:
        found["owner"].add(task.owner or "")
        found["milestone"].add(task.milestone or "")
        found["workstream"].add(task.workstream or "")
        found["label"].update(task.labels)
    return {key: sorted(v for v in values if v) for key, values in found.items()}


def staleness(age: float | None, limits: Limits) -> str:
    """CSS class for a heartbeat age: fresh, late (past half the stall limit) or stale."""
    if age is None:
        return "unknown"
    if age >= limits.stall_after:
        return "stale"
    return "late" if age >= limits.stall_after / 2 else "fresh"
