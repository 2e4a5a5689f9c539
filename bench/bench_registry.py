"""Registry throughput and latency: N entries, P processes doing claim/heartbeat/finish.

Each process owns its own slugs among the N and loops claim -> start ->
3 x heartbeat (with cost) -> finish -> release, timing every operation. All
processes write the same registry, so every operation waits for the one lock and
appends one fsynced journal line (registry.json is rewritten only when the
journal after it outgrows half its size). Reports, per (entries, processes),
the aggregate operations per second, the p50/p99 latency of one operation and the
journal bytes per line, as the median over several runs; the runs are interleaved
(one run of every (entries, processes) pair per round).
Targets (JSON store): at 10,000 entries and 4 writers >= 300 ops/s and p99 <= 25 ms,
and the throughput within 1.5x from 100 to 10,000 entries. On PostgreSQL (--pg): at
10,000 entries and 8 writers as two hosts >= 1,000 ops/s and p99 <= 20 ms. Prints
PASS/FAIL for each and writes bench/results/registry.json (registry-pg.json) with the
machine record (bench/machine.py).
Usage: python bench/bench_registry.py [--runs 3] [--cycles 120] [--procs 4 8] [--entries 100 1000 10000]
[--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from machine import Probe, results_file  # noqa: E402
from timing import save, verdict  # noqa: E402

from taskfiles.registry import (  # noqa: E402
    Actor,
    Change,
    Plan,
    Registry,
    RegistryEntry,
    Snapshot,
)
from taskfiles.registry.jsonstore import JsonRegistry  # noqa: E402


def open_store(location: str, host: str = "bench") -> Registry:
    """The store at ``location``: a postgresql:// URL or a folder."""
    actor = Actor("bench", host, os.getpid())
    if location.startswith("postgresql://"):
        from taskfiles.registry.pgstore import PgRegistry

        return PgRegistry(location, actor=actor)
    return JsonRegistry(Path(location), actor=actor)


STATES = ("released", "exited", "failed", "running", "released", "parked")


def populate(location: str, entries: int) -> None:
    """Write ``entries`` realistic entries in one transaction."""

    def fill(s: Snapshot) -> Plan[None]:
        changes = []
        for n in range(entries):
            slug = f"task-{n:04d}"
            entry = RegistryEntry(
                slug,
                STATES[n % len(STATES)],
                lease=1,
                owner="core",
                worker=f"worker-{n % 7}",
                host="dispatch-1",
                pid=10_000 + n,
                pid_start_time=123_456 + n,
                claimed_at=s.stamp,
                started_at=s.stamp,
                heartbeat_at=s.stamp,
                heartbeats=n % 50,
                updated_at=s.stamp,
                worktree=f"/srv/repo/.worktrees/{slug}",
                branch=f"task/{slug}",
                task_blob=f"{n:040x}",
                progress="ran the test suite, fixing two failures in the parser",
                progress_percent=n % 100,
                cost_usd=0.42,
                total_cost_usd=1.37,
            )
            if entry.state == "parked":
                entry = replace(entry, parked_reason="same failure 3 times", consecutive_failures=3)
            changes.append(Change(slug, entry, None))
        return Plan(tuple(changes), None)

    open_store(location).transact(fill)


def worker(location: str, host: str, slugs: list[str], cycles: int, ready: Any, go: Any, out: Any) -> None:
    """Run ``cycles`` claim/start/heartbeat x3/finish/release loops over ``slugs``."""
    registry = open_store(location, host)
    latencies: list[float] = []

    def timed(fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        latencies.append(time.perf_counter() - start)
        return result

    ready.put(os.getpid())
    go.wait()
    began = time.perf_counter()
    for n in range(cycles):
        slug = slugs[n % len(slugs)]
        lease = timed(registry.claim, slug, worker=f"bench-{os.getpid()}").lease
        timed(registry.start, slug, lease, pid=os.getpid())
        for _ in range(3):
            timed(registry.heartbeat, slug, lease, cost_usd=0.01)
        timed(registry.finish, slug, lease, 0)
        timed(registry.release, slug)
    out.put((began, time.perf_counter(), latencies))


def one_run(entries: int, procs: int, cycles: int, pg: str | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        if pg:
            with fresh_database(pg) as url:
                results, size, per_line = measure(url, entries, procs, cycles)
        else:
            results, size, per_line = measure(str(Path(tmp) / "registry"), entries, procs, cycles)
    latencies = sorted(x for _, _, lat in results for x in lat)
    wall = max(end for _, end, _ in results) - min(start for start, _, _ in results)
    return {
        "ops": len(latencies),
        "ops_per_s": len(latencies) / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "max_ms": latencies[-1] * 1e3,
        "registry_bytes": size,
        "journal_bytes_per_line": per_line,
    }


def measure(location: str, entries: int, procs: int, cycles: int) -> tuple[list[Any], int, float]:
    """Fill the store, run ``procs`` writers (as two hosts), return their timings, the size of
    registry.json and the journal bytes a write (0 for a database)."""
    ctx = mp.get_context("spawn")
    populate(location, entries)
    released = [s for s, e in open_store(location).entries().items() if e.state == "released"]
    journal = None if location.startswith("postgresql://") else Path(location) / "events.jsonl"
    filled = journal.read_bytes() if journal else b""  # the populating transaction: one long line
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    shares = [released[i::procs][:10] for i in range(procs)]
    children = [
        ctx.Process(target=worker, args=(location, f"host-{i % 2}", shares[i], cycles, ready, go, out))
        for i in range(procs)
    ]
    for child in children:
        child.start()
    for _ in children:  # every child imported and waits at the barrier
        ready.get()
    go.set()
    results = [out.get() for _ in children]
    for child in children:
        child.join()
    if journal is None:
        return results, 0, 0.0
    size = (Path(location) / "registry.json").stat().st_size
    written = journal.read_bytes()[len(filled) :]
    return results, size, len(written) / max(written.count(b"\n"), 1)


@contextlib.contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    """A new, migrated database on the server ``admin`` connects to (dropped afterwards)."""
    import psycopg

    from taskfiles.registry import pgschema

    name = f"bench_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = admin.rsplit("/", 1)[0] + "/" + name
    try:
        pgschema.migrate(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


TARGETS = {
    "json": {"procs": 4, "ops_per_s": 300, "p99_ms": 25},
    "postgresql": {"procs": 8, "ops_per_s": 1000, "p99_ms": 20},
}
FLAT = 1.5  # throughput at 100 entries over throughput at 10,000, at most


def verdicts(table: list[dict[str, Any]], store: str) -> list[dict[str, Any]]:
    """The targets of the pairs that ran: PASS or FAIL with the median."""
    medians = {(row["entries"], row["procs"]): row["median"] for row in table}
    target = TARGETS[store]
    found = []
    at = medians.get((10_000, target["procs"]))
    if at:
        where = f"10000 entries, {target['procs']} writers"
        found.append(
            verdict(f"{where} ops/s", at["ops_per_s"], target["ops_per_s"], at_least=True, unit="ops/s")
        )
        found.append(verdict(f"{where} p99", at["p99_ms"], target["p99_ms"]))
    for procs in sorted({p for _, p in medians}):
        small, large = medians.get((100, procs)), medians.get((10_000, procs))
        if small and large:
            ratio = small["ops_per_s"] / large["ops_per_s"]
            found.append(verdict(f"{procs} writers ops/s at 100 / at 10000 entries", ratio, FLAT, unit="x"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, help="rounds (default 3; --quick: 1)")
    parser.add_argument(
        "--cycles", type=int, help="loops per process, 7 operations each (default 120; --quick: 5)"
    )
    parser.add_argument("--procs", type=int, nargs="+", help="writers (default 4 8; --quick: 2)")
    parser.add_argument(
        "--entries", type=int, nargs="+", help="entries (default 100 1000 10000; --quick: 100)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 entries, 2 writers, one round")
    parser.add_argument("--pg", help="run on PostgreSQL: an admin URL (a database is made per run)")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/registry.json)")
    args = parser.parse_args()
    quick = args.quick
    runs, cycles = args.runs or (1 if quick else 3), args.cycles or (5 if quick else 120)
    procs_list = args.procs or ([2] if quick else [4, 8])
    entries_list = args.entries or ([100] if quick else [100, 1000, 10000])
    out = args.out or results_file("registry-pg.json" if args.pg else "registry.json", quick)
    probe = Probe(0.1 if quick else 1.0)
    pairs = [(entries, procs) for procs in procs_list for entries in entries_list]
    samples: dict[tuple[int, int], list[dict[str, float]]] = {pair: [] for pair in pairs}
    for _ in range(runs):
        for entries, procs in pairs:
            samples[(entries, procs)].append(one_run(entries, procs, cycles, args.pg))
    table = []
    for (entries, procs), taken in samples.items():
        summary = {key: round(statistics.median(r[key] for r in taken), 2) for key in taken[0]}
        table.append({"entries": entries, "procs": procs, "median": summary})
        print(json.dumps(table[-1]), flush=True)
    store = "postgresql" if args.pg else "json"
    target = TARGETS[store]
    result: dict[str, Any] = {
        "machine": probe.record(),
        "setup": {"cycles_per_proc": cycles, "runs": runs, "rounds": "interleaved over (entries, processes)"},
        "operations": "claim, start, heartbeat x3 (cost), finish, release",
        "store": "postgresql (a local server, fsync on, synchronous_commit on)" if args.pg else "json",
        "target": {
            "ops_per_s": target["ops_per_s"],
            "p99_ms": target["p99_ms"],
            "at": f"10,000 entries, {target['procs']} writers" + (" as two hosts" if args.pg else ""),
            "flat": f"ops/s at 100 entries within {FLAT}x of ops/s at 10,000",
        },
        "durability": "every write: one transaction committed (WAL fsync)"
        if args.pg
        else "every write: one journal line written and fsynced under the lock; a snapshot "
        "(temp file, fsync, rename, folder fsync) once the journal after it outgrows half its size",
        "results": table,
        "targets": verdicts(table, store),
    }
    save(result, out)


if __name__ == "__main__":
    main()
