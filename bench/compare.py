"""Compare the working tree against an earlier commit, command by command, interleaved.

``.venv/bin/python bench/compare.py --base REV`` checks REV out into a temporary git
worktree, builds one repository of generated tasks (bench/gen_tasks.py) with a
registry of live entries and a cycle record, then times the real commands as cron
and people run them (``task list --json``, ``task status --json``, ``task next
--json``, ``task validate``, ``task-manager-heartbeat --no-dispatch``), each run of
the base followed by one of the working tree, so both see the same machine noise.
The same interpreter runs both; ``PYTHONPATH`` picks the code, and each version works
on its own copy of the repository, so neither reads (or spoils) the other's parse
cache. Prints the medians and the ratio (working tree / base) and writes
bench/results/compare.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gen_tasks import generate
from machine import Probe, child_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
SETTINGS = '\n[worker]\ncommand = ["{python}", "-c", "pass"]\n'
COMMANDS = {
    "list --json": [str(BIN / "task"), "list", "--json"],
    "status --json": [str(BIN / "task"), "status", "--json"],
    "next --json": [str(BIN / "task"), "next", "--json"],
    "validate": [str(BIN / "task"), "validate"],
    "heartbeat --no-dispatch": [str(BIN / "task-manager-heartbeat"), "--no-dispatch"],
}


def checkout(rev: str, into: Path) -> Path:
    """A worktree of this repository at ``rev`` (its package is what ``PYTHONPATH`` loads)."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev], check=True)
    return into


def build(folder: Path, count: int) -> Path:
    """A repository of ``count`` tasks on main (its registry is filled by ``claim``)."""
    generate(folder, count)
    with (folder / "taskfiles.toml").open("a", encoding="utf-8") as handle:
        handle.write(SETTINGS.format(python=sys.executable))
    (folder / "registry").mkdir(exist_ok=True)
    (folder / "registry" / ".gitignore").write_text("*\n")
    return folder


def claim(folder: Path, entries: int, code: Path) -> None:
    """``entries`` live claims, written by the version at ``code`` (each reads its own format)."""
    env = {**child_env(), "PYTHONPATH": str(code)}
    script = (
        "import sys; from taskfiles import config, status; from taskfiles.registry import open_registry; "
        "cfg = config.load(); reg = open_registry(cfg); "
        "seen = status.observe(cfg, reg, now=reg.clock(), source=status.planning_source(cfg)); "
        f"[reg.claim(t.slug, worker='bench', owner=t.owner) for t in seen.dispatchable()[:{entries}]]"
    )
    subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, check=True)


def timed(command: list[str], cwd: Path, code: Path) -> float:
    """Milliseconds one run of ``command`` takes with the package at ``code``."""
    env = {**child_env(), "PYTHONPATH": str(code)}
    began = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - began) * 1000
    if done.returncode != 0:  # a failing command is not a fast one
        raise SystemExit(f"{' '.join(command)} with {code}: exit {done.returncode}: {done.stderr.decode()}")
    return elapsed


def compare(repos: dict[str, Path], base: Path, runs: int) -> dict[str, Any]:
    """Interleaved runs of every command, base then working tree; medians and the ratio."""
    code = {"base": base, "tree": ROOT}
    results: dict[str, Any] = {}
    for name, command in COMMANDS.items():
        for side in ("base", "tree"):  # warm both parse caches and bytecode first
            timed(command, repos[side], code[side])
        samples: dict[str, list[float]] = {"base": [], "tree": []}
        for _ in range(runs):
            for side in ("base", "tree"):
                samples[side].append(timed(command, repos[side], code[side]))
        base_ms, tree_ms = (statistics.median(samples[k]) for k in ("base", "tree"))
        results[name] = {
            "base_median_ms": round(base_ms, 1),
            "tree_median_ms": round(tree_ms, 1),
            "ratio": round(tree_ms / base_ms, 2),
            "runs": runs,
        }
        print(f"{name:26} base {base_ms:7.1f} ms   tree {tree_ms:7.1f} ms   x{tree_ms / base_ms:.2f}")
    return results


def main() -> None:
    """Command line: compare.py --base REV [--tasks 10000] [--entries 50] [--runs 9] [--out FILE]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="The commit to compare against, e.g. HEAD~3.")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "compare.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="taskfiles-compare-"))
    probe = Probe()
    base = work / "base"
    try:
        checkout(args.base, base)
        repo = build(work / "repo", args.tasks)
        twin = work / "repo-base"
        shutil.copytree(repo, twin, symlinks=True)
        claim(repo, args.entries, ROOT)
        claim(twin, args.entries, base)
        results = compare({"base": twin, "tree": repo}, base, args.runs)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    report = {"machine": probe.record(), "base": args.base, "tasks": args.tasks, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
