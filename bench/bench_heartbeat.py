"""Benchmark the heartbeat cycle as cron runs it: 10,000 and 50,000 tasks, a dispatcher at capacity.

``.venv/bin/python bench/bench_heartbeat.py [--sizes 10000 50000]`` builds, per size, a
repository of generated tasks (bench/gen_tasks.py) whose registry holds what a busy
dispatcher's does (bench/entries.py): 50 live workers (they carry this process's pid
and start time, so they read alive), 100 attempts in review, 50 retries not yet due,
50 parked tasks, and released entries of work long done, one entry per 10 tasks in
all. ``max_parallel`` is the number of live workers, so a cycle reconciles, classifies
every task and writes snapshot.json but launches nothing; every timed cycle is checked
to have dispatched and changed nothing. It reports, per size:

- ``cron``: ``task-manager-heartbeat --json`` as a fresh process (the CLI entry point
  cron runs; the parse cache warm from the cycle before, as every minute after the
  first), its wall time beside the ``duration_ms`` the cycle reports in the same runs;
  ``python -c pass`` in the same interleaved rounds;
- ``cycle_in_process``: ``run_cycle`` called in this process, cold (no parse cache)
  and warm, for the part the process start does not explain;
- at the first size, with ``--dispatches N`` (default 5): one dispatch (claim, worktree
  with a checkout of the task files, prompt, detached wrapper start, start record; the
  worker command is ``python -c pass``), and ``git worktree add`` alone.

Target: cron at 50,000 tasks <= 400 ms (median wall time). Prints PASS/FAIL and writes
bench/results/heartbeat.json with the machine record (bench/machine.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench_registry import fresh_database
from bench_status import use_database
from entries import STEADY_MIX, fill_registry
from gen_tasks import generate
from machine import Probe, results_file
from timing import PYTHON, Sample, interleave, plain, row, run_output, save, summary, verdict

from taskfiles import config as tconfig
from taskfiles import git, process
from taskfiles.dispatch import cycle as heartbeat
from taskfiles.dispatch import launch
from taskfiles.dispatch.scene import Scene
from taskfiles.registry import open_registry
from taskfiles.status import Observation, observe, planning_source

HEARTBEAT = str(Path(sys.executable).with_name("task-manager-heartbeat"))
TARGET_MS = {50_000: 400}
# Stalled workers would be failed by a cycle: a long bench must not age them into that.
SETTINGS = """
[worker]
command = ["{python}", "-c", "pass"]

[heartbeat]
max_parallel = {live}

[limits]
stall_after_seconds = 86400
"""


def ready_order(cfg: tconfig.Config) -> Observation:
    """What the cycle sees at the base ref."""
    registry = open_registry(cfg)
    return observe(cfg, registry, now=registry.clock(), source=planning_source(cfg))


def build(root: Path, count: int, registry_url: str | None = None) -> tuple[tconfig.Config, int]:
    """The repository, its settings and its registry; returns the config and the entries."""
    generate(root, count)
    if registry_url:
        use_database(root, registry_url)
    (root / "registry").mkdir()
    (root / "registry" / ".gitignore").write_text("*\n")
    wanted = max(count // 10, 1)
    live = min(wanted, dict(STEADY_MIX)["running"])
    with (root / "taskfiles.toml").open("a", encoding="utf-8") as handle:
        handle.write(SETTINGS.format(python=sys.executable, live=live))
    me = os.getpid()
    entries = fill_registry(root, wanted, mix=STEADY_MIX, live=(me, process.pid_start_time(me)))
    return tconfig.load(root), entries


def timed(fn: Callable[[], Any]) -> float:
    """Milliseconds one call of ``fn`` takes."""
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) * 1000


def steady(result: dict[str, Any]) -> dict[str, Any]:
    """A cycle's JSON, checked: it ran and it dispatched and changed nothing."""
    if not result["ran"] or result["dispatched"] or result["actions"]:
        keys = ("ran", "dispatched", "actions", "counts")
        raise SystemExit(f"the cycle was not steady: {json.dumps({k: result[k] for k in keys})[:800]}")
    return result


def cron_sample(root: Path) -> dict[str, float]:
    """One ``task-manager-heartbeat --json`` process: its wall time and the duration_ms the
    cycle reports."""
    took, out = run_output([HEARTBEAT, "--json"], root)
    return {"cron": took, "cycle_duration_ms": steady(json.loads(out))["duration_ms"]}


def cron(root: Path, runs: int) -> dict[str, Any]:
    """The cycle as cron runs it, interleaved with bare Python, after one untimed cycle."""
    steady(json.loads(run_output([HEARTBEAT, "--json"], root)[1]))
    cases: dict[str, Callable[[], Sample]] = {
        "python_bare": plain([PYTHON, "-c", "pass"], root),
        "cron": lambda: cron_sample(root),
    }
    return interleave(cases, runs)


def cycle_times(cfg: tconfig.Config, runs: int) -> dict[str, Any]:
    """The cycle in this process: cold (no parse cache), then ``runs`` warm ones."""
    cache = (cfg.repo.common_dir if cfg.repo else cfg.root) / "taskfiles"
    shutil.rmtree(cache, ignore_errors=True)
    results: list[heartbeat.CycleResult] = []
    cold = timed(lambda: results.append(heartbeat.run_cycle(cfg)))
    warm = [timed(lambda: results.append(heartbeat.run_cycle(cfg))) for _ in range(runs)]
    steady(results[-1].to_dict())
    return {"cold_ms": round(cold, 1), **summary(warm), "counts": dict(results[-1].counts)}


def dispatch_times(cfg: tconfig.Config, runs: int) -> dict[str, Any]:
    """One whole dispatch each, then worktree creation alone, on ready tasks not yet live."""
    registry = open_registry(cfg)
    seen = ready_order(cfg)
    tasks = seen.tasks
    spare = seen.dispatchable()
    scene = Scene(cfg, registry, registry.clock(), process.host_identity())
    root = cfg.repo.main_root if cfg.repo else cfg.root
    whole = [timed(partial(launch.dispatch_one, scene, tasks, task)) for task in spare[:runs]]
    alone = [
        timed(partial(git.add_worktree, root, root / ".worktrees" / t.slug, f"task/{t.slug}", "main"))
        for t in spare[runs : 2 * runs]
    ]
    deadline = time.monotonic() + 60  # let the wrappers finish before the folder goes
    while time.monotonic() < deadline and any(
        e.is_live and e.pid != os.getpid() for e in registry.entries().values()
    ):
        time.sleep(0.1)
    return {"dispatch_one": summary(whole), "worktree_add": summary(alone)}


def bench_size(base: Path, count: int, runs: int, dispatches: int, pg: str | None) -> dict[str, Any]:
    """Build one size and measure it."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database(pg)) if pg else None
        cfg, entries = build(base / f"heartbeat-{count}", count, url)
        report: dict[str, Any] = {"tasks": count, "entries": entries}
        report["cron"] = cron(cfg.root, runs)
        report["cycle_in_process"] = cycle_times(cfg, runs)
        if dispatches:
            report.update(dispatch_times(cfg, dispatches))
    wall, reported = report["cron"]["cases"]["cron"], report["cron"]["cases"]["cycle_duration_ms"]
    print(f"{count:>6} {row('python -c pass', report['cron']['cases']['python_bare'])}", flush=True)
    print(f"{count:>6} {row('heartbeat process', wall)}", flush=True)
    print(f"{count:>6} {row('  its duration_ms', reported)}", flush=True)
    print(f"{count:>6} {row('cycle in process, warm', report['cycle_in_process'])}", flush=True)
    return report


def main() -> None:
    """Command line: bench_heartbeat.py [--sizes N ...] [--runs N] [--dispatches N] [--quick] [--out FILE]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="task counts (default 10000 50000; --quick: 300)"
    )
    parser.add_argument("--runs", type=int, help="rounds (default 11; --quick: 1)")
    parser.add_argument(
        "--dispatches", type=int, help="dispatches timed at the first size (default 5; --quick: 0)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: a small repository, one round")
    parser.add_argument("--pg", help="a PostgreSQL registry: an admin URL (a database is made per size)")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/heartbeat.json)")
    args = parser.parse_args()
    sizes = args.sizes or ([300] if args.quick else [10_000, 50_000])
    runs = args.runs or (1 if args.quick else 11)
    dispatches = args.dispatches if args.dispatches is not None else (0 if args.quick else 5)
    out = args.out or results_file("heartbeat-pg.json" if args.pg else "heartbeat.json", args.quick)
    probe = Probe(0.1 if args.quick else 1.0)
    with tempfile.TemporaryDirectory(prefix="taskfiles-bench-heartbeat-") as tmp:
        results = {
            n: bench_size(Path(tmp), n, runs, dispatches if i == 0 else 0, args.pg)
            for i, n in enumerate(sizes)
        }
    report: dict[str, Any] = {
        "machine": probe.record(),
        "setup": {
            "runs": runs,
            "entry_states": dict(STEADY_MIX),
            "entries": "one per 10 tasks: the mix, then released entries",
            "command": "task-manager-heartbeat --json (dispatch on, capacity full: nothing launched)",
        },
        "store": "postgresql" if args.pg else "json",
        "results": {str(n): r for n, r in results.items()},
        "targets": [
            verdict(f"{n} tasks heartbeat process", results[n]["cron"]["cases"]["cron"]["median_ms"], ms)
            for n, ms in TARGET_MS.items()
            if n in results
        ],
    }
    save(report, out)


if __name__ == "__main__":
    main()
