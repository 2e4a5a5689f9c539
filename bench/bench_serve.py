"""Benchmark ``task serve``: 10,000 tasks, 1,000 registry entries, 100 live browsers.

``.venv/bin/python bench/bench_serve.py`` builds a repository with bench/gen_tasks.py,
fills its registry with 1,000 entries in a realistic mix of states (and an event
log with their runs), starts the real ``task serve`` as a subprocess, and measures:

- ``/api/status`` and the overview HTML under a steady loop of requests (one client,
  back to back, for a fixed time each): p50, p99, max. The server recomputes the
  status report whenever the registry changes and at least every 5 s, so the loop
  runs long enough to include those recomputations;
- 100 SSE clients connected at once, then change-to-event latency: a registry write
  in this process until each of the 100 clients has read the ``change`` event
  (several writes; the median and worst over writes of the slowest client);
- the server's resident memory (VmRSS, and its peak VmHWM) at the end.

Targets: /api/status p50 <= 50 ms, overview p50 <= 200 ms, change-to-event <= 300 ms.
Prints PASS/FAIL for each and writes bench/results/serve.json with the machine record
(bench/machine.py). ``--quick``: 300 tasks, 100 entries, short loops, 3 clients, 2 writes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench_registry import fresh_database
from bench_status import use_database
from entries import fill_registry
from gen_tasks import generate
from machine import Probe, child_env, results_file
from timing import TASK, save, verdict

TARGETS_MS = {"api_status_p50": 50, "overview_p50": 200, "change_to_event": 300}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(repo: Path, port: int) -> subprocess.Popen[bytes]:
    """The real ``task serve``, ready once /api/status answers (the first read fills the caches)."""
    server = subprocess.Popen(
        [TASK, "serve", "--repo", str(repo), "--port", str(port)],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            get(f"http://127.0.0.1:{port}/api/status")
            return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit(
                    f"task serve exited: {server.stderr.read().decode() if server.stderr else ''}"
                ) from None
            time.sleep(0.1)
    server.kill()
    raise SystemExit("task serve did not answer within 120 s")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
        return body


def steady(url: str, seconds: float) -> dict[str, Any]:
    """Requests back to back for ``seconds``: latency percentiles in ms."""
    times: list[float] = []
    size = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        size = len(get(url))
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "requests": len(times),
        "bytes": size,
        "p50_ms": round(times[len(times) // 2], 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max_ms": round(times[-1], 2),
        "mean_ms": round(statistics.fmean(times), 2),
    }


async def open_stream(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An SSE client on a raw connection, past the response headers and the hello.

    The writer is returned to be kept: a collected StreamWriter closes the connection.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    await writer.drain()
    await reader.readuntil(b"event: hello")
    await reader.readuntil(b"\n\n")
    return reader, writer


async def until_change(reader: asyncio.StreamReader) -> float:
    """perf_counter() when this client has read a ``change`` event."""
    while True:
        block = await reader.readuntil(b"\n\n")
        if b"event: change" in block:
            return time.perf_counter()


async def sse(repo: Path, port: int, clients: int, writes: int) -> dict[str, Any]:
    """Connect ``clients`` streams, then time ``writes`` registry writes to every client's change event."""
    from taskfiles import config
    from taskfiles.registry import open_registry

    registry = open_registry(config.load(repo))
    slug = next(s for s, e in registry.entries().items() if e.state == "running")
    streams = await asyncio.gather(*(open_stream(port) for _ in range(clients)))
    slowest, fastest = [], []
    for n in range(writes):
        waits = [asyncio.create_task(until_change(r)) for r, _ in streams]
        await asyncio.sleep(0.3)  # let the previous write's events drain
        start = time.perf_counter()
        await asyncio.to_thread(registry.note, slug, f"bench note {n}")
        arrived = await asyncio.wait_for(asyncio.gather(*waits), 10)
        slowest.append((max(arrived) - start) * 1000)
        fastest.append((min(arrived) - start) * 1000)
        await asyncio.sleep(0.5)
    for _, writer in streams:
        writer.close()
    return {
        "clients": clients,
        "writes": writes,
        "slowest_client_median_ms": round(statistics.median(slowest), 1),
        "slowest_client_max_ms": round(max(slowest), 1),
        "fastest_client_median_ms": round(statistics.median(fastest), 1),
    }


def memory(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` in MiB (now and peak)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mib": fields.get("VmRSS", 0.0), "peak_rss_mib": fields.get("VmHWM", 0.0)}


def main() -> None:
    """Command line: bench_serve.py [--tasks N] [--entries N] [--seconds S] [--clients N] [--writes N]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, help="tasks (default 10000; --quick: 300)")
    parser.add_argument("--entries", type=int, help="registry entries (default 1000; --quick: 100)")
    parser.add_argument("--seconds", type=float, help="length of each steady loop (default 12; --quick: 0.3)")
    parser.add_argument("--clients", type=int, help="SSE clients (default 100; --quick: 3)")
    parser.add_argument(
        "--writes", type=int, help="registry writes timed to the clients (default 10; --quick: 2)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: small repository, short loops")
    parser.add_argument("--out", type=Path, help="result file (default bench/results/serve.json)")
    parser.add_argument(
        "--pg", help="a PostgreSQL registry: an admin URL; the server and the writer are two hosts"
    )
    args = parser.parse_args()
    quick = args.quick
    args.tasks = args.tasks or (300 if quick else 10_000)
    args.entries = args.entries or (100 if quick else 1_000)
    args.seconds = args.seconds or (0.3 if quick else 12.0)
    args.clients = args.clients or (3 if quick else 100)
    args.writes = args.writes or (2 if quick else 10)
    out = args.out or results_file("serve-pg.json" if args.pg else "serve.json", quick)
    probe = Probe(0.1 if quick else 1.0)
    base = Path(tempfile.mkdtemp(prefix="taskfiles-bench-serve-"))
    server = None
    database = contextlib.ExitStack()
    try:
        repo = generate(base / f"serve-{args.tasks}", args.tasks)
        if args.pg:
            use_database(repo, database.enter_context(fresh_database(args.pg)))
        entries = fill_registry(repo, args.entries, outcomes=True)
        port = free_port()
        started = time.perf_counter()
        server = start_server(repo, port)
        first_ms = round((time.perf_counter() - started) * 1000)
        url = f"http://127.0.0.1:{port}"
        status = steady(url + "/api/status", args.seconds)
        print(f"/api/status  {status}")
        overview = steady(url + "/", args.seconds)
        print(f"overview     {overview}")
        live = asyncio.run(sse(repo, port, args.clients, args.writes))
        print(f"sse          {live}")
        mem = memory(server.pid)
        print(f"memory       {mem}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
            errors = server.stderr.read().decode() if server.stderr else ""
            if errors.strip():
                print("server stderr:", errors[-3000:])
        database.close()
        shutil.rmtree(base, ignore_errors=True)
    report: dict[str, Any] = {
        "machine": probe.record(),
        "setup": {
            "tasks": args.tasks,
            "entries": entries,
            "seconds_per_loop": args.seconds,
            "source": "ref main",
        },
        "targets_ms": TARGETS_MS,
        "first_answer_ms": first_ms,
        "api_status": status,
        "overview_html": overview,
        "sse": live,
        "memory": mem,
        "targets": [
            verdict("/api/status p50", status["p50_ms"], TARGETS_MS["api_status_p50"]),
            verdict("overview p50", overview["p50_ms"], TARGETS_MS["overview_p50"]),
            verdict("change to event", live["slowest_client_median_ms"], TARGETS_MS["change_to_event"]),
        ],
    }
    save(report, out)


if __name__ == "__main__":
    main()
