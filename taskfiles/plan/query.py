"""Questions over a loaded task set: find one, filter many, what a task waits for.

Read-only and cheap to import: the warm ``task list`` path runs through here. Which
task is ready to dispatch is not a question of the plan alone: ``status.observe`` answers it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..config import Config
from ..errors import NotFoundError, TaskFileError, UsageError
from .source import TaskSet
from .taskfile import STATUSES, Task


def find(tasks: TaskSet, slug: str) -> Task:
    """The task with this slug, or NotFoundError that says where it looked."""
    task = tasks.get(slug)
    if task is not None:
        return task
    skipped = [path for path in tasks.skipped if path.rsplit("/", 1)[-1] == f"{slug}.md"]
    where = f" at {tasks.ref}" if tasks.ref else ""
    if skipped:
        raise TaskFileError(f"{skipped[0]} cannot be read; run 'task validate {skipped[0]}'")
    raise NotFoundError(f"no task with slug {slug!r}{where}; 'task list' shows the slugs")


@dataclass(frozen=True)
class Filters:
    """What ``task list`` narrows by. A filter given several values passes a task that has
    any of them (``--status ready --status not_started``); an empty one passes every task."""

    status: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()
    milestone: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    label: tuple[str, ...] = ()
    workstream: tuple[str, ...] = ()
    search: str | None = None


def select(tasks: Iterable[Task], filters: Filters, config: Config) -> list[Task]:
    """The tasks that pass every filter, in path order.

    UsageError for a status or priority no task can have, and for an owner the
    configuration does not know (``Config.owner_named``): such a filter would match
    nothing and look like an empty queue. Milestones, labels and workstreams are free
    text, so an unused one simply matches nothing.
    """
    _check(filters, config)
    owners = {config.owner_named(owner) for owner in filters.owner}
    needle = filters.search.lower() if filters.search else None
    return [
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
