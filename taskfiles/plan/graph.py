"""The dependency graph between tasks: what a task waits on, what waits on it, cycles.

Everything here is linear in tasks plus dependencies and iterative (no recursion),
so a chain of 10,000 tasks is as cheap as 10,000 independent ones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..slugs import slug_of
from .source import TaskSet
from .taskfile import Task


@dataclass(frozen=True)
class Link:
    """One end of a dependency, as ``task show`` lists it."""

    slug: str
    status: str | None  # None: no readable task has this slug
    title: str | None
    path: str | None  # also set for a file that exists but could not be read

    @property
    def met(self) -> bool:
        """A dependency is met once the task it names is completed."""
        return self.status == "completed"

    @property
    def unreadable(self) -> bool:
        """The slug's file exists but was skipped for its problems."""
        return self.status is None and self.path is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: slug, status, title, path, met, unreadable."""
        return {
            "slug": self.slug,
            "status": self.status,
            "title": self.title,
            "path": self.path,
            "met": self.met,
            "unreadable": self.unreadable,
        }


@dataclass(frozen=True)
class Cycle:
    """A dependency cycle: ``path[0]`` depends on ``path[1]`` ... and the last on ``path[0]``."""

    path: tuple[str, ...]
    group: tuple[str, ...]  # every task in the same strongly connected group, sorted

    def text(self, start: str | None = None, limit: int = 12) -> str:
        """The cycle as 'a -> b -> c -> a', rotated to begin at ``start`` when it is on it.

        A cycle longer than ``limit`` shows its first and last few tasks only.
        """
        size = len(self.path)
        first = self._positions.get(start, 0) if start is not None else 0
        steps = list(range(size)) if size <= limit else [*range(limit - 2), -1, size - 2, size - 1]
        names = [self.path[(first + k) % size] if k >= 0 else f"... ({size - limit} more)" for k in steps]
        return " -> ".join((*names, self.path[first]))

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {name: number for number, name in enumerate(self.path)}


def unreadable(taskset: TaskSet) -> dict[str, str]:
    """Slug -> path of files that were skipped for their problems (and whose slug no task has)."""
    found: dict[str, str] = {}
    for path in taskset.skipped:
        slug = slug_of(path)
        if slug not in taskset.by_slug:
            found.setdefault(slug, path)
    return found


def link(taskset: TaskSet, slug: str, skipped: dict[str, str] | None = None) -> Link:
    """What is known about ``slug``: its task, or its unreadable file, or nothing."""
    task = taskset.get(slug)
    if task is not None:
        return Link(slug, task.status, task.title, task.path)
    path = (unreadable(taskset) if skipped is None else skipped).get(slug)
    return Link(slug, None, None, path)


def dependencies(taskset: TaskSet, slug: str) -> list[Link]:
    """The tasks ``slug`` depends on, in the order its file lists them (repeats dropped)."""
    task = taskset.get(slug)
    if task is None:
        return []
    skipped = unreadable(taskset)
    return [link(taskset, dep, skipped) for dep in dict.fromkeys(task.depends_on)]


def dependents(taskset: TaskSet, slug: str) -> list[Link]:
    """The tasks that depend on ``slug``, sorted by slug."""
    found = [task for task in taskset.tasks if slug in task.depends_on and task.slug != slug]
    return [Link(t.slug, t.status, t.title, t.path) for t in sorted(found, key=lambda t: t.slug)]


def cycles(tasks: Sequence[Task]) -> list[Cycle]:
    """One cycle per strongly connected group of tasks: the shortest through its first slug.

    Self-dependencies are not cycles here (validate reports them on their own);
    dependencies on unknown slugs are ignored.
    """
    index = {task.slug: number for number, task in enumerate(tasks)}
    edges = [
        [index[dep] for dep in dict.fromkeys(task.depends_on) if dep in index and dep != task.slug]
        for task in tasks
    ]
    found = []
    for group in _strongly_connected(edges):
        start = min(group, key=lambda number: tasks[number].slug)
        path = _shortest_cycle(edges, start, set(group))
        slugs = tuple(tasks[number].slug for number in path)
        found.append(Cycle(slugs, tuple(sorted(tasks[number].slug for number in group))))
    return sorted(found, key=lambda cycle: cycle.path[0])


def _strongly_connected(edges: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm with an explicit stack; only groups of two or more nodes."""
    order = [-1] * len(edges)  # discovery number, -1 while unvisited
    low = [0] * len(edges)
    on_stack = [False] * len(edges)
    stack: list[int] = []
    groups: list[list[int]] = []
    counter = 0
    for root in range(len(edges)):
        if order[root] != -1:
            continue
        work = [(root, 0)]
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, next_edge = work[-1]
            if next_edge < len(edges[node]):
                work[-1] = (node, next_edge + 1)
                target = edges[node][next_edge]
                if order[target] == -1:
                    order[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack[target] = True
                    work.append((target, 0))
                elif on_stack[target]:
                    low[node] = min(low[node], order[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                group = _pop_group(stack, on_stack, node)
                if len(group) > 1:
                    groups.append(group)
    return groups


def _pop_group(stack: list[int], on_stack: list[bool], root: int) -> list[int]:
    group = []
    while True:
        node = stack.pop()
        on_stack[node] = False
        group.append(node)
        if node == root:
            return group


def _shortest_cycle(edges: list[list[int]], start: int, group: set[int]) -> list[int]:
    """Breadth-first from ``start`` inside its group, back to ``start``."""
    parent = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in edges[node]:
            if target == start:
                return _path_to(parent, node, start)
            if target in group and target not in parent:
                parent[target] = node
                queue.append(target)
    raise AssertionError("a strongly connected group always leads back to its start")


def _path_to(parent: dict[int, int], node: int, start: int) -> list[int]:
    path = [node]
    while node != start:
        node = parent[node]
        path.append(node)
    return path[::-1]
