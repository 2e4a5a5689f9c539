"""Benchmark ``task status --json``: 10,000 tasks at the base ref, 1,000 registry entries, warm.

``.venv/bin/python bench/bench_status.py`` builds a repository with bench/gen_tasks.py,
fills its registry with 1,000 entries in a realistic mix of states (most running,
with a live worker pid each, so status checks every pid), then times the real
``task status --json`` as a subprocess after an untimed run that fills the parse
cache. Bare ``python -c pass``, ``import taskfiles.cli`` and ``task list --json --ref
main`` are timed in the same rounds as baselines (interleaved, so load on a shared
machine hits every case alike). Prints median/min/max and writes
bench/results/status.json with the machine record (bench/machine.py).

Target (median, warm): status <= 300 ms. ``--quick``: 300 tasks, 100 entries, one round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench_registry import fresh_database
from entries import STATUS_MIX, fill_registry
from gen_tasks import generate
from machine import Probe, results_file
from timing import PYTHON, TASK, interleave, row, run_output, save, verdict, warm

TARGET_MS = 300


def use_database(repo: Path, url: str) -> None:
    """Point the repository's registry at ``url`` (taskfiles.toml), as a team would."""
    with (repo / "taskfiles.toml").open("a", encoding="utf-8") as handle:
        handle.write(f'registry_url = "{url}"\n')


def check_output(repo: Path, tasks: int, entries: int) -> dict[str, int]:
    """The benchmark times the real thing: every task and entry is classified."""
    report = json.loads(run_output([TASK, "status", "--json"], repo)[1])
    with_entry = sum(1 for row in report["tasks"] if row["entry"] is not None)
    shown = min(entries, sum(n for _, n in STATUS_MIX))  # released entries are classified, not shown
    if len(report["tasks"]) != tasks or with_entry != shown:
        raise SystemExit(f"status gave {len(report['tasks'])} rows, {with_entry} with entries")
    counts: dict[str, int] = report["counts"]
    return counts


def cases(repo: Path) -> dict[str, Any]:
    """Case name -> sample (all warm: an untimed run of the same command just before)."""
    commands = {
        "python_bare": [PYTHON, "-c", "pass"],
        "import_cli": [PYTHON, "-c", "import taskfiles.cli"],
        "list_ref_warm": [TASK, "list", "--json", "--ref", "main"],
        "status_warm": [TASK, "status", "--json"],
    }
    return {name: warm(name, argv, repo) for name, argv in commands.items()}


def main() -> None:
    """Command line: bench_status.py [--tasks N] [--entries N] [--runs N] [--quick] [--out FILE]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, help="tasks (default 10000; --quick: 300)")
    parser.add_argument("--entries", type=int, help="registry entries (default 1000; --quick: 100)")
    parser.add_argument("--runs", type=int, help="rounds (default 9; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few tasks and entries, one round")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/status.json)")
    parser.add_argument("--keep", type=Path, help="Build the repository here and keep it.")
    parser.add_argument("--pg", help="a PostgreSQL registry: an admin URL (a database is made for the run)")
    args = parser.parse_args()
    args.tasks = args.tasks or (300 if args.quick else 10_000)
    args.entries = args.entries or (100 if args.quick else 1_000)
    args.runs = args.runs or (1 if args.quick else 9)
    args.out = args.out or results_file("status.json", args.quick)
    probe = Probe(0.1 if args.quick else 1.0)
    base = args.keep or Path(tempfile.mkdtemp(prefix="taskfiles-bench-status-"))
    database = contextlib.ExitStack()
    try:
        repo = generate(base / f"status-{args.tasks}", args.tasks)
        if args.pg:
            use_database(repo, database.enter_context(fresh_database(args.pg)))
        entries = fill_registry(repo, args.entries)
        counts = check_output(repo, args.tasks, entries)
        measured = interleave(cases(repo), args.runs)
        results = measured["cases"]
        for name, result in results.items():
            print(row(name, result), flush=True)
    finally:
        database.close()
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    bare = results["python_bare"]["median_ms"]
    report = {
        "machine": probe.record(),
        "setup": {
            "tasks": args.tasks,
            "entries": entries,
            "entry_states": dict(STATUS_MIX),
            "counts": counts,
        },
        "store": "postgresql" if args.pg else "json",
        "command": "task status --json (base ref main, parse cache warm)",
        "results": results,
        "retaken_rounds": measured["retaken_rounds"],
        "ratio_to_bare_python": {name: round(r["median_ms"] / bare, 1) for name, r in results.items()},
        "targets": [verdict("status_warm", results["status_warm"]["median_ms"], TARGET_MS)],
    }
    save(report, args.out)


if __name__ == "__main__":
    main()
