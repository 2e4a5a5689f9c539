"""Questions over a loaded task set: find one, filter many, what a task waits for.

Read-only and cheap to import: the warm ``task list`` path runs through here. Which
task is ready to dispatch is not a question of the plan alone: ``status.observe`` answers it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..config import Config
from ..errors import NotFoundError, TaskFileError
from .source import TaskSet
from .taskfile import Task


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
    """What ``task list`` narrows by; None means any."""

    status: str | None = None
    owner: str | None = None
    milestone: str | None = None
    priority: str | None = None
    label: str | None = None
    workstream: str | None = None
    search: str | None = None


def select(tasks: Iterable[Task], filters: Filters, config: Config) -> list[Task]:
    """The tasks that pass every filter, in path order."""
    owner = config.canonical_owner(filters.owner)
    needle = filters.search.lower() if filters.search else None
    return [
        task
        for task in tasks
        if (filters.status is None or task.status == filters.status)
        and (owner is None or task.owner == owner)
        and (filters.milestone is None or task.milestone == filters.milestone)
        and (filters.priority is None or task.priority == filters.priority)
        and (filters.label is None or filters.label in task.labels)
        and (filters.workstream is None or task.workstream == filters.workstream)
        and (needle is None or needle in task.title.lower() or needle in task.body.lower())
    ]


def blocked_by(task: Task, tasks: TaskSet) -> tuple[str, ...]:
    """The dependencies of ``task`` that are missing or not completed, in its order."""
    blocked = []
    for slug in task.depends_on:
        dep = tasks.get(slug)
        if dep is None or dep.status != "completed":
            blocked.append(slug)
    return tuple(blocked)
