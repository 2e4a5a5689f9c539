"""Three dispatch hosts on one PostgreSQL registry, for real.

Three clones of one repository, each with its own host identity (``TASKFILES_HOST``),
run ``task-manager-heartbeat`` at the same moments against one database; their agents
succeed, fail once, or hang. Then one host dies with everything it started: the other
two retry its tasks once its workers' heartbeats are past the stall limit, and the dead
host's worker, coming back late, is refused (exit 5). From the event log: every task
was claimed once per attempt, with a lease of its own, and each claim was started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from taskfiles import process
from taskfiles.registry import Event
from taskfiles.registry.pgstore import PgRegistry

from .conftest import commit_all, git, wait_until
from .harness import Site

HOSTS = ("host-0", "host-1", "host-2")
PLAN = {
    **{f"ok{n}": ["ok"] for n in range(3)},
    **{f"flaky{n}": ["exit:1", "ok"] for n in range(3)},
    **{f"hang{n}": ["hang"] for n in range(3)},
}
HEARTBEAT = str(Path(sys.executable).with_name("task-manager-heartbeat"))
TASK = str(Path(sys.executable).with_name("task"))


def cycles(clones: dict[str, Path], url: str, hosts: tuple[str, ...]) -> None:
    """One heartbeat cycle on each of ``hosts``, all started at once, as cron would."""
    running = [
        subprocess.Popen(
            [HEARTBEAT],
            cwd=clones[host],
            env={**os.environ, "TASKFILES_HOST": host, "TASKFILES_REGISTRY_URL": url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host in hosts
    ]
    for cycle in running:
        out, err = cycle.communicate(timeout=120)
        assert cycle.returncode == 0, out + err


def claims(events: list[Event]) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event.type == "task.claimed" and event.slug:
            found[event.slug].append(event)
    return found


def test_three_hosts_dispatch_each_attempt_once_and_recover_the_tasks_of_a_host_that_died(
    site: Site, pg_url: str, tmp_path: Path
) -> None:
    site.configure(max_parallel=9, max_attempts=3, heartbeat_seconds=0.5)
    config = site.root / "taskfiles.toml"
    text = config.read_text().replace("[heartbeat]\n", "[heartbeat]\nmax_parallel_per_host = 3\n")
    text = text.replace("backoff_base_seconds = 100", "backoff_base_seconds = 1")
    config.write_text(text.replace("stall_after_seconds = 600", "stall_after_seconds = 4"))
    commit_all(site.root, "three hosts")
    site.plan(PLAN)
    for slug in PLAN:
        site.task(slug)
    clones = {}
    for host in HOSTS:
        clones[host] = tmp_path / host
        git(tmp_path, "clone", "-q", str(site.root), str(clones[host]))
    registry = PgRegistry(pg_url)
    try:
        cycles(clones, pg_url, HOSTS)  # three at once: nine tasks, three a host
        entries = registry.entries()
        assert len(entries) == 9
        assert sorted(e.host for e in entries.values()) == sorted(HOSTS * 3)

        def settled() -> bool:
            states = {slug: e.state for slug, e in registry.entries().items()}
            return all(states[f"ok{n}"] == "exited" and states[f"flaky{n}"] != "running" for n in range(3))

        wait_until(settled, 60, "the agents that end to end")
        for _ in range(3):  # the flaky ones come back (after a 1 s backoff) and succeed
            cycles(clones, pg_url, HOSTS)
            if all(registry.get(f"flaky{n}").attempt == 2 for n in range(3)):
                break
            time.sleep(1.2)
        wait_until(
            lambda: all(registry.get(f"flaky{n}").state == "exited" for n in range(3)),
            60,
            "the retries to succeed",
        )

        # One host dies with everything it started: the one running hang0 (and maybe more).
        victim = str(registry.get("hang0").host)
        survivors = tuple(host for host in HOSTS if host != victim)
        doomed = {slug: e for slug, e in registry.entries().items() if e.host == victim and e.is_live}
        for entry in doomed.values():
            assert entry.pid is not None
            process.kill_session(entry.pid, entry.pid_start_time, signal.SIGKILL)

        def recovered() -> bool:
            cycles(clones, pg_url, survivors)
            now = registry.entries()
            return all(now[slug].lease > doomed[slug].lease and now[slug].host != victim for slug in doomed)

        wait_until(recovered, 60, "the other hosts to take over the dead host's tasks after the stall limit")

        # The dead host's worker comes back late: its lease is over.
        slug, old = next(iter(doomed.items()))
        late = subprocess.run(
            [TASK, "heartbeat", slug, "--lease", str(old.lease)],
            cwd=clones[victim],
            env={**os.environ, "TASKFILES_HOST": victim, "TASKFILES_REGISTRY_URL": pg_url},
            capture_output=True,
            text=True,
        )
        assert late.returncode == 5, late.stderr

        events = list(registry.events().events)
        for slug, claimed in claims(events).items():
            leases = [e.lease for e in claimed]
            attempts = [e.details.get("attempt") for e in claimed]
            assert leases == sorted(set(leases)), f"{slug}: a lease issued twice: {leases}"
            assert attempts == sorted(set(attempts)), f"{slug}: an attempt claimed twice: {attempts}"
        started = {(e.slug, e.lease) for e in events if e.type == "task.started"}
        dispatched = {(e.slug, e.lease) for found in claims(events).values() for e in found}
        assert dispatched == started  # every claim the cycles made was started: no event lost
        failed = {e.slug for e in events if e.type == "task.failed"}
        assert set(doomed) <= failed  # judged by heartbeat age on the surviving hosts
        assert len(claims(events)["ok0"]) == 1 and len(claims(events)["flaky0"]) == 2
    finally:
        for event in registry.events().events:
            pid = (event.change or {}).get("set", {}).get("pid")
            if event.type == "task.started" and pid:
                process.kill_session(
                    int(pid), (event.change or {})["set"].get("pid_start_time"), signal.SIGKILL
                )
        registry.close()
