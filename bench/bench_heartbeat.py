"""Benchmark the heartbeat cycle: 10,000 tasks, 50 live workers, nothing to dispatch.

``.venv/bin/python bench/bench_heartbeat.py`` builds a 10,000-task repository
(bench/gen_tasks.py) in a temporary folder, records 50 live workers in the registry
(all alive: they carry this process's pid and start time) and sets max_parallel to
50, so a cycle reconciles, classifies 10,000 tasks and writes snapshot.json but
dispatches nothing. It reports:

- the cycle in-process (``heartbeat.run_cycle``): cold (parse cache empty) and the
  median of warm runs; target: median <= 500 ms;
- the cycle as cron runs it (``task-manager-heartbeat --no-dispatch``, process start
  included);
- one dispatch (claim, worktree creation with a checkout of the 10,000-file tree,
  prompt, detached wrapper start, start record), and of that the worktree alone.

Writes bench/results/heartbeat.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_list import machine
from bench_registry import fresh_database
from gen_tasks import generate

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from taskfiles import config as tconfig  # noqa: E402
from taskfiles import git, process  # noqa: E402
from taskfiles.dispatch import cycle as heartbeat  # noqa: E402
from taskfiles.dispatch import launch  # noqa: E402
from taskfiles.dispatch.scene import Scene  # noqa: E402
from taskfiles.registry import open_registry  # noqa: E402
from taskfiles.status import Observation, observe, planning_source  # noqa: E402


def ready_order(cfg: tconfig.Config) -> Observation:
    """What the cycle sees at the base ref."""
    registry = open_registry(cfg)
    return observe(cfg, registry, now=registry.clock(), source=planning_source(cfg))


SETTINGS = """
[worker]
command = ["{python}", "-c", "pass"]

[heartbeat]
max_parallel = 50
"""
LIVE = 50


def timed(fn: Callable[[], Any]) -> float:
    """Milliseconds one call of ``fn`` takes."""
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) * 1000


def summary(samples: list[float]) -> dict[str, float]:
    """Median, min and max of ``samples`` (ms), rounded."""
    return {
        "median_ms": round(statistics.median(samples), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
        "runs": len(samples),
    }


def build(root: Path, count: int, registry_url: str | None = None) -> tconfig.Config:
    """The repository, its settings, and 50 live entries for ready tasks."""
    generate(root, count)
    with (root / "taskfiles.toml").open("a", encoding="utf-8") as handle:
        handle.write(SETTINGS.format(python=sys.executable))
        if registry_url:
            handle.write(f'registry_url = "{registry_url}"\n')
    (root / "registry").mkdir()
    (root / "registry" / ".gitignore").write_text("*\n")
    cfg = tconfig.load(root)
    registry = open_registry(cfg)
    me, started = os.getpid(), process.pid_start_time(os.getpid())
    ready = ready_order(cfg).dispatchable()
    for task in ready[:LIVE]:
        lease = registry.claim(task.slug, worker="bench", owner=task.owner).lease
        registry.start(task.slug, lease, pid=me, pid_start_time=started)
    return cfg


def cycle_times(cfg: tconfig.Config, runs: int) -> tuple[float, list[float], heartbeat.CycleResult]:
    """The cold cycle (no parse cache) and ``runs`` warm ones."""
    cache = (cfg.repo.common_dir if cfg.repo else cfg.root) / "taskfiles"
    shutil.rmtree(cache, ignore_errors=True)
    result: list[heartbeat.CycleResult] = []
    cold = timed(lambda: result.append(heartbeat.run_cycle(cfg)))
    warm = [timed(lambda: result.append(heartbeat.run_cycle(cfg))) for _ in range(runs)]
    return cold, warm, result[-1]


def cli_times(root: Path, runs: int) -> list[float]:
    """``task-manager-heartbeat --no-dispatch`` as cron runs it."""
    command = [str(Path(sys.executable).with_name("task-manager-heartbeat")), "--no-dispatch"]
    return [
        timed(lambda: subprocess.run(command, cwd=root, check=True, capture_output=True)) for _ in range(runs)
    ]


def dispatch_times(cfg: tconfig.Config, runs: int) -> tuple[list[float], list[float]]:
    """One whole dispatch each, then worktree creation alone, on ready tasks not yet live."""
    registry = open_registry(cfg)
    seen = ready_order(cfg)
    tasks = seen.tasks
    spare = seen.dispatchable()
    scene = Scene(cfg, registry, registry.clock(), os.uname().nodename)
    whole = [timed(lambda t=task: launch.dispatch_one(scene, tasks, t)) for task in spare[:runs]]
    root = cfg.repo.main_root if cfg.repo else cfg.root
    alone = [
        timed(lambda t=task: git.add_worktree(root, root / ".worktrees" / t.slug, f"task/{t.slug}", "main"))
        for task in spare[runs : 2 * runs]
    ]
    deadline = time.monotonic() + 60  # let the wrappers finish before the folder goes
    while time.monotonic() < deadline and any(
        e.is_live for e in registry.entries().values() if e.worker != "bench"
    ):
        time.sleep(0.1)
    return whole, alone


def main() -> None:
    """Build, measure, print and write bench/results/heartbeat.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--dispatches", type=int, default=5)
    parser.add_argument("--pg", help="a PostgreSQL registry: an admin URL (a database is made for the run)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="taskfiles-bench-heartbeat-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        root = Path(tmp) / "repo"
        url = stack.enter_context(fresh_database(args.pg)) if args.pg else None
        cfg = build(root, args.count, url)
        cold, warm, last = cycle_times(cfg, args.runs)
        assert last.dispatched == () and last.counts["active"] == LIVE, last.counts
        cli = cli_times(root, max(3, args.runs // 3))
        whole, alone = dispatch_times(cfg, args.dispatches)
        report = {
            "machine": machine(),
            "setup": {
                "tasks": args.count,
                "live_workers": LIVE,
                "max_parallel": LIVE,
                "counts": dict(last.counts),
            },
            "store": "postgresql" if args.pg else "json",
            "target": {"cycle_median_ms": 500},
            "cycle_in_process": {"cold_ms": round(cold, 1), **summary(warm)},
            "cycle_cli": summary(cli),
            "dispatch_one": summary(whole),
            "worktree_add": summary(alone),
        }
    print(json.dumps(report, indent=2))
    out = HERE / "results" / ("heartbeat-pg.json" if args.pg else "heartbeat.json")
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
