"""Benchmark the dependency picture of ``/graph``: layout plus SVG at 200 and 1,000 open tasks.

``.venv/bin/python bench/bench_graph.py`` builds repositories with bench/gen_tasks.py
(dependencies on earlier tasks, 0-3 each), observes each once as the server does,
and times, in process, median of 7 runs after one warm-up:

- ``model``: the filter, the graph of open tasks, goals and critical paths (depgraph);
- ``layout``: the layered layout and the boxes and edge paths (``dagview.draw``);
- ``svg``: rendering ``_dag.html`` (autoescaped Jinja) to a string;
- ``layout_svg``: the two together, the number the target is about;
- ``page``: the whole live part of the page (``_graph.html``: picture, legend and list).

Target: ``layout_svg`` <= 200 ms at 200 open tasks. The 1,000-task row is for
information: the page draws at most ``dagview.MAX_NODES`` tasks. Writes
bench/results/graph.json with the machine record (bench/machine.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gen_tasks import generate
from machine import Probe, results_file
from timing import save, verdict

from taskfiles.config import load as load_config
from taskfiles.serve import dagview, depgraph
from taskfiles.serve.board import Board
from taskfiles.serve.overview import Filters, select
from taskfiles.serve.render import Renderer

TARGET_MS = 200
# Generated tasks are about 65% open: these counts give about 200 and 1,000 open tasks.
SIZES = {200: 308, 1000: 1540}


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    """Median, min and max milliseconds of ``runs`` calls after one warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {
        "median_ms": round(statistics.median(samples), 2),
        "min_ms": round(min(samples), 2),
        "max_ms": round(max(samples), 2),
    }


def measure(repo: Path, runs: int) -> dict[str, Any]:
    """Every timing for the repository at ``repo`` (all open tasks drawn, whatever their number)."""
    config = load_config(repo)
    reading = Board(config, ref="main").read()
    filters = Filters()
    renderer = Renderer()
    limit = len(reading.seen.rows)

    def model() -> depgraph.Graph:
        rows = select(reading.seen.rows, filters, config)
        return depgraph.build(rows, reading.by_slug, dagview.scope_name(filters))

    graph = model()
    drawing = dagview.draw(graph)

    def svg(d: dagview.Drawing) -> str:
        return renderer.text("_dag.html", {"d": d, "graph": graph})

    def page() -> str:
        view = dagview.build(reading, filters, config, limit=limit)
        context = {"view": view, "seen": reading.seen, "now": reading.seen.generated_at}
        return renderer.text("_graph.html", context)

    text = svg(drawing)
    return {
        "open_tasks": len(graph.rows),
        "edges": len(graph.edges),
        "goals": len(graph.goals),
        "longest_critical_path": max((len(p) for p in graph.critical.values()), default=0),
        "drawing_px": [drawing.width, drawing.height],
        "svg_bytes": len(text.encode()),
        "model": timed(model, runs),
        "layout": timed(lambda: dagview.draw(graph), runs),
        "svg": timed(lambda: svg(drawing), runs),
        "layout_svg": timed(lambda: svg(dagview.draw(graph)), runs),
        "page": timed(page, runs),
    }


def main() -> None:
    """Command line: bench_graph.py [--runs N] [--quick] [--out FILE] [--keep DIR]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="runs after a warm-up (default 7; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 open tasks only, one run")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/graph.json)")
    parser.add_argument("--keep", type=Path, help="Build the repositories here and keep them.")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="taskfiles-bench-graph-"))
    args.runs = args.runs or (1 if args.quick else 7)
    args.out = args.out or results_file("graph.json", args.quick)
    probe = Probe(0.1 if args.quick else 1.0)
    sizes = {200: SIZES[200]} if args.quick else SIZES
    results: dict[str, Any] = {}
    try:
        for wanted, count in sizes.items():
            result = measure(generate(base / f"graph-{count}", count), args.runs)
            results[str(wanted)] = {"generated_tasks": count, **result}
            print(
                f"{result['open_tasks']:>5} open tasks, {result['edges']} edges: "
                f"layout+svg {result['layout_svg']['median_ms']:.1f} ms "
                f"(layout {result['layout']['median_ms']:.1f}, svg {result['svg']['median_ms']:.1f}), "
                f"model {result['model']['median_ms']:.1f} ms, page {result['page']['median_ms']:.1f} ms",
                flush=True,
            )
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    at_200 = results["200"]["layout_svg"]["median_ms"]
    report: dict[str, Any] = {
        "machine": probe.record(),
        "runs": args.runs,
        "results": results,
        "targets": [verdict("layout+svg at 200 open tasks", at_200, TARGET_MS)],
    }
    save(report, args.out)


if __name__ == "__main__":
    main()
