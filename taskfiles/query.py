"""Questions over a loaded task set: find one, filter many, the dispatch order.

Read-only and cheap to import: the warm ``task list`` path runs through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .config import Config
from .errors import NotFoundError, TaskFileError
from .taskfile import Task
from .tasksource import TaskSet


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


def dispatch_order(tasks: TaskSet, config: Config) -> list[Task]:
    """Ready tasks whose dependencies are all completed: priority first, then slug.

    The slug tie-break is stable across machines and runs, unlike file times.
    """
    rank = {priority: index for index, priority in enumerate(config.priorities)}
    ready = [task for task in tasks.tasks if task.status == "ready" and deps_met(task, tasks)]
    return sorted(ready, key=lambda task: (rank.get(task.priority, len(rank)), task.slug))


def deps_met(task: Task, tasks: TaskSet) -> bool:
    """True when every dependency exists and is completed."""
    for slug in task.depends_on:
        dep = tasks.get(slug)
        if dep is None or dep.status != "completed":
            return False
    return True


def next_task(tasks: TaskSet, config: Config, owner: str | None = None) -> Task | None:
    """The task ``task next`` offers: first in dispatch order, for ``owner`` if given."""
    canonical = config.canonical_owner(owner)
    for task in dispatch_order(tasks, config):
        if canonical is None or task.owner == canonical:
            return task
    return None
