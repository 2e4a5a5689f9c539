"""The ``/graph`` page's content: one scope's dependency graph, drawn and as a tree.

The scope comes from the overview's filters (``overview.select``); the graph, goals
and critical paths from ``depgraph``; positions from ``layout``. This module turns
them into what ``_dag.html`` draws: boxes with their CSS classes, a short label and
a tooltip, and edges as SVG path data. Numbers only: every piece of task text goes
through the template, which escapes it. Past ``MAX_NODES`` nothing is drawn and the
page shows the tree alone (a drawing that large is neither readable nor cheap).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..state import Classification
from . import depgraph, overview
from .board import Reading
from .layout import Layout, Size, layout

MAX_NODES = 500
LABEL_CHARS = 28  # what fits in a box of Size.node_width at 12 px
MARGIN = 8
KINDS = ("", "critical", "cycle")  # the edge kinds, in drawing order


@dataclass(frozen=True)
class Box:
    """One task as drawn: a link to its page."""

    slug: str
    label: str  # the title, cut to fit
    short_slug: str
    tooltip: str  # the full title, slug, state, signals and goal
    classes: str  # "node b-<bucket>" plus outside, critical, goal, signals
    x: float
    y: float
    signals: bool


@dataclass(frozen=True)
class Edge:
    """One dependency as drawn, from the dependency to the task that waits on it."""

    source: str
    target: str
    path: str  # SVG path data
    kind: str  # one of KINDS: the CSS class and the arrowhead


@dataclass(frozen=True)
class Drawing:
    """Everything ``_dag.html`` needs."""

    width: float
    height: float
    box_width: float
    box_height: float
    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        """The edge kinds, each with its arrowhead."""
        return KINDS


@dataclass(frozen=True)
class View:
    """The graph page: its model, the drawing (None past the limit) and the tree."""

    graph: depgraph.Graph
    drawing: Drawing | None
    tree: depgraph.Tree
    limit: int


def build(reading: Reading, filters: overview.Filters, config: Config, *, limit: int = MAX_NODES) -> View:
    """The graph of the open tasks ``filters`` select, drawn when it has at most ``limit`` tasks."""
    rows = overview.select(reading.seen.rows, filters, config)
    graph = depgraph.build(rows, reading.by_slug, scope_name(filters))
    drawing = draw(graph) if len(graph.rows) <= limit else None
    return View(graph, drawing, depgraph.tree(graph), limit)


def scope_name(filters: overview.Filters) -> str:
    """``milestone m2 and owner core``; ``every open task`` with no filter."""
    parts = [
        f'text "{value}"' if key == "q" else f"{key} {value}" for key, value in filters.to_dict().items()
    ]
    return " and ".join(parts) or "every open task"


def draw(graph: depgraph.Graph, size: Size | None = None) -> Drawing:
    """Lay ``graph`` out and describe each box and edge."""
    placed = layout(graph.rows, graph.edges, size)
    critical = graph.critical_nodes
    boxes = tuple(
        _box(graph.rows[box.key], box.x + MARGIN, box.y + MARGIN, graph, critical) for box in placed.boxes
    )
    return Drawing(
        round(placed.width + 2 * MARGIN, 1),
        round(placed.height + 2 * MARGIN, 1),
        placed.size.node_width,
        placed.size.node_height,
        boxes,
        _edges(placed, graph),
    )


def _box(row: Classification, x: float, y: float, graph: depgraph.Graph, critical: frozenset[str]) -> Box:
    title = row.task.title if row.task else ""
    classes = ["node", f"b-{row.bucket}"]
    lines = [title, f"{row.slug} · {row.bucket.replace('_', ' ')} ({row.state})"]
    if row.slug not in graph.inside:
        classes.append("outside")
        lines.append("outside the filters")
    if row.slug in critical:
        classes.append("critical")
    path = graph.critical.get(row.slug)
    if path is not None:
        classes.append("goal")
        lines.append(f"goal: {len(path)} open task(s) on its critical path")
    if row.signals:
        classes.append("signals")
        lines.append("signals: " + ", ".join(signal.kind for signal in row.signals))
    return Box(
        row.slug,
        _cut(title, LABEL_CHARS),
        _cut(row.slug, LABEL_CHARS),
        "\n".join(lines),
        " ".join(classes),
        round(x, 1),
        round(y, 1),
        bool(row.signals),
    )


def _edges(placed: Layout, graph: depgraph.Graph) -> tuple[Edge, ...]:
    critical = graph.critical_edges
    found = []
    for route in placed.routes:
        pair = (route.source, route.target)
        kind = "cycle" if route.reversed else "critical" if pair in critical else ""
        # A cycle edge bows downwards: the other half of a two-task cycle runs the same line.
        bend = placed.size.node_height * 0.6 if route.reversed else 0.0
        found.append(Edge(route.source, route.target, _path(route.points, bend), kind))
    found.sort(key=lambda edge: KINDS.index(edge.kind))  # critical and cycle edges on top
    return tuple(found)


def _path(points: tuple[tuple[float, float], ...], bend: float = 0.0) -> str:
    """Cubic segments leaving and entering each point horizontally (``bend`` pixels low), as SVG path data."""
    (x, y), *rest = ((px + MARGIN, py + MARGIN) for px, py in points)
    parts = [f"M{x:.1f} {y:.1f}"]
    for nx, ny in rest:
        middle = (x + nx) / 2
        parts.append(f"C{middle:.1f} {y + bend:.1f} {middle:.1f} {ny + bend:.1f} {nx:.1f} {ny:.1f}")
        x, y = nx, ny
    return "".join(parts)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
