"""The fixed cost of a command: what any ``task`` run pays before it does its work.

``.venv/bin/python bench/startup.py`` builds a one-task repository with the task
claimed, then times in interleaved rounds (one run of each per round, median):

- ``python_bare``: ``python -c pass``, the floor;
- ``import_click``: ``python -c "import click"``, the floor of any click command line
  (what a command costs above it is ours);
- ``import_cli``: ``python -c "import taskfiles.cli"``;
- ``task_list_one``: ``task list --json`` in the one-task repository (warm: an untimed
  run just before);
- ``task_note_claimed``: ``task note one TEXT`` against the live claim (a registry
  write: the lock, one journal line, its fsync).

Target: task_list_one and task_note_claimed <= 70 ms (median). Prints PASS/FAIL and
writes bench/results/startup.json with the machine record (bench/machine.py). Runs
without network.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from machine import Probe, child_env, results_file
from timing import PYTHON, TASK, interleave, plain, row, run_output, save, verdict, warm

TARGET_MS = 70


def one_task_repo(folder: Path) -> Path:
    """A git repository with one ready task, ``one``, claimed."""
    (folder / "tasks").mkdir(parents=True)
    (folder / "tasks" / "one.md").write_text("---\ntitle: One\nstatus: ready\n---\n", encoding="utf-8")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-C", str(folder)]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "one task"]):
        subprocess.run([*git, *args], check=True, env=child_env())
    run_output([TASK, "claim", "one"], folder)
    return folder


def cases(repo: Path) -> dict[str, Callable[[], float]]:
    """Every case, in the order a round runs them."""
    return {
        "python_bare": plain([PYTHON, "-c", "pass"], repo),
        "import_click": plain([PYTHON, "-c", "import click"], repo),
        "import_cli": plain([PYTHON, "-c", "import taskfiles.cli"], repo),
        "task_list_one": warm("task_list_one", [TASK, "list", "--json"], repo),
        "task_note_claimed": plain([TASK, "note", "one", "bench note"], repo),
    }


def main() -> None:
    """Command line: startup.py [--runs 15] [--quick] [--out FILE]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="rounds (default 15; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one round")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/startup.json)")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 15)
    args.out = args.out or results_file("startup.json", args.quick)
    probe = Probe(0.1 if args.quick else 1.0)
    with tempfile.TemporaryDirectory(prefix="taskfiles-bench-startup-") as tmp:
        repo = one_task_repo(Path(tmp) / "repo")
        measured = interleave(cases(repo), runs)
    results = measured["cases"]
    bare = results["python_bare"]["median_ms"]
    for name, result in results.items():
        print(f"{row(name, result)}   {result['median_ms'] / bare:5.1f}x bare python", flush=True)
    report = {
        "machine": probe.record(),
        "setup": {"runs": runs, "rounds": "interleaved: one run of every case per round"},
        "results": results,
        "retaken_rounds": measured["retaken_rounds"],
        "ratio_to_bare_python": {name: round(r["median_ms"] / bare, 2) for name, r in results.items()},
        "targets": [
            verdict(name, results[name]["median_ms"], TARGET_MS)
            for name in ("task_list_one", "task_note_claimed")
        ],
    }
    save(report, args.out)


if __name__ == "__main__":
    main()
