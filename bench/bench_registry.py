"""Registry throughput and latency: N entries, P processes doing claim/heartbeat/finish.

Each process owns its own slugs among the N and loops claim -> start ->
3 x heartbeat (with cost) -> finish -> release, timing every operation. All
processes write the same registry, so every operation waits for the one lock and
appends one fsynced journal line (registry.json is rewritten only when the
journal after it outgrows half its size). Reports, per (entries, processes),
the aggregate operations per second, the p50/p99 latency of one operation and the
journal bytes per line, as the median over several runs.
Target: at 10,000 entries and 4 writers >= 300 ops/s and p99 <= 25 ms, and the
per-operation cost within 1.5x from 100 to 10,000 entries.
Usage: python bench/bench_registry.py [--runs 3] [--cycles 120] [--procs 4 8] [--entries 100 1000 10000]
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

from bench_list import machine  # noqa: E402

from taskfiles.registry import (  # noqa: E402  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=120, help="loops per process (7 operations each)")
    parser.add_argument("--procs", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--entries", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--pg", help="run on PostgreSQL: an admin URL (a database is made per run)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or ROOT / "bench" / "results" / ("registry-pg.json" if args.pg else "registry.json")
    table = []
    for procs in args.procs:
        for entries in args.entries:
            runs = [one_run(entries, procs, args.cycles, args.pg) for _ in range(args.runs)]
            summary = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
            table.append({"entries": entries, "procs": procs, "median": summary})
            print(json.dumps(table[-1]), flush=True)
    result = {
        "machine": machine(),
        "setup": {"cycles_per_proc": args.cycles, "runs": args.runs},
        "operations": "claim, start, heartbeat x3 (cost), finish, release",
        "store": "postgresql (a local server, fsync on, synchronous_commit on)" if args.pg else "json",
        "target": {"ops_per_s": 1000, "p99_ms": 20, "at": "10,000 entries, 8 writers as two hosts"}
        if args.pg
        else {"ops_per_s": 300, "p99_ms": 25, "at": "10,000 entries, 4 writers"},
        "durability": "every write: one transaction committed (WAL fsync)"
        if args.pg
        else "every write: one journal line written and fsynced under the lock; a snapshot "
        "(temp file, fsync, rename, folder fsync) once the journal after it outgrows half its size",
        "results": table,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
