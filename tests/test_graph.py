"""The dependency picture: the layout (serve/layout.py), the graph model (serve/depgraph.py),
the drawing (serve/dagview.py) and the ``/graph`` page through a real HTTP client and Chromium."""

from __future__ import annotations

import itertools
import os
import random
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from taskfiles.config import Config
from taskfiles.serve import create_app, dagview
from taskfiles.serve.board import Board
from taskfiles.serve.layout import Layout, Size, feedback_edges, layout
from taskfiles.serve.overview import Filters

from .conftest import commit_all, write_task
from .test_serve import LiveServer, client_for, make_project, registry, run_task
from .test_serve_live import CHROMIUM, CHROMIUM_ARGS

EVIL_TITLE = """Evil <script>window.__xss=1</script> "quoted" & 'single'"""
GRAPH = {
    "g/a1.md": "---\ntitle: A1\nstatus: ready\nmilestone: m1\nowner: core\n---\n",
    "g/a2.md": "---\ntitle: A2\nstatus: ready\nmilestone: m1\ndepends_on: [a1, zeta]\n---\n",
    "g/a3.md": "---\ntitle: A3\nstatus: ready\nmilestone: m1\ndepends_on: [a2, b1, o1]\n---\n",
    "g/b1.md": "---\ntitle: B1\nstatus: ready\nmilestone: m1\nlabels: [slow]\n---\n",
    "g/o1.md": "---\ntitle: O1\nstatus: ready\nmilestone: m2\n---\n",
    "g/p.md": "---\ntitle: P\nstatus: ready\nmilestone: m3\ndepends_on: [q]\n---\n",
    "g/q.md": "---\ntitle: Q\nstatus: ready\nmilestone: m3\ndepends_on: [p]\n---\n",
    "g/t1.md": "---\ntitle: T1\nstatus: ready\nmilestone: m4\n---\n",
    "g/t2.md": "---\ntitle: T2\nstatus: ready\nmilestone: m4\n---\n",
    "g/tie.md": "---\ntitle: Tie\nstatus: ready\nmilestone: m4\ndepends_on: [t2, t1]\n---\n",
    "g/evil.md": "---\ntitle: '" + EVIL_TITLE.replace("'", "''") + "'\nstatus: ready\nmilestone: m5\n---\n",
}


@pytest.fixture
def project(repo: Path) -> Config:
    """The serve tests' sample tasks plus the graph above (zeta is completed)."""
    return make_project(repo, GRAPH)


@pytest.fixture
def client(project: Config) -> TestClient:
    return client_for(create_app(project, watch=False, max_age=0))


def view_of(config: Config, **filters: str) -> dagview.View:
    reading = Board(config).read()
    return dagview.build(reading, Filters(**filters), config)


def drawn(html: str) -> list[str]:
    """The slugs of the SVG's node links, in drawing order."""
    return re.findall(r'<a class="node [^"]*" href="/tasks/[^"]+" data-slug="([^"]+)"', html)


# -- layout ------------------------------------------------------------------------------------


def random_graph(seed: int, count: int, back_edges: int = 0) -> tuple[list[str], list[tuple[str, str]]]:
    """A DAG of ``count`` nodes with 0-3 dependencies each on the 30 before, plus ``back_edges`` cycles."""
    rng = random.Random(seed)
    nodes = [f"n{number:04d}" for number in range(count)]
    edges = [
        (nodes[dep], nodes[number])
        for number in range(1, count)
        for dep in rng.sample(range(max(0, number - 30), number), min(number, rng.choice((0, 1, 1, 2, 3))))
    ]
    edges += [
        (nodes[rng.randrange(count // 2, count)], nodes[rng.randrange(count // 2)]) for _ in range(back_edges)
    ]
    return nodes, edges


def check_invariants(placed: Layout, edges: list[tuple[str, str]]) -> None:
    """Edges flow left to right unless marked; boxes never overlap; routes join their boxes."""
    boxes = {box.key: box for box in placed.boxes}
    size = placed.size
    marked = feedback_edges(boxes, edges)
    assert {(r.source, r.target) for r in placed.routes} == {(a, b) for a, b in edges if a != b}
    for route in placed.routes:
        source, target = boxes[route.source], boxes[route.target]
        assert route.reversed == ((route.source, route.target) in marked)
        if route.reversed:
            assert target.layer < source.layer
            assert route.points[0][0] == source.x and route.points[-1][0] == target.x + size.node_width
        else:
            assert source.layer < target.layer
            assert route.points[0][0] == source.x + size.node_width and route.points[-1][0] == target.x
    for box in placed.boxes:
        assert box.x >= 0 and box.y >= -1e-9
        assert (
            box.x + size.node_width <= placed.width + 1e-9
            and box.y + size.node_height <= placed.height + 1e-9
        )
    ordered = sorted(placed.boxes, key=lambda b: (b.x, b.y))
    for first, second in itertools.pairwise(ordered):
        if first.x == second.x:  # a column: each box starts below the one above
            assert second.y >= first.y + size.node_height + size.row_gap - 1e-6, (first, second)
        else:
            assert second.x >= first.x + size.node_width


@pytest.mark.parametrize(
    ("seed", "count", "back_edges"), [(1, 12, 0), (2, 60, 0), (3, 200, 0), (4, 80, 6), (5, 300, 20)]
)
def test_layout_invariants_on_generated_graphs(seed: int, count: int, back_edges: int) -> None:
    nodes, edges = random_graph(seed, count, back_edges)
    placed = layout(nodes, edges)
    check_invariants(placed, edges)
    assert sum(route.reversed for route in placed.routes) == len(feedback_edges(nodes, edges))
    assert (back_edges == 0) == (not feedback_edges(nodes, edges))


def test_layout_is_deterministic_in_any_input_order() -> None:
    nodes, edges = random_graph(7, 150, 5)
    first = layout(nodes, edges)
    rng = random.Random(8)
    shuffled_nodes, shuffled_edges = list(nodes), list(edges)
    rng.shuffle(shuffled_nodes)
    rng.shuffle(shuffled_edges)
    assert layout(shuffled_nodes, shuffled_edges) == first == layout(nodes, edges)


def test_layout_survives_dense_cycles_and_odd_input() -> None:
    nodes = [f"k{n:02d}" for n in range(25)]
    every_pair = [(a, b) for a in nodes for b in nodes]  # self-loops included: ignored
    placed = layout(nodes, every_pair)
    check_invariants(placed, [(a, b) for a, b in every_pair if a != b])
    assert len(placed.routes) == 25 * 24
    assert layout([], []) == Layout((), (), 0.0, 0.0, 0, Size())
    unknown = layout(["a"], [("a", "ghost"), ("a", "a")])
    assert unknown.routes == () and [box.key for box in unknown.boxes] == ["a"]


def test_layout_routes_long_edges_through_each_column_and_spends_few_crossings() -> None:
    # a -> b -> c -> d and a -> d: the long edge passes columns 1 and 2 beside b and c.
    placed = layout("abcd", [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    long = next(route for route in placed.routes if (route.source, route.target) == ("a", "d"))
    size = placed.size
    assert [box.layer for box in placed.boxes] == [0, 1, 2, 3]
    assert len(long.points) == 2 + 2 * 2
    assert placed.crossings == 0
    # Two crossing pairs in input order straighten out.
    assert layout("abxy", [("a", "y"), ("b", "x")]).crossings == 0
    # A source is put next to its nearest user, not in column 0.
    late = layout("abcs", [("a", "b"), ("b", "c"), ("s", "c")])
    assert {box.key: box.layer for box in late.boxes}["s"] == 1
    assert size.node_width > 0


def test_layout_packs_nodes_without_edges_in_a_grid_below() -> None:
    nodes = ["a", "b", *[f"z{n}" for n in range(7)]]
    placed = layout(nodes, [("a", "b")])
    boxes = {box.key: box for box in placed.boxes}
    size = placed.size
    assert boxes["z0"].y > boxes["a"].y
    assert {boxes[f"z{n}"].x for n in range(7)} == {
        col * (size.node_width + size.layer_gap) for col in range(5)
    }
    check_invariants(placed, [("a", "b")])


# -- the graph model ---------------------------------------------------------------------------


def test_critical_paths_goals_outside_and_done_dependencies(project: Config) -> None:
    graph = view_of(project, milestone="m1").graph
    assert graph.scope == "milestone m1"
    assert set(graph.rows) == {"alpha", "delta", "epsilon", "a1", "a2", "a3", "b1", "o1"}  # zeta is done
    assert graph.inside == set(graph.rows) - {"o1"}
    assert graph.edges == (("a1", "a2"), ("a2", "a3"), ("alpha", "delta"), ("b1", "a3"), ("o1", "a3"))
    assert graph.goals == ("a3", "delta", "epsilon")
    assert graph.critical == {"a3": ("a1", "a2", "a3"), "delta": ("alpha", "delta"), "epsilon": ("epsilon",)}
    assert graph.critical_nodes == {"a1", "a2", "a3", "alpha", "delta"}  # epsilon alone is no path
    assert graph.critical_edges == {("a1", "a2"), ("a2", "a3"), ("alpha", "delta")}
    # Two chains of one task each: the smaller slug wins, whatever the file's order.
    assert view_of(project, milestone="m4").graph.critical == {"tie": ("t1", "tie")}


def test_a_cycle_is_broken_where_the_drawing_breaks_it(project: Config) -> None:
    view = view_of(project, milestone="m3")
    assert view.graph.cycle_edges == {("q", "p")}
    assert view.graph.critical == {"q": ("p", "q")}
    assert view.drawing is not None
    kinds = {(e.source, e.target): e.kind for e in view.drawing.edges}
    assert kinds == {("p", "q"): "critical", ("q", "p"): "cycle"}
    tree = [(n.slug, n.depth, n.cycle) for n in view.tree.nodes]
    assert tree == [("q", 0, False), ("p", 1, False), ("q", 2, True)]


def test_the_drawing_marks_buckets_signals_and_outside(project: Config) -> None:
    run_task(project, "a1")
    registry(project).stop("a1", reason="operator")
    view = view_of(project, milestone="m1")
    assert view.drawing is not None
    boxes = {box.slug: box for box in view.drawing.boxes}
    assert boxes["a1"].classes == "node b-needs_attention critical signals" and boxes["a1"].signals
    assert "signals: stopped" in boxes["a1"].tooltip
    assert boxes["o1"].classes == "node b-ready outside"
    assert boxes["a3"].classes == "node b-waiting critical goal"
    assert "goal: 3 open task(s) on its critical path" in boxes["a3"].tooltip
    assert boxes["b1"].classes == "node b-ready"


# -- the page ----------------------------------------------------------------------------------


def test_graph_page_draws_every_open_task_by_default(client: TestClient) -> None:
    response = client.get("/graph")
    assert response.status_code == 200
    html = response.text
    nodes = drawn(html)
    assert sorted(nodes) == sorted(
        [
            "alpha",
            "beta",
            "gamma",
            "delta",
            "epsilon",
            "a1",
            "a2",
            "a3",
            "b1",
            "o1",
            "p",
            "q",
            "t1",
            "t2",
            "tie",
            "evil",
        ]
    )
    assert "zeta" not in nodes and "every open task" in html
    assert html.count('class="edge critical"') == 5  # a1-a2-a3, alpha-delta, p-q, t1-tie
    assert html.count('class="edge cycle"') == 1
    assert 'id="legend"' in html and "critical path" in html
    assert 'style="' not in html  # the CSP forbids style attributes
    # The list below holds the same tasks: goals at depth 0, what they wait on beneath.
    rows = re.findall(r'<li class="d(\d+)[^"]*" data-slug="([^"]+)"', html)
    assert rows[rows.index(("0", "delta")) + 1] == ("1", "alpha")
    assert {slug for _, slug in rows} == set(nodes)


@pytest.mark.parametrize(
    ("query", "inside", "outside"),
    [
        ("milestone=m1", {"alpha", "delta", "epsilon", "a1", "a2", "a3", "b1"}, {"o1"}),
        ("owner=core", {"alpha", "gamma", "delta", "a1"}, set()),
        ("label=slow", {"b1"}, set()),
        ("workstream=web", {"delta", "epsilon"}, {"alpha"}),
        ("q=tie", {"tie"}, {"t1", "t2"}),
        ("milestone=m1&label=ui", {"alpha"}, set()),
        ("milestone=nothing", set(), set()),
    ],
)
def test_graph_page_follows_the_overview_filters(
    client: TestClient, query: str, inside: set[str], outside: set[str]
) -> None:
    html = client.get("/graph?" + query).text
    assert set(drawn(html)) == inside | outside
    assert (
        set(re.findall(r'<a class="node [^"]*outside[^"]*" href="[^"]+" data-slug="([^"]+)"', html))
        == outside
    )
    if not inside:
        assert "No open task in this scope." in html and "<svg" not in html
    value = query.partition("&")[0].partition("=")[2]
    assert f'<option value="{value}" selected>' in html or f'value="{value}"' in html


def test_task_text_in_the_svg_is_escaped(client: TestClient) -> None:
    html = client.get("/graph?milestone=m5").text
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert "<script" not in svg and "__xss=1</script>" not in html
    assert "Evil &lt;script&gt;window.__xss=1&lt;/script&gt; &#34;quoted&#34; &amp; &#39;single&#39;" in svg
    assert ">Evil &lt;script&gt;window.__xss=1…</text>" in svg  # the label: cut, then escaped
    assert html.count("<script") == 1  # only /static/app.js


def test_past_the_bound_the_page_shows_the_list_alone(repo: Path) -> None:
    many = {
        f"bulk/t{n:03d}.md": f"---\ntitle: Bulk {n}\nstatus: ready\nmilestone: big\n---\n" for n in range(501)
    }
    config = make_project(repo, many)
    client = client_for(create_app(config, watch=False, max_age=0))
    html = client.get("/graph?milestone=big").text
    assert "<svg" not in html and 'id="dag-limited"' in html
    assert "limited to 500 tasks and this scope has 501" in html
    assert len(re.findall(r'<li class="d0[^"]*" data-slug="t\d{3}"', html)) == 501
    done = "status: completed\ncompleted_at: 2026-01-05\ncompleted_by: core"
    write_task(repo, "bulk/t500.md", f"---\ntitle: Bulk 500\n{done}\nmilestone: big\n---\n")
    commit_all(repo, "one done")
    assert len(drawn(client.get("/graph?milestone=big").text)) == 500


def test_the_live_fragment_is_the_graph_alone(client: TestClient) -> None:
    fragment = client.get("/graph?milestone=m3", headers={"x-fragment": "live"}).text
    assert fragment.lstrip().startswith("<h1>Dependencies: milestone m3")
    assert sorted(drawn(fragment)) == ["p", "q"] and "<form" not in fragment


# Skipped only where chromium is absent, and never in CI (.ci/run installs it; CI=true there).
@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install -y chromium)",
)
def test_browser_renders_the_svg_without_csp_violations(project: Config, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, LiveServer(create_app(project)) as server:
        assert CHROMIUM, "CI must have chromium: .ci/run installs it with apt-get"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        page.add_init_script(
            "window.__csp = [];"
            "document.addEventListener('securitypolicyviolation',"
            " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
        )
        page.goto(server.url + "/graph")
        page.wait_for_selector("#conn.live", timeout=5000)
        links = page.locator("svg.dag a.node")
        assert links.count() == 16
        box = page.locator('svg.dag a.node[data-slug="a3"] rect.box').bounding_box()
        assert box and box["width"] > 100 and box["height"] > 20  # laid out, not collapsed
        stroke = page.eval_on_selector(
            'svg.dag a.node[data-slug="a3"] rect.box', "e => getComputedStyle(e).stroke"
        )
        assert stroke not in ("none", "")  # app.css reached the SVG
        assert page.locator("svg.dag path.edge.cycle").count() == 1
        assert page.evaluate("window.__xss") is None
        page.screenshot(path=str(tmp_path / "graph.png"), full_page=True)
        assert page.evaluate("window.__csp") == []
        page.click('svg.dag a.node[data-slug="a3"]')  # each box is a link to its task
        page.wait_for_url(server.url + "/tasks/a3")
        assert page.evaluate("window.__csp") == []
        browser.close()
    assert not [
        line
        for line in console
        if "Content Security Policy" in line or line.startswith(("error", "pageerror"))
    ], console
