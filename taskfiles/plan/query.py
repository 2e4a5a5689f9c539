"""Questions over a loaded task set: find one, filter many, what a task waits for.

Read-only and cheap to import: the warm ``task list`` path runs through here. Which
task is ready to dispatch is not a question of the plan alone: ``status.observe`` answers it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ..config import Config
from ..errors import NotFoundError, TaskFileError, UsageError
from . import source
from .source import TaskSet
from .taskfile import STATUSES, Task


def find(tasks: TaskSet, slug: str) -> Task:
    """The task with this slug, or NotFoundError that says where it looked."""
    task = tasks.get(slug)
    if task is not None:
        return task
    skipped = _named(tasks, slug)
    where = f" at {tasks.ref}" if tasks.ref else ""
    if skipped:
        raise TaskFileError(f"{skipped} cannot be read; run 'task validate {skipped}'")
    raise NotFoundError(f"no task with slug {slug!r}{where}; 'task list' shows the slugs")


def locate(config: Config, slug: str) -> str:
    """The repository-relative path of the task file ``slug`` names: in the working tree,
    else at the base ref. A file that cannot be parsed still names its task (it is known,
    only unreadable). NotFoundError with the closest slug when neither has it."""
    sets = [source.load(config, bodies=False)]
    if sets[0].get(slug) is None and _named(sets[0], slug) is None:
        with contextlib.suppress(NotFoundError):  # no base ref yet (a new repository)
            sets.append(source.load(config, config.base_ref, bodies=False))
    for tasks in sets:
        task = tasks.get(slug)
        found = task.path if task is not None else _named(tasks, slug)
        if found is not None:
            return found
    import difflib  # only on a miss

    slugs = {task.slug for tasks in sets for task in tasks.tasks}
    close = difflib.get_close_matches(slug, sorted(slugs), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise NotFoundError(
        f"no task with slug {slug!r} in the working tree or at {config.base_ref}; "
        f"{hint}'task list' shows the slugs"
    )


def _named(tasks: TaskSet, slug: str) -> str | None:
    """The skipped (unreadable) file of ``tasks`` named ``<slug>.md``, if any."""
    return next((path for path in tasks.skipped if path.rsplit("/", 1)[-1] == f"{slug}.md"), None)


@dataclass(frozen=True)
class Filters:
    """What ``task list`` narrows by. A filter given several values passes a task that has
    any of them (``--status ready --status not_started``, or ``--status ready,not_started``);
    an empty one passes every task. ``created_after`` (inclusive) and ``created_before``
    (exclusive) pass only committed files created in that span."""

    status: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()
    milestone: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    label: tuple[str, ...] = ()
    workstream: tuple[str, ...] = ()
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    @property
    def by_created(self) -> bool:
        """Whether a creation date filter is given (the dates are then needed)."""
        return self.created_after is not None or self.created_before is not None


def values(given: Iterable[str] | None) -> tuple[str, ...]:
    """A repeatable filter's values: each option given, split at commas, blanks dropped."""
    return tuple(part.strip() for value in given or () for part in value.split(",") if part.strip())


def moment(text: str | None, option: str) -> datetime | None:
    """``text`` (an ISO date or date-time) as an aware time: a date is its midnight, a time
    without an offset is UTC. UsageError naming ``option`` when it is neither."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO date or date-time; use e.g. 2026-01-31 or 2026-01-31T12:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def select(
    tasks: Iterable[Task], filters: Filters, config: Config, created: Mapping[str, str] | None = None
) -> list[Task]:
    """The tasks that pass every filter, in path order (``created``: path -> creation time,
    from ``created.created_dates``, needed for the creation filters).

    UsageError for a status or priority no task can have, and for an owner the
    configuration does not know (``Config.owner_named``): such a filter would match
    nothing and look like an empty queue. Milestones, labels and workstreams are free
    text, so an unused one simply matches nothing.
    """
    _check(filters, config)
    owners = {config.owner_named(owner) for owner in filters.owner}
    needle = filters.search.lower() if filters.search else None
    chosen = [
        task
        for task in tasks
        if (not filters.status or task.status in filters.status)
        and (not owners or task.owner in owners)
        and (not filters.milestone or task.milestone in filters.milestone)
        and (not filters.priority or task.priority in filters.priority)
        and (not filters.label or not set(filters.label).isdisjoint(task.labels))
        and (not filters.workstream or task.workstream in filters.workstream)
        and (needle is None or needle in task.title.lower() or needle in task.body.lower())
    ]
    if filters.by_created:
        chosen = [task for task in chosen if _created_within(filters, (created or {}).get(task.path))]
    return chosen


def _created_within(filters: Filters, stamp: str | None) -> bool:
    if stamp is None:  # not committed yet: no creation date to compare
        return False
    when = datetime.fromisoformat(stamp)
    after, before = filters.created_after, filters.created_before
    return (after is None or when >= after) and (before is None or when < before)


def _check(filters: Filters, config: Config) -> None:
    for option, given, valid in (
        ("--status", filters.status, STATUSES),
        ("--priority", filters.priority, config.priorities),
    ):
        for value in given:
            if value not in valid:
                raise UsageError(f"{option} {value!r} is not one of {', '.join(valid)}")


def blocked_by(task: Task, tasks: TaskSet) -> tuple[str, ...]:
    """The dependencies of ``task`` that are missing or not completed, in its order."""
    blocked = []
    for slug in task.depends_on:
        dep = tasks.get(slug)
        if dep is None or dep.status != "completed":
            blocked.append(slug)
    return tuple(blocked)
