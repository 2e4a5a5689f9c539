"""The task page's content: the file, its classification, links, registry entry, logs, events.

The classification comes from the shared reading; the entry, logs and events
are read fresh from the registry for this request (released entries included,
which the classification leaves out). Whatever part of the registry cannot be
read is reported next to the part that could.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from ..errors import NotFoundError, TaskfilesError, UsageError
from ..history import History, timeline
from ..plan import graph
from ..plan.taskfile import DURABLE_KEYS, Task
from ..registry import Registry
from ..registry.records import LEVELS, Event, LogRecord, RegistryEntry
from ..registry.runlog import matches
from ..slugs import check_slug
from ..state import Classification
from .board import Reading
from .markdown import render

ACTIONS = ("retry", "request_changes", "stop", "park", "unpark", "release")
LOG_TAIL = 500
EVENT_LIMIT = 200


@dataclass(frozen=True)
class LogFilter:
    """Which attempt's log, at which level and from which source (None: any)."""

    attempt: int | None = None
    level: str | None = None
    source: str | None = None

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> LogFilter:
        """Read ``attempt``, ``level`` and ``source``; UsageError for values that cannot be."""
        attempt = params.get("attempt") or None
        if attempt is not None and not attempt.isdigit():
            raise UsageError(f"attempt {attempt!r} is not a number")
        level = params.get("level") or None
        if level is not None and level not in LEVELS:
            raise UsageError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
        source = (params.get("source") or "").strip()[:100] or None
        return cls(int(attempt) if attempt else None, level, source)


@dataclass(frozen=True)
class Logs:
    """One attempt's log lines (the last ``LOG_TAIL`` passing the filters)."""

    attempt: int | None
    attempts: tuple[int, ...]
    records: tuple[LogRecord, ...] = ()
    total: int = 0  # lines passing the filters, before the tail was cut
    sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None
    last: int = 0  # the position read up to: the page's live stream goes on after it


@dataclass(frozen=True)
class TaskView:
    """Everything the task page shows."""

    slug: str
    row: Classification | None
    task: Task | None
    entry: RegistryEntry | None
    body_html: Markup
    frontmatter: tuple[tuple[str, Any], ...]
    dependencies: tuple[graph.Link, ...]
    dependents: tuple[graph.Link, ...]
    actions: tuple[str, ...]
    logs: Logs
    events: tuple[Event, ...]
    events_total: int = 0
    errors: tuple[str, ...] = field(default=())
    history: History | None = None  # the timeline: file commits and registry events


def valid_slug(slug: str) -> bool:
    """True when ``slug`` can name a task (no '/', no leading '.', so no path tricks)."""
    try:
        check_slug(slug)
    except UsageError:
        return False
    return len(slug) <= 200


def build(reading: Reading, registry: Registry, slug: str, logs: LogFilter) -> TaskView:
    """The page for ``slug``; NotFoundError when neither a task nor a registry entry has it."""
    row = reading.by_slug.get(slug)
    errors: list[str] = []
    entry = _entry(registry, slug, row, errors)
    if row is None and entry is None:
        raise NotFoundError(f"no task or registry entry named {slug!r}")
    task = row.task if row else None
    every = _events(registry, slug, errors)
    events, total = tuple(every[::-1][:EVENT_LIMIT]), len(every)
    return TaskView(
        slug=slug,
        row=row,
        task=task,
        entry=entry,
        body_html=render(task.body) if task else Markup(""),
        frontmatter=_frontmatter(task) if task else (),
        dependencies=tuple(graph.dependencies(reading.tasks, slug)),
        dependents=tuple(graph.dependents(reading.tasks, slug)),
        actions=actions_for(entry),
        logs=_logs(registry, slug, entry, logs),
        events=events,
        events_total=total,
        errors=tuple(errors),
        history=_history(reading, slug, task, every, errors),
    )


def _entry(
    registry: Registry, slug: str, row: Classification | None, errors: list[str]
) -> RegistryEntry | None:
    try:
        return registry.find(slug)
    except TaskfilesError as error:
        errors.append(f"registry: {error}")
        return row.entry if row else None


def _events(registry: Registry, slug: str, errors: list[str]) -> tuple[Event, ...]:
    try:
        return registry.events(slug).events
    except TaskfilesError as error:
        errors.append(f"events: {error}")
        return ()


def _history(
    reading: Reading, slug: str, task: Task | None, events: tuple[Event, ...], errors: list[str]
) -> History | None:
    """The task's timeline (``history.timeline``: the file's commits and ``events``); what
    cannot be read of it is said with the page's other errors."""
    try:
        return timeline(reading.config, slug, events, path=task.path if task else None)
    except NotFoundError:  # no file and no event: an entry alone has no history to show
        return None
    except TaskfilesError as error:
        errors.append(f"history: {error}")
        return None


def _frontmatter(task: Task) -> tuple[tuple[str, Any], ...]:
    data = task.to_dict()
    rows = [(key, data.get(key)) for key in DURABLE_KEYS]
    rows += [(key, value) for key, value in task.extra.items()]
    rows += [(f"{key} (runtime key)", value) for key, value in task.legacy.items()]
    return tuple((key, value) for key, value in rows if value not in (None, [], ""))


def actions_for(entry: RegistryEntry | None) -> tuple[str, ...]:
    """The operator actions the registry accepts for ``entry`` in its state."""
    if entry is None or entry.state == "released":
        return ()
    if entry.is_live:
        return ("stop", "park", "release")
    if entry.state == "parked":
        return ("unpark", "retry", "release")
    if entry.state == "exited":  # in review: the reviewer can send it back with what to change
        return ("request_changes", "retry", "park", "release")
    return ("retry", "park", "release")


def _logs(registry: Registry, slug: str, entry: RegistryEntry | None, wanted: LogFilter) -> Logs:
    attempts = tuple(range(1, entry.attempt + 1)) if entry else ()
    try:
        page = registry.logs(slug, attempt=wanted.attempt)
    except NotFoundError as error:
        return Logs(wanted.attempt, attempts, error=None if wanted.attempt is None else str(error))
    except TaskfilesError as error:
        return Logs(wanted.attempt, attempts, error=str(error))
    kept = [r for r in page.records if matches(r, wanted.level, wanted.source)]
    sources = tuple(sorted({r.source for r in page.records}))
    return Logs(
        page.attempt, attempts, tuple(kept[-LOG_TAIL:]), len(kept), sources, page.warnings, last=page.last
    )
