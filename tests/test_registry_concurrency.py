"""The registry contract with several processes: real processes racing on one store, per store.

Each child is this file run as a script (``python test_registry_concurrency.py ROLE ...``),
so the children are ordinary processes that import taskfiles like any worker would.
They open the test's store as a worker does, with ``open_registry(config)``, in the
environment conftest's ``store_factory`` gives for it (``StoreFactory.env``): every
store of that fixture runs these proofs. Children wait for "go" on stdin so that they
start together, and report on stdout. Nothing here asserts on time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskfiles.registry import Registry

    from .conftest import StoreFactory

ROLES_USAGE = "usage: test_registry_concurrency.py claim|beat|writer ARGS..."


# -- children ----------------------------------------------------------------------------------------


def _wait_for_go() -> None:
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"


def open_store() -> Registry:
    """The store the parent named in this process's environment, opened as a worker opens it."""
    from taskfiles import config
    from taskfiles.registry import open_registry

    return open_registry(config.load(Path.cwd()))


def child_claim(slugs: str) -> None:
    """Claim the first free slug until none is left; print what this process got."""
    registry = open_store()
    candidates = slugs.split(",")
    _wait_for_go()
    got = []
    while (entry := registry.claim_first(candidates, worker=f"w{os.getpid()}")) is not None:
        got.append([entry.slug, entry.lease])
    print(json.dumps(got), flush=True)


def child_beat(count: str, pairs: str) -> None:
    """Heartbeat the shared entries ``count`` times, a cent of cost each time."""
    registry = open_store()
    targets = [(slug, int(lease)) for slug, lease in (p.split(":") for p in pairs.split(","))]
    _wait_for_go()
    for n in range(int(count)):
        slug, lease = targets[n % len(targets)]
        registry.heartbeat(slug, lease, cost_usd=0.01)
    print("done", flush=True)


def child_writer(prefix: str, lease: str) -> None:
    """Write forever (claims of new slugs, heartbeats of 'shared'), acking each completed write.

    An ack is printed only after the write returned, so a write that landed may lack
    its ack (killed in between), but an acked write must always be in the registry.
    """
    registry = open_store()
    for n in range(1_000_000):
        if n % 2:
            registry.heartbeat("shared", int(lease), note=f"{prefix}-{n}" if n % 5 == 1 else None)
            print("beat", flush=True)
        else:
            registry.claim(f"{prefix}-{n}", worker="writer")
            print(f"claim:{prefix}-{n}", flush=True)


# -- helpers -----------------------------------------------------------------------------------------


def spawn(
    stores: StoreFactory, cwd: Path, role: str, *args: str, actor: str = "child"
) -> subprocess.Popen[str]:
    """Run ``role`` in a child process, in ``cwd``, on the test's store."""
    env = {**os.environ, **stores.env(), "TASKFILES_ACTOR": actor}
    return subprocess.Popen(
        [sys.executable, __file__, role, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def start_together(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


def finish(child: subprocess.Popen[str]) -> str:
    out, _ = child.communicate()
    assert child.returncode == 0, out
    return out


# -- proofs -------------------------------------------------------------------------------------------


def test_eight_processes_racing_claim_each_slug_exactly_once(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    slugs = [f"task-{n:02d}" for n in range(50)]
    children = [
        spawn(store_factory, tmp_path, "claim", ",".join(slugs), actor=f"agent-{n}") for n in range(8)
    ]
    start_together(children)
    claims = [tuple(c) for child in children for c in json.loads(finish(child))]
    assert sorted(slug for slug, _ in claims) == slugs  # every slug once, none twice
    assert {lease for _, lease in claims} == {1}
    reg = store_factory()
    assert sorted(reg.entries()) == slugs
    events = reg.events()
    assert events.warnings == ()
    claimed = [e for e in events.events if e.type == "task.claimed"]
    assert sorted(e.slug for e in claimed if e.slug) == slugs
    assert {e.actor.who for e in claimed} <= {f"agent-{n}" for n in range(8)}
    assert len({e.seq for e in claimed}) == 50  # fifty separate writes, none lost


def test_eight_processes_heartbeating_lose_no_update(store_factory: StoreFactory, tmp_path: Path) -> None:
    reg = store_factory()
    pairs = []
    for slug in ("a", "b", "c", "d"):
        lease = reg.claim(slug, worker="w").lease
        reg.start(slug, lease)
        pairs.append(f"{slug}:{lease}")
    children = [spawn(store_factory, tmp_path, "beat", "200", ",".join(pairs)) for _ in range(8)]
    start_together(children)
    for child in children:
        assert finish(child).strip() == "done"
    entries = store_factory().entries()
    for slug in "abcd":
        entry = entries[slug]
        assert entry.heartbeats == 8 * 200 // 4
        assert entry.cost_usd == entry.total_cost_usd == 4.0  # 400 cents, none lost, none doubled
    beats = Counter(e.slug for e in store_factory().events().events if e.type == "task.heartbeat")
    assert beats == Counter("abcd")  # only the first heartbeat of each attempt is an event


def test_a_writer_killed_at_random_moments_never_loses_a_completed_write(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    reg = store_factory()
    for n in range(200):  # a registry of realistic size, so kills land inside writes
        reg.claim(f"filler-{n:03d}", worker="filler")
    lease = reg.claim("shared", worker="w").lease
    reg.start("shared", lease)
    rng = random.Random(20251122)
    acked_claims: set[str] = set()
    beats = 0
    for run in range(50):
        child = spawn(store_factory, tmp_path, "writer", f"run{run}", str(lease))
        assert child.stdout is not None
        acks = [child.stdout.readline().strip() for _ in range(rng.randint(1, 12))]
        time.sleep(rng.uniform(0, 0.003))  # anywhere in the next write
        child.send_signal(signal.SIGKILL)
        child.wait()
        acks += child.stdout.read().split()  # every write it reported before it died
        child.stdout.close()
        child.stdin and child.stdin.close()
        fresh = store_factory()
        assert fresh.repair().needed is False, f"run {run}: the kill left the store unreadable"
        entries = fresh.entries()
        new_claims = {a.split(":")[1] for a in acks if a.startswith("claim:")}
        acked_claims |= new_claims
        assert acked_claims <= set(entries), f"run {run}: a reported claim was lost"
        mine = {s for s in entries if s.startswith(f"run{run}-")}
        assert len(mine) - len(new_claims) in (0, 1)  # at most the write in flight landed unacked
        beats += sum(1 for a in acks if a == "beat")
        landed = entries["shared"].heartbeats
        assert landed - beats in (0, 1), f"run {run}: {landed} heartbeats for {beats} reported"
        beats = landed
        assert fresh.events().warnings == ()
    assert len(store_factory().entries()) > 201  # the children did write
    assert store_factory().repair().needed is False


if __name__ == "__main__":
    role, *rest = sys.argv[1:] or [""]
    roles: dict[str, Callable[..., None]] = {"claim": child_claim, "beat": child_beat, "writer": child_writer}
    if role not in roles:
        sys.exit(ROLES_USAGE)
    roles[role](*rest)
