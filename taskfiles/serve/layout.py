"""A layered drawing of a directed graph (Sugiyama style), in pure Python.

Edges point left to right: an edge ``(a, b)`` puts ``a`` in a column left of ``b``.
The steps are the classic ones:

1. cycles are broken by reversing the back edges of a depth-first search in key
   order (``feedback_edges``); a reversed edge is still drawn, marked, against the flow;
2. longest-path layering, then each source moved right next to its nearest successor;
3. an edge spanning several columns gets a dummy vertex in each column it crosses,
   so it is routed between the nodes there instead of through them;
4. a few sweeps of barycenter ordering, keeping the order with fewest crossings;
5. vertical positions: each vertex pulled towards the mean of its neighbours, then
   the column's order and spacing restored by isotonic regression (the least-squares
   placement that keeps the order and gaps).

Each weakly connected part is laid out on its own and the parts are stacked; nodes
with no edge at all are packed into a grid below them. Nodes are sorted by key before
anything else, so the same nodes and edges give the same drawing in any input order.
Linear-ish in vertices plus edges per sweep; 1,000 nodes take well under a second.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

ORDER_SWEEPS = 4  # down-and-up barycenter sweeps; more rarely removes another crossing
PLACE_PASSES = 5  # alternating neighbour-pull passes for the vertical positions


@dataclass(frozen=True)
class Size:
    """The drawing's dimensions in pixels."""

    node_width: float = 220
    node_height: float = 38
    layer_gap: float = 70  # between columns, where edges run
    row_gap: float = 12  # between two nodes of a column
    lane: float = 6  # the height a passing edge takes in a column
    part_gap: float = 36  # between stacked parts
    grid_columns: int = 5  # the least number of columns for nodes with no edge


@dataclass(frozen=True)
class Box:
    """A node's column and top-left corner."""

    key: str
    layer: int
    x: float
    y: float


@dataclass(frozen=True)
class Route:
    """An edge as a polyline from its source's side to its target's side."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]
    reversed: bool  # it closes a cycle: drawn right to left


@dataclass(frozen=True)
class Layout:
    """Where everything goes; boxes sorted by key, routes by (source, target)."""

    boxes: tuple[Box, ...]
    routes: tuple[Route, ...]
    width: float
    height: float
    crossings: int  # edge crossings between adjacent columns, after ordering
    size: Size = field(default_factory=Size)


def feedback_edges(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """The edges whose reversal makes the graph acyclic: a depth-first search's back edges, in key order."""
    keys = sorted(set(nodes))
    pairs = _pairs(keys, edges)
    return frozenset((keys[a], keys[b]) for a, b in _back_edges(len(keys), pairs))


def layout(nodes: Iterable[str], edges: Iterable[tuple[str, str]], size: Size | None = None) -> Layout:
    """Lay out ``nodes`` with ``edges`` (self-loops and edges to unknown nodes are ignored)."""
    size = size or Size()
    keys = sorted(set(nodes))
    pairs = _pairs(keys, edges)
    back = _back_edges(len(keys), pairs)
    parts, alone = _parts(len(keys), pairs, back)
    boxes: dict[int, Box] = {}
    routes: list[Route] = []
    top, width, crossings, columns = 0.0, 0.0, 0, size.grid_columns
    for part in parts:
        drawn = _Part(part, keys, size, top)
        boxes.update(drawn.boxes())
        routes += drawn.routes()
        crossings += drawn.crossings
        columns = max(columns, drawn.layers)
        top = drawn.bottom + size.part_gap
        width = max(width, drawn.layers * (size.node_width + size.layer_gap) - size.layer_gap)
    columns = min(columns, max(len(alone), 1))
    for number, node in enumerate(alone):
        row, column = divmod(number, columns)
        x = column * (size.node_width + size.layer_gap)
        boxes[node] = Box(keys[node], 0, x, top + row * (size.node_height + size.row_gap))
        width = max(width, x + size.node_width)
    height = max((box.y + size.node_height for box in boxes.values()), default=0.0)
    ordered = tuple(boxes[number] for number in range(len(keys)))
    routes.sort(key=lambda route: (route.source, route.target))
    return Layout(ordered, tuple(routes), width, height, crossings, size)


def _pairs(keys: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[tuple[int, int]]:
    index = {key: number for number, key in enumerate(keys)}
    found = {(index[a], index[b]) for a, b in edges if a in index and b in index and a != b}
    return sorted(found)


def _back_edges(count: int, pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """Iterative depth-first search from each unvisited node in order; edges into the stack."""
    succ: list[list[int]] = [[] for _ in range(count)]
    for a, b in pairs:  # sorted pairs: each list in key order
        succ[a].append(b)
    state = [0] * count  # 0 unseen, 1 on the stack, 2 finished
    back: set[tuple[int, int]] = set()
    for root in range(count):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, 0)]
        while stack:
            node, next_edge = stack[-1]
            if next_edge == len(succ[node]):
                state[node] = 2
                stack.pop()
                continue
            stack[-1] = (node, next_edge + 1)
            target = succ[node][next_edge]
            if state[target] == 1:
                back.add((node, target))
            elif state[target] == 0:
                state[target] = 1
                stack.append((target, 0))
    return back


@dataclass
class _Members:
    """One weakly connected part: its nodes in order and its edges, each as (given, flowing)."""

    nodes: list[int] = field(default_factory=list)
    edges: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)


def _parts(
    count: int, pairs: Sequence[tuple[int, int]], back: set[tuple[int, int]]
) -> tuple[list[_Members], list[int]]:
    """Weakly connected parts with an edge, largest first; and the nodes with none.

    An edge flows as given unless it is a back edge, which flows reversed.
    """
    parent = list(range(count))

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in pairs:
        parent[find(a)] = find(b)
    groups: dict[int, _Members] = {}
    touched = {node for edge in pairs for node in edge}
    for node in sorted(touched):
        groups.setdefault(find(node), _Members()).nodes.append(node)
    for a, b in pairs:
        groups[find(a)].edges.append(((a, b), (b, a) if (a, b) in back else (a, b)))
    parts = sorted(groups.values(), key=lambda part: (-len(part.nodes), part.nodes[0]))
    return parts, [node for node in range(count) if node not in touched]


class _Part:
    """One connected part: layered, ordered and placed; vertices are ints, dummies after nodes."""

    def __init__(self, part: _Members, keys: Sequence[str], size: Size, top: float) -> None:
        self.size, self.keys, self.top = size, keys, top
        self.nodes = part.nodes
        local = {node: number for number, node in enumerate(self.nodes)}
        flow = [(local[a], local[b]) for _, (a, b) in part.edges]
        layer = _layers(len(self.nodes), flow)
        self.layer = layer  # grows with a dummy vertex per column a long edge crosses
        self.succ: list[list[int]] = [[] for _ in self.nodes]
        self.pred: list[list[int]] = [[] for _ in self.nodes]
        self.chains: list[tuple[tuple[int, int], bool, list[int]]] = []
        for (given, flows), (a, b) in zip(part.edges, flow, strict=True):
            chain = [a, *(self._vertex(column) for column in range(layer[a] + 1, layer[b])), b]
            for u, v in itertools.pairwise(chain):
                self.succ[u].append(v)
                self.pred[v].append(u)
            self.chains.append((given, given != flows, chain))
        self.layers = max(layer) + 1
        columns: list[list[int]] = [[] for _ in range(self.layers)]
        for vertex, column in enumerate(layer):
            columns[column].append(vertex)
        self.columns, self.crossings = _order(columns, self.pred, self.succ)
        self.y = self._place()

    def _vertex(self, column: int) -> int:
        self.layer.append(column)
        self.succ.append([])
        self.pred.append([])
        return len(self.layer) - 1

    def _height(self, vertex: int) -> float:
        return self.size.node_height if vertex < len(self.nodes) else self.size.lane

    def _place(self) -> list[float]:
        """Vertex centres: stacked, then pulled towards their neighbours, order and gaps kept."""
        y = [0.0] * len(self.layer)
        for column in self.columns:
            _settle(column, [0.0] * len(column), y, self._gaps(column))
        for number in range(PLACE_PASSES):
            sides: tuple[list[list[int]], ...] = (self.pred,) if number % 2 == 0 else (self.succ,)
            if number == PLACE_PASSES - 1:
                sides = (self.pred, self.succ)  # last: balanced between both sides
            columns = self.columns if number % 2 == 0 else self.columns[::-1]
            for column in columns:
                wanted = [_mean([y[n] for side in sides for n in side[v]], y[v]) for v in column]
                _settle(column, wanted, y, self._gaps(column))
        lowest = min(y[v] - self._height(v) / 2 for v in range(len(y)))
        return [value - lowest + self.top for value in y]

    def _gaps(self, column: list[int]) -> list[float]:
        """The least distance between each vertex's centre and the next one's."""
        gaps = []
        for u, v in itertools.pairwise(column):
            both = u < len(self.nodes) and v < len(self.nodes)
            gap = self.size.row_gap if both else self.size.lane / 2
            gaps.append((self._height(u) + self._height(v)) / 2 + gap)
        return gaps

    @property
    def bottom(self) -> float:
        return max(self.y[v] + self._height(v) / 2 for v in range(len(self.y)))

    def _x(self, vertex: int) -> float:
        return self.layer[vertex] * (self.size.node_width + self.size.layer_gap)

    def boxes(self) -> dict[int, Box]:
        half = self.size.node_height / 2
        return {
            node: Box(self.keys[node], self.layer[v], self._x(v), self.y[v] - half)
            for v, node in enumerate(self.nodes)
        }

    def routes(self) -> list[Route]:
        found = []
        width = self.size.node_width
        for (a, b), flipped, chain in self.chains:
            points = [(self._x(chain[0]) + width, self.y[chain[0]])]
            for dummy in chain[1:-1]:
                points += [(self._x(dummy), self.y[dummy]), (self._x(dummy) + width, self.y[dummy])]
            points.append((self._x(chain[-1]), self.y[chain[-1]]))
            ordered = tuple(points[::-1] if flipped else points)
            found.append(Route(self.keys[a], self.keys[b], ordered, flipped))
        return found


def _layers(count: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Longest-path layering (edges acyclic), then each source moved next to its nearest successor."""
    succ: list[list[int]] = [[] for _ in range(count)]
    indegree = [0] * count
    for a, b in edges:
        succ[a].append(b)
        indegree[b] += 1
    sources = [node for node in range(count) if indegree[node] == 0]
    ready = list(sources)
    heapq.heapify(ready)
    layer = [0] * count
    order = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for target in succ[node]:
            layer[target] = max(layer[target], layer[node] + 1)
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, target)
    for node in sources:  # a source waits in column 0 otherwise, with a long edge to its user
        if succ[node]:
            layer[node] = min(layer[target] for target in succ[node]) - 1
    lowest = min(layer)
    return [value - lowest for value in layer]


def _order(
    columns: list[list[int]], pred: list[list[int]], succ: list[list[int]]
) -> tuple[list[list[int]], int]:
    """Barycenter sweeps down and up; the ordering with the fewest crossings and that count."""
    position = [0] * len(pred)
    for column in columns:
        for number, vertex in enumerate(column):
            position[vertex] = number
    best, fewest = [list(c) for c in columns], _crossings(columns, succ, position)
    for _ in range(ORDER_SWEEPS):
        for number in range(1, len(columns)):
            _sort_by_neighbours(columns[number], pred, position)
        for number in range(len(columns) - 2, -1, -1):
            _sort_by_neighbours(columns[number], succ, position)
        count = _crossings(columns, succ, position)
        if count < fewest:
            best, fewest = [list(c) for c in columns], count
        if fewest == 0:
            break
    return best, fewest


def _sort_by_neighbours(column: list[int], side: list[list[int]], position: list[int]) -> None:
    """Order ``column`` by its vertices' mean neighbour position (no neighbours: stay put)."""

    def key(vertex: int) -> tuple[float, int]:
        spots = [position[n] for n in side[vertex]]
        return (sum(spots) / len(spots) if spots else float(position[vertex]), position[vertex])

    column.sort(key=key)
    for number, vertex in enumerate(column):
        position[vertex] = number


def _crossings(columns: list[list[int]], succ: list[list[int]], position: list[int]) -> int:
    """Crossings between each pair of adjacent columns: inversions counted with a Fenwick tree."""
    total = 0
    for upper, lower in itertools.pairwise(columns):
        ends = sorted((position[u], position[v]) for u in upper for v in succ[u])
        tree = [0] * (len(lower) + 1)
        for seen, (_, end) in enumerate(ends):
            spot, below = end + 1, 0
            while spot > 0:  # edges seen so far ending at or above this one
                below += tree[spot]
                spot -= spot & -spot
            total += seen - below
            spot = end + 1
            while spot <= len(lower):
                tree[spot] += 1
                spot += spot & -spot
    return total


def _settle(column: list[int], wanted: list[float], y: list[float], gaps: list[float]) -> None:
    """The positions nearest ``wanted`` (least squares) keeping the order and ``gaps``.

    With ``q[i] = y[i] - offset[i]`` the gaps say ``q`` never decreases, so this is
    isotonic regression, solved by pooling adjacent violators in one pass.
    """
    offsets = [0.0]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    blocks: list[list[float]] = []  # [sum, count]
    for want, offset in zip(wanted, offsets, strict=True):
        blocks.append([want - offset, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    number = 0
    for total, count in blocks:
        for _ in range(int(count)):
            y[column[number]] = total / count + offsets[number]
            number += 1


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default
