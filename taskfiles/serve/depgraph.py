"""The dependency view's model: the open tasks of one scope, what they wait on, goals and critical paths.

The scope is the rows the overview's filters select. Only open tasks (bucket other
than done) are in the graph: a done dependency blocks nothing, so it is left out.
An open dependency outside the scope is in the graph too, marked outside and not
followed further, so a filtered view still shows what it waits on from elsewhere.

A goal is a task in scope that no task in scope depends on; its critical path is
the longest chain of open in-scope tasks leading to it (length: how many tasks),
ties going to the dependency with the smaller slug. Cycles are broken where the
drawing breaks them (``layout.feedback_edges``), so goals and paths exist there too.

The same graph is shown twice: drawn (``dagview``) and as an indented tree, each goal
with what it waits on beneath it, the text fallback. A task is expanded once in the
tree; later mentions say so, and a dependency leading back up the branch is marked
as a cycle. Iterative, so a chain of 10,000 tasks is fine.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..state import Classification
from .layout import feedback_edges

MAX_ROWS = 5000


def is_open(row: Classification) -> bool:
    """A task that is not done (an orphaned registry entry, with no task, is not in the graph)."""
    return row.task is not None and row.bucket != "done"


@dataclass(frozen=True)
class Graph:
    """The open tasks of a scope and the dependencies between them."""

    scope: str  # e.g. "milestone m2 and owner core"
    rows: Mapping[str, Classification]  # every task in the graph, by slug
    inside: frozenset[str]  # the tasks in scope (the others are open dependencies outside it)
    edges: tuple[tuple[str, str], ...]  # (dependency, dependent), sorted
    cycle_edges: frozenset[tuple[str, str]]  # the edges that close a cycle, drawn against the flow
    critical: Mapping[str, tuple[str, ...]]  # goal -> its critical path, first task first

    @property
    def goals(self) -> tuple[str, ...]:
        """The tasks in scope nothing in scope waits on, sorted."""
        return tuple(self.critical)

    @property
    def critical_nodes(self) -> frozenset[str]:
        """The tasks on a critical path of two or more tasks (one task alone is no path)."""
        return frozenset(slug for path in self.critical.values() if len(path) > 1 for slug in path)

    @property
    def critical_edges(self) -> frozenset[tuple[str, str]]:
        """The edges of every critical path."""
        return frozenset(pair for path in self.critical.values() for pair in itertools.pairwise(path))


def build(rows: Iterable[Classification], by_slug: Mapping[str, Classification], scope: str) -> Graph:
    """The graph of the open tasks among ``rows`` (the filtered scope); ``by_slug`` finds dependencies."""
    inside = {row.slug: row for row in rows if is_open(row)}
    found = dict(inside)
    edges = set()
    for slug, row in inside.items():
        assert row.task is not None  # is_open
        for dep in row.task.depends_on:
            other = by_slug.get(dep)
            if dep != slug and other is not None and is_open(other):
                found.setdefault(dep, other)
                edges.add((dep, slug))
    ordered = {slug: found[slug] for slug in sorted(found)}
    cycle_edges = feedback_edges(ordered, edges)
    flowing = [edge for edge in edges if edge not in cycle_edges and edge[0] in inside]
    return Graph(
        scope,
        ordered,
        frozenset(inside),
        tuple(sorted(edges)),
        cycle_edges,
        _critical(sorted(inside), flowing),
    )


def _critical(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """goal -> its longest chain, over acyclic ``edges`` between ``nodes``."""
    preds: dict[str, list[str]] = {slug: [] for slug in nodes}
    succs: dict[str, list[str]] = {slug: [] for slug in nodes}
    for dep, dependent in edges:
        preds[dependent].append(dep)
        succs[dep].append(dependent)
    waiting = {slug: len(preds[slug]) for slug in nodes}
    ready = [slug for slug in nodes if not waiting[slug]]
    heapq.heapify(ready)
    length: dict[str, int] = {}
    via: dict[str, str | None] = {}
    while ready:  # topological order: every dependency is measured before its dependents
        slug = heapq.heappop(ready)
        best = min(preds[slug], key=lambda dep: (-length[dep], dep), default=None)
        via[slug], length[slug] = best, 1 + (length[best] if best else 0)
        for dependent in succs[slug]:
            waiting[dependent] -= 1
            if not waiting[dependent]:
                heapq.heappush(ready, dependent)
    return {goal: _chain(goal, via) for goal in nodes if not succs[goal]}


def _chain(goal: str, via: Mapping[str, str | None]) -> tuple[str, ...]:
    path = [goal]
    while (step := via[path[-1]]) is not None:
        path.append(step)
    return tuple(reversed(path))


@dataclass(frozen=True)
class Node:
    """One row of the tree."""

    slug: str
    depth: int
    row: Classification
    in_scope: bool
    critical: bool = False  # on a goal's critical path
    repeat: bool = False  # expanded earlier in the tree
    cycle: bool = False  # depends on a task above it on this branch


@dataclass(frozen=True)
class Tree:
    """The rows, and whether the tree was cut at ``MAX_ROWS``."""

    nodes: tuple[Node, ...]
    truncated: bool = False


def tree(graph: Graph) -> Tree:
    """Each goal, then what it waits on beneath it; then whatever only cycles reach."""
    deps: dict[str, list[str]] = {slug: [] for slug in graph.rows}
    for dep, dependent in graph.edges:
        deps[dependent].append(dep)
    for slug, row in graph.rows.items():
        assert row.task is not None  # is_open
        listed = {dep: n for n, dep in enumerate(row.task.depends_on)}
        deps[slug].sort(key=lambda dep: listed[dep])  # the order the task file gives
    nodes, truncated = _walk(graph, deps, [*graph.goals, *graph.rows])
    return Tree(tuple(nodes), truncated)


def _walk(graph: Graph, deps: Mapping[str, list[str]], starts: list[str]) -> tuple[list[Node], bool]:
    nodes: list[Node] = []
    expanded: set[str] = set()
    critical = graph.critical_nodes
    for start in starts:
        if start in expanded or start not in graph.inside:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        branch: list[str] = []
        while stack:
            if len(nodes) >= MAX_ROWS:
                return nodes, True
            slug, depth = stack.pop()
            del branch[depth:]
            cycle = slug in branch
            repeat = slug in expanded and not cycle
            inside = slug in graph.inside
            nodes.append(
                Node(slug, depth, graph.rows[slug], inside, slug in critical, repeat=repeat, cycle=cycle)
            )
            if repeat or cycle or not inside:
                continue
            expanded.add(slug)
            branch.append(slug)
            stack.extend((dep, depth + 1) for dep in reversed(deps[slug]))
    return nodes, False
