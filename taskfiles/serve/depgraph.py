"""The dependency view: an indented tree of what waits on what, for a milestone or workstream.

Each top-level row is a task in scope that no other task in scope depends on (a
goal); beneath it, what it depends on, and so on down. A task is expanded once;
later mentions say so instead of repeating its subtree, and a dependency that
leads back up the current branch is marked as a cycle. Iterative, so a chain of
10,000 tasks is fine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..plan.source import TaskSet
from ..plan.taskfile import Task
from ..state import Classification

MAX_ROWS = 5000


@dataclass(frozen=True)
class Node:
    """One row of the tree."""

    slug: str
    depth: int
    row: Classification | None  # None: no task has this slug
    in_scope: bool
    repeat: bool = False  # expanded earlier in the tree
    cycle: bool = False  # depends on a task above it on this branch


@dataclass(frozen=True)
class Tree:
    """The rows, and whether the tree was cut at ``MAX_ROWS``."""

    scope: str  # e.g. "milestone m2"
    nodes: tuple[Node, ...]
    truncated: bool = False


def scoped(tasks: TaskSet, *, milestone: str = "", workstream: str = "") -> list[Task]:
    """The tasks of ``milestone`` and/or ``workstream``, in path order."""
    return [
        t
        for t in tasks.tasks
        if (not milestone or t.milestone == milestone) and (not workstream or t.workstream == workstream)
    ]


def build(
    tasks: TaskSet, rows: Mapping[str, Classification], *, milestone: str = "", workstream: str = ""
) -> Tree:
    """The tree for the tasks of ``milestone`` and/or ``workstream``."""
    scope = scoped(tasks, milestone=milestone, workstream=workstream)
    names = {t.slug for t in scope}
    wanted = {dep for t in scope for dep in t.depends_on if dep in names and dep != t.slug}
    roots = [t.slug for t in scope if t.slug not in wanted]
    parts = [f"milestone {milestone}"] if milestone else []
    parts += [f"workstream {workstream}"] if workstream else []
    nodes, truncated = _walk(tasks, rows, names, roots + sorted(names))
    return Tree(" and ".join(parts) or "every task", tuple(nodes), truncated)


def _walk(
    tasks: TaskSet, rows: Mapping[str, Classification], names: set[str], starts: list[str]
) -> tuple[list[Node], bool]:
    nodes: list[Node] = []
    expanded: set[str] = set()
    for start in starts:  # the goals, then whatever only cycles reach
        if start in expanded:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        branch: list[str] = []
        while stack:
            if len(nodes) >= MAX_ROWS:
                return nodes, True
            slug, depth = stack.pop()
            del branch[depth:]
            nodes.append(_node(slug, depth, rows, names, expanded, branch))
            if slug in expanded or slug in branch:
                continue
            expanded.add(slug)
            branch.append(slug)
            task = tasks.get(slug)
            deps = list(dict.fromkeys(task.depends_on)) if task else []
            stack.extend((dep, depth + 1) for dep in reversed(deps))
    return nodes, False


def _node(
    slug: str,
    depth: int,
    rows: Mapping[str, Classification],
    names: set[str],
    expanded: set[str],
    branch: list[str],
) -> Node:
    cycle = slug in branch
    return Node(
        slug, depth, rows.get(slug), slug in names, repeat=slug in expanded and not cycle, cycle=cycle
    )
