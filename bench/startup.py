"""The fixed cost of a command: what any ``task`` run pays before it does its work.

``.venv/bin/python bench/startup.py`` builds a one-task repository with the task
claimed, then times in interleaved rounds (one run of each per round, median):

- ``python_bare``: ``python -c pass``, the floor;
- ``import_cli``: ``python -c "import taskfiles.cli"``;
- ``task_list_one``: ``task list --json`` in the one-task repository (warm: an untimed
  run just before);
- ``task_note_claimed``: ``task note one TEXT`` against the live claim (a registry
  write: the lock, one journal line, its fsync).

Target: task_list_one and task_note_claimed <= 70 ms (median). Prints PASS/FAIL and
writes bench/results/startup.json with the machine record (bench/machine.py). Runs
without network.

``--typer-versions 0.25.1 0.29.2`` adds the typer comparison: a throw-away venv per
version (installed from PyPI, so it needs network) running the same probe app, eight
commands with typed options shaped like ours, in the same rounds. typer 0.26+ dropped
click, which our CLI layer subclasses to map errors; that comparison is why typer is
pinned below 0.26.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from machine import Probe, child_env, results_file
from timing import PYTHON, TASK, interleave, plain, row, run_output, save, verdict, warm

TARGET_MS = 70
DEPS = ["python-frontmatter", "gitpython", "watchfiles", "pyyaml"]
PROBE = """
from typing import Annotated
import typer
app = typer.Typer()
for name in ("init", "new", "list", "show", "ready", "complete", "validate", "next"):
    def command(slug: str, ref: Annotated[str | None, typer.Option(help="ref")] = None,
                as_json: Annotated[bool, typer.Option("--json", help="json")] = False) -> None:
        \"\"\"Help text.\"\"\"
    app.command(name)(command)
app(["list", "x", "--json"], prog_name="probe", standalone_mode=False)
"""


def one_task_repo(folder: Path) -> Path:
    """A git repository with one ready task, ``one``, claimed."""
    (folder / "tasks").mkdir(parents=True)
    (folder / "tasks" / "one.md").write_text("---\ntitle: One\nstatus: ready\n---\n", encoding="utf-8")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "-C", str(folder)]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "one task"]):
        subprocess.run([*git, *args], check=True, env=child_env())
    run_output([TASK, "claim", "one"], folder)
    return folder


def make_venv(folder: Path, typer_version: str) -> str:
    """A venv with ``typer_version`` and our other dependencies (from PyPI)."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", f"typer=={typer_version}", *DEPS]
    subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
    return str(python)


def cases(repo: Path, typer_pythons: dict[str, str]) -> dict[str, Callable[[], float]]:
    """Every case, in the order a round runs them."""
    found = {
        "python_bare": plain([PYTHON, "-c", "pass"], repo),
        "import_cli": plain([PYTHON, "-c", "import taskfiles.cli"], repo),
        "task_list_one": warm("task_list_one", [TASK, "list", "--json"], repo),
        "task_note_claimed": plain([TASK, "note", "one", "bench note"], repo),
    }
    found.update(
        {f"typer_{v}_probe": plain([python, "-c", PROBE], repo) for v, python in typer_pythons.items()}
    )
    return found


def main() -> None:
    """Command line: startup.py [--runs 15] [--typer-versions V ...] [--quick] [--out FILE]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="rounds (default 15; --quick: 1)")
    parser.add_argument("--typer-versions", nargs="+", default=[], help="also time typer's probe app (PyPI)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one round")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/startup.json)")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 15)
    args.out = args.out or results_file("startup.json", args.quick)
    probe = Probe(0.1 if args.quick else 1.0)
    with tempfile.TemporaryDirectory(prefix="taskfiles-bench-startup-") as tmp:
        pythons = {v: make_venv(Path(tmp) / f"typer-{v}", v) for v in args.typer_versions}
        repo = one_task_repo(Path(tmp) / "repo")
        measured = interleave(cases(repo, pythons), runs)
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
