"""Benchmark ``task status --json``: 10,000 tasks at the base ref, 1,000 registry entries, warm.

``.venv/bin/python bench/bench_status.py`` builds a repository with bench/gen_tasks.py,
fills its registry with 1,000 entries in a realistic mix of states (most running,
with a live worker pid each, so status checks every pid), then times the real
``task status --json`` as a subprocess after an untimed run that fills the parse
cache. Bare ``python -c pass``, ``import taskfiles.cli`` and ``task list --json --ref
main`` are timed in the same rounds as baselines (interleaved, so load on a shared
machine hits every case alike). Prints median/min/max and writes
bench/results/status.json with the machine it ran on and its load average.

Target (median, warm): status <= 300 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_list import BIN, HERE, TASK, cache_marks, child_env, machine, run
from bench_registry import fresh_database
from gen_tasks import generate

TARGET_MS = 300
# (state, how many): 1,000 entries, most of them running, as on a busy dispatcher.
MIX = (
    ("running", 600),
    ("claimed", 100),
    ("exited", 100),
    ("retry_wait", 100),
    ("parked", 50),
    ("failed", 50),
)


def fill_registry(repo: Path, count: int, *, outcomes: bool = False) -> int:
    """Write ``count`` entries for ready tasks in one registry transaction; return how many.

    ``outcomes`` also records run ends as ``task.exited`` events and a reported cost, which
    the status page's metrics read (bench_serve.py).
    """
    from taskfiles import config, process
    from taskfiles.plan import source as tasksource
    from taskfiles.registry import Change, Plan, Snapshot, open_registry
    from taskfiles.registry.records import RegistryEntry, format_time, utc_now

    cfg = config.load(repo)
    tasks = tasksource.load(cfg, "main").tasks
    states = [state for state, n in MIX for _ in range(n)][:count]
    slugs = [t.slug for t in tasks if t.status == "ready"][: len(states)]
    if len(slugs) < len(states):
        raise SystemExit(f"only {len(slugs)} ready tasks for {len(states)} entries; generate more tasks")
    # Past the mix, the entries of work long done: released claims on the other tasks.
    others = [t.slug for t in tasks if t.slug not in set(slugs)][: max(count - len(states), 0)]
    slugs, states = slugs + others, states + ["released"] * len(others)
    stamp = format_time(utc_now())
    host = socket.gethostname()
    init_start = process.pid_start_time(1)  # pid 1 outlives the benchmark: every worker reads alive

    def entry(slug: str, state: str) -> RegistryEntry:
        live = state in ("running", "claimed")
        return RegistryEntry(
            slug,
            state,
            1,
            worker=f"bench-{slug[-3:]}",
            host=host,
            pid=1 if live else None,
            pid_start_time=init_start if live else None,
            claimed_at=stamp,
            started_at=stamp if state != "claimed" else None,
            heartbeat_at=stamp if state != "claimed" else None,
            finished_at=None if live else stamp,
            exit_code={"exited": 0, "failed": 1}.get(state),
            next_attempt_at=stamp if state == "retry_wait" else None,
            parked_reason="bench" if state == "parked" else None,
            progress="working on it",
            cost_usd=0.12 if outcomes else 0.0,
            total_cost_usd=0.12 if outcomes else 0.0,
        )

    def write(s: Snapshot) -> Plan[None]:
        changes = [
            Change(slug, made, _event(state, outcomes), {"exit_code": made.exit_code} if outcomes else {})
            for slug, state in zip(slugs, states, strict=True)
            for made in [entry(slug, state)]
        ]
        return Plan(tuple(changes), None)

    registry = open_registry(cfg)
    registry.transact(write)
    return len(registry.entries())


def use_database(repo: Path, url: str) -> None:
    """Point the repository's registry at ``url`` (taskfiles.toml), as a team would."""
    with (repo / "taskfiles.toml").open("a", encoding="utf-8") as handle:
        handle.write(f'registry_url = "{url}"\n')


def _event(state: str, outcomes: bool) -> str:
    return "task.exited" if outcomes and state in ("exited", "failed") else "task.claimed"


def check_output(repo: Path, tasks: int, entries: int) -> dict[str, int]:
    """The benchmark times the real thing: every task and entry is classified."""
    out = subprocess.run(
        [TASK, "status", "--json"], cwd=repo, env=child_env(), capture_output=True, check=True
    ).stdout
    report = json.loads(out)
    with_entry = sum(1 for row in report["tasks"] if row["entry"] is not None)
    shown = min(entries, sum(n for _, n in MIX))  # released entries are classified, not shown
    if len(report["tasks"]) != tasks or with_entry != shown:
        raise SystemExit(f"status gave {len(report['tasks'])} rows, {with_entry} with entries")
    counts: dict[str, int] = report["counts"]
    return counts


def cases() -> dict[str, list[str]]:
    """Case name -> command (all warm: an untimed run first)."""
    py = str(BIN / "python")
    return {
        "python_bare": [py, "-c", "pass"],
        "import_cli": [py, "-c", "import taskfiles.cli"],
        "list_ref_warm": [TASK, "list", "--json", "--ref", "main"],
        "status_warm": [TASK, "status", "--json"],
    }


def measure_interleaved(commands: dict[str, list[str]], repo: Path, runs: int) -> dict[str, Any]:
    """Median/min/max of each command, taken in rounds (one run of each per round), so a
    busy moment on a shared machine slows every case alike and the ratios stay fair.
    Every command runs once untimed first (warm caches); rounds are retaken when a parse
    cache file changed meanwhile (a warm sample must not be a cold one)."""
    for argv in commands.values():
        run(argv, repo)
    for _ in range(3):
        marks = cache_marks(repo)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, argv in commands.items():
                samples[name].append(run(argv, repo))
        if cache_marks(repo) == marks:
            break
    return {name: _summary(values) for name, values in samples.items()}


def _summary(samples: list[float]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(samples), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
        "runs": len(samples),
        "samples_ms": [round(s, 1) for s in samples],
    }


def main() -> None:
    """Command line: bench_status.py [--tasks N] [--entries N] [--runs N] [--out FILE] [--keep DIR]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "status.json")
    parser.add_argument("--keep", type=Path, help="Build the repository here and keep it.")
    parser.add_argument("--pg", help="a PostgreSQL registry: an admin URL (a database is made for the run)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="taskfiles-bench-status-"))
    load_before = os.getloadavg()
    database = contextlib.ExitStack()
    try:
        repo = generate(base / f"status-{args.tasks}", args.tasks)
        if args.pg:
            use_database(repo, database.enter_context(fresh_database(args.pg)))
        entries = fill_registry(repo, args.entries)
        counts = check_output(repo, args.tasks, entries)
        results = measure_interleaved(cases(), repo, args.runs)
        for name, result in results.items():
            print(f"{name:<14} {_row(result)}", flush=True)
    finally:
        database.close()
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    report = _report(args, entries, counts, results)
    report["store"] = "postgresql" if args.pg else "json"
    # The machine may be shared: a busy one makes every number here slower.
    report["machine"]["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    ratio = report["ratio_to_bare_python"]["status_warm"]
    print(f"{report['target']}: {report['verdict']}; {ratio}x bare python")
    print(f"wrote {args.out}")


def _row(result: dict[str, Any]) -> str:
    return (
        f"median {result['median_ms']:>7.1f} ms   min {result['min_ms']:>7.1f}   max {result['max_ms']:>7.1f}"
    )


def _report(
    args: argparse.Namespace, entries: int, counts: dict[str, int], results: dict[str, Any]
) -> dict[str, Any]:
    bare = results["python_bare"]["median_ms"]
    median = results["status_warm"]["median_ms"]
    return {
        "machine": machine(),
        "setup": {"tasks": args.tasks, "entries": entries, "entry_states": dict(MIX), "counts": counts},
        "command": "task status --json (base ref main, parse cache warm)",
        "results": results,
        "ratio_to_bare_python": {name: round(r["median_ms"] / bare, 1) for name, r in results.items()},
        "target": f"status_warm median <= {TARGET_MS} ms",
        "verdict": f"{'met' if median <= TARGET_MS else 'MISSED'} ({median} ms)",
    }


if __name__ == "__main__":
    main()
