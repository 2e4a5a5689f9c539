"""Registry entries for the benches: a realistic mix of states over generated tasks.

A busy dispatcher's registry holds the live workers, attempts that ended (in review,
failed, waiting to retry, parked) and, from work long done, released entries. One
function writes such a registry in one transaction, as every bench that needs one
(status, serve, heartbeat) fills it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from taskfiles import config, process
from taskfiles.plan import source as tasksource
from taskfiles.registry import Change, Plan, Snapshot, open_registry
from taskfiles.registry.records import RegistryEntry, format_time, utc_now

Mix = tuple[tuple[str, int], ...]
# 1,000 entries, most of them running, as on a busy dispatcher (bench_status.py).
STATUS_MIX: Mix = (
    ("running", 600),
    ("claimed", 100),
    ("exited", 100),
    ("retry_wait", 100),
    ("parked", 50),
    ("failed", 50),
)
# A dispatcher at capacity in a steady state: states a heartbeat cycle leaves as they are
# (live workers that heartbeat, attempts in review, retries not yet due, parked tasks).
STEADY_MIX: Mix = (("running", 50), ("exited", 100), ("retry_wait", 50), ("parked", 50))


def fill_registry(
    repo: Path,
    count: int,
    *,
    mix: Mix = STATUS_MIX,
    outcomes: bool = False,
    live: tuple[int, int | None] | None = None,
) -> int:
    """Write ``count`` entries for the tasks at ``main`` in one transaction; return how many
    the registry then holds. The ``mix`` goes to ready tasks, the rest are released entries
    on other tasks. Live workers carry the pid and start time ``live`` (default: pid 1,
    which outlives the bench, so every one reads alive), on this host.

    ``outcomes`` also records run ends as ``task.exited`` events and a reported cost, which
    the status page's metrics read (bench_serve.py).
    """
    cfg = config.load(repo)
    tasks = tasksource.load(cfg, "main").tasks
    states = [state for state, n in mix for _ in range(n)][:count]
    slugs = [t.slug for t in tasks if t.status == "ready"][: len(states)]
    if len(slugs) < len(states):
        raise SystemExit(f"only {len(slugs)} ready tasks for {len(states)} entries; generate more tasks")
    # Past the mix, the entries of work long done: released claims on the other tasks.
    taken = set(slugs)
    others = [t.slug for t in tasks if t.slug not in taken][: max(count - len(states), 0)]
    slugs, states = slugs + others, states + ["released"] * len(others)
    now = utc_now()
    stamp, later = format_time(now), format_time(now + timedelta(days=1))
    host = process.host_identity()
    pid, started = live or (1, process.pid_start_time(1))

    def entry(slug: str, state: str) -> RegistryEntry:
        is_live = state in ("running", "claimed")
        return RegistryEntry(
            slug,
            state,
            1,
            worker=f"bench-{slug[-3:]}",
            host=host,
            pid=pid if is_live else None,
            pid_start_time=started if is_live else None,
            claimed_at=stamp,
            started_at=stamp if state != "claimed" else None,
            heartbeat_at=stamp if state != "claimed" else None,
            finished_at=None if is_live else stamp,
            exit_code={"exited": 0, "failed": 1}.get(state),
            next_attempt_at=later if state == "retry_wait" else None,
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


def _event(state: str, outcomes: bool) -> str:
    return "task.exited" if outcomes and state in ("exited", "failed") else "task.claimed"
