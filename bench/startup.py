"""Start-up cost per typer version, against bare Python and our real CLI, in one run.

typer 0.26+ dropped click (our CLI layer subclasses click's group to map errors),
so the versions are compared on the same probe app: eight commands with typed
options, shaped like ours, running one of them. The project's own `task list --json`
(typer 0.25, from this venv) over a one-task repository is timed in the same loop.
Creates a throw-away venv per typer version (installing from PyPI); interleaves
the runs so machine noise hits every case alike.
Usage: python bench/startup.py [--runs 15] [--versions 0.25.1 0.29.2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPS = ["python-frontmatter", "gitpython", "watchfiles", "pyyaml"]


def make_venv(folder: Path, typer_version: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", f"typer=={typer_version}", *DEPS],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return python


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


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--versions", nargs="+", default=["0.25.1", "0.29.2"])
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pythons = {v: make_venv(Path(tmp) / v, v) for v in args.versions}
        samples: dict[str, list[float]] = {"bare python": [], "task list": []}
        samples.update({f"typer {v}": [] for v in pythons})
        task = Path(sys.executable).parent / "task"
        repo = Path(tmp) / "repo"
        (repo / "tasks").mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        (repo / "tasks" / "one.md").write_text("---\ntitle: One\n---\n")
        for _ in range(args.runs):
            samples["bare python"].append(wall([sys.executable, "-c", "pass"]))
            samples["task list"].append(wall([str(task), "-C", str(repo), "list", "--json"]))
            for version, python in pythons.items():
                samples[f"typer {version}"].append(wall([str(python), "-c", PROBE]))
    bare = statistics.median(samples["bare python"])
    for name, values in samples.items():
        median = statistics.median(values)
        results[name] = {"median_ms": round(median * 1000, 1), "ratio_to_bare": round(median / bare, 2)}
        print(f"{name:>14}: median {median * 1000:6.1f} ms  ({median / bare:.2f}x bare python)")
    out = ROOT / "bench" / "results" / "startup.json"
    out.parent.mkdir(exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "runs": args.runs}
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
