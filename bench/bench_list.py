"""Benchmark loading tasks: the real CLI as subprocesses, warm and truly cold, beside Backlog.md.

``.venv/bin/python bench/bench_list.py [--sizes 10000 50000]`` builds repositories of
generated tasks (bench/gen_tasks.py, committed on ``main``) in a temporary folder and
times, in interleaved rounds (one run of every case per round, median over the rounds):

- ``list_warm``, ``list_ref_warm``, ``validate_warm``: ``task list --json``, ``task list
  --json --ref main`` and ``task validate`` right after an untimed run of the same
  command (a sample whose run rewrote a cache file was not warm: its round is retaken);
- ``list_cold``, ``list_ref_cold``, ``validate_cold``: the same commands after deleting
  ``.git/taskfiles/``, every cache taskfiles keeps there (the parse results of the
  working tree, the blobs and each ref, the created dates, the parsed settings).
  Bytecode and the OS file cache stay warm: "cold" is a first run after a clone or a
  cache wipe, not after a reboot;
- baselines: ``python -c pass`` and ``python -c "import taskfiles.cli"``;
- ``backlog task list --plain`` over the same tasks in Backlog.md's format, when its
  ``backlog`` command is on PATH or ``--backlog`` is given (installed with npm into a
  cache folder), at sizes up to ``--backlog-max``; the output must list every task.
  Its median over ``task list --json``'s warm median from the same rounds is the ratio.

Targets (medians): at 10,000 tasks list_warm <= 150 ms and >= 30x Backlog.md,
list_cold and validate_cold <= 600 ms; at 50,000 list_warm <= 500 ms. Prints PASS/FAIL
for each and writes bench/results/tasks.json (with the machine record, bench/machine.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import backlogmd
from gen_tasks import generate
from machine import Probe, results_file
from timing import PYTHON, TASK, Retake, cold, interleave, plain, row, run_output, save, verdict, warm

RACY_SECONDS = 2.2  # files younger than the cache's racy window are never cached
TARGETS_MS = {10_000: {"list_warm": 150, "list_cold": 600, "validate_cold": 600}, 50_000: {"list_warm": 500}}
BACKLOG_RATIO = (10_000, 30)  # at this size, Backlog.md's median over list_warm's, at least
COMMANDS = {
    "list": [TASK, "list", "--json"],
    "list_ref": [TASK, "list", "--json", "--ref", "main"],
    "validate": [TASK, "validate"],
}


def cases(repo: Path, backlog: backlogmd.Listing | None) -> dict[str, Callable[[], float]]:
    """Every case of one size, in the order a round runs them."""
    found = {
        "python_bare": plain([PYTHON, "-c", "pass"], repo),
        "import_cli": plain([PYTHON, "-c", "import taskfiles.cli"], repo),
    }
    found.update({f"{name}_warm": warm(f"{name}_warm", argv, repo) for name, argv in COMMANDS.items()})
    found.update({f"{name}_cold": cold(argv, repo) for name, argv in COMMANDS.items()})
    if backlog is not None:
        found["backlog_list_plain"] = backlog.sample
    return found


def check_listing(repo: Path, count: int) -> None:
    """The benchmark times the real thing: every task comes out of both listings."""
    for argv in (COMMANDS["list"], COMMANDS["list_ref"]):
        listed = len(json.loads(run_output(argv, repo)[1]))
        if listed != count:
            raise SystemExit(f"{' '.join(argv[1:])} gave {listed} tasks, expected {count}")


def backlog_listing(command: str, base: Path, count: int) -> backlogmd.Listing:
    """The same tasks as a Backlog.md project, listed once untimed (all of them, or exit)."""
    listing = backlogmd.Listing(
        command, backlogmd.write_project(command, base / f"backlog-{count}", count), count
    )
    try:
        listing.sample()
    except Retake as why:
        raise SystemExit(f"{why} in {listing.project}: {listing.incomplete}") from None
    return listing


def bench_size(base: Path, count: int, runs: int, backlog: str | None) -> dict[str, Any]:
    """Generate one size's repositories and time every case in interleaved rounds."""
    repo = generate(base / f"tasks-{count}", count)
    listing = backlog_listing(backlog, base, count) if backlog else None
    time.sleep(RACY_SECONDS)
    check_listing(repo, count)
    measured = interleave(cases(repo, listing), runs)
    results: dict[str, Any] = measured["cases"]
    for name, result in results.items():
        print(f"{count:>6} {row(name, result)}", flush=True)
    bare = results["python_bare"]["median_ms"]
    report: dict[str, Any] = {
        "tasks": count,
        "cases": results,
        "retaken_rounds": measured["retaken_rounds"],
        "ratio_to_bare_python": {name: round(r["median_ms"] / bare, 1) for name, r in results.items()},
    }
    if listing:
        ratio = results["backlog_list_plain"]["median_ms"] / results["list_warm"]["median_ms"]
        report["backlog"] = {
            "listed": listing.count,
            "ratio_to_list_warm": round(ratio, 1),
            "incomplete_listings": listing.incomplete,  # runs that listed fewer: not samples
        }
        print(f"{count:>6} Backlog.md / task list --json (warm), same rounds: {ratio:.1f}x", flush=True)
    return report


def verdicts(results: dict[int, dict[str, Any]], backlog_note: str) -> list[dict[str, Any]]:
    """Each target of a size that ran: PASS or FAIL with the median; the Backlog.md ratio
    as NOT MEASURED (with why) when Backlog.md did not run at that size."""
    found = []
    for size, limits in TARGETS_MS.items():
        if size in results:
            cases = results[size]["cases"]
            found += [
                verdict(f"{size} tasks {name}", cases[name]["median_ms"], ms) for name, ms in limits.items()
            ]
    size, ratio = BACKLOG_RATIO
    if size in results:
        name = f"{size} tasks backlog task list --plain / list_warm"
        if "backlog" in results[size]:
            found.append(
                verdict(name, results[size]["backlog"]["ratio_to_list_warm"], ratio, at_least=True, unit="x")
            )
        else:
            found.append(
                {"target": f"{name} >= {ratio}x", "measured": None, "result": f"NOT MEASURED: {backlog_note}"}
            )
    return found


def main() -> None:
    """Command line: bench_list.py [--sizes N ...] [--runs N] [--backlog] [--quick] [--out FILE]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="task counts (default 10000 50000; --quick: 200)"
    )
    parser.add_argument("--runs", type=int, help="rounds (default 7; --quick: 1)")
    parser.add_argument(
        "--backlog", action="store_true", help="install Backlog.md with npm if it is not on PATH"
    )
    parser.add_argument(
        "--backlog-max", type=int, default=10_000, help="run Backlog.md up to this many tasks"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one round")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/tasks.json)")
    parser.add_argument("--keep", type=Path, help="build the repositories here and keep them")
    args = parser.parse_args()
    sizes = args.sizes or ([200] if args.quick else [10_000, 50_000])
    runs = args.runs or (1 if args.quick else 7)
    out = args.out or results_file("tasks.json", args.quick)
    probe = Probe(0.1 if args.quick else 1.0)
    command, backlog_note = backlogmd.find(args.backlog)
    if command is None:
        print(f"Backlog.md: {backlog_note}", flush=True)
    base = args.keep or Path(tempfile.mkdtemp(prefix="taskfiles-bench-list-"))
    try:
        results = {n: bench_size(base, n, runs, command if n <= args.backlog_max else None) for n in sizes}
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    report: dict[str, Any] = {
        "machine": probe.record(),
        "setup": {
            "runs": runs,
            "rounds": "interleaved: one run of every case per round",
            "cold": "rm -r .git/taskfiles (tree, blob, per-ref and created-date caches) before the run",
            "warm": "an untimed run of the command just before; retaken if the timed run rewrote a cache",
            "backlog": {
                "command": command,
                "found": backlog_note,
                "version": backlogmd.version(command) if command else None,
                "timed": "backlog task list --plain",
                "up_to_tasks": args.backlog_max,
                "config": "backlog init --defaults, cross-branch checks and remote operations off",
            },
        },
        "results": {str(n): r for n, r in results.items()},
        "targets": verdicts(results, backlog_note),
    }
    save(report, out)


if __name__ == "__main__":
    main()
