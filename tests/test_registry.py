"""The registry contract: every rule of ``Registry``, on every store.

Each test gets its store through ``reg`` (conftest's ``store_factory``: one run per
store) and uses the ``Registry`` interface only, so a new store passes these tests
or is not done. Several processes at once are in test_registry_concurrency.py, the
JSON store's own files in test_jsonstore.py, this host's prompts and worker output in
test_hostfiles.py. Real stores throughout; the clock is the only fake.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings

from taskfiles import config as config_module
from taskfiles.errors import ConflictError, NotFoundError, RegistryError, StaleLeaseError, UsageError
from taskfiles.registry import (
    Change,
    CycleRecord,
    Plan,
    Registry,
    RegistryChange,
    RegistryEntry,
    Snapshot,
    journal,
    lifecycle,
    open_registry,
)

from .conftest import REGISTRY_OPS, TEST_ACTOR, ManualClock, StoreFactory, drain, registry_op, take

ACTOR = TEST_ACTOR
T0 = "2025-03-01T12:00:00.000000Z"  # the ManualClock's start, as the registry writes it


@pytest.fixture
def reg(store_factory: StoreFactory, clock: ManualClock) -> Registry:
    return store_factory(clock=clock, actor=ACTOR)


def running(reg: Registry, slug: str = "fix-login") -> int:
    lease = reg.claim(slug, worker="w1", owner="core").lease
    reg.start(slug, lease, pid=os.getpid(), worktree=f".worktrees/{slug}", branch=f"task/{slug}")
    return lease


def observed(reg: Registry) -> tuple[object, ...]:
    """Everything the interface shows (write number, entries, leases, events, every log line),
    to prove that a refused call changed nothing."""
    snap = reg.snapshot()
    logs: dict[str, list[object]] = {}
    for slug, entry in snap.entries.items():
        for attempt in range(1, entry.attempt + 1):
            with contextlib.suppress(NotFoundError):
                logs[f"{slug}/{attempt}"] = [r.to_dict() for r in reg.logs(slug, attempt=attempt).records]
    entries = {slug: entry.to_dict() for slug, entry in snap.entries.items()}
    events = [event.to_dict() for event in reg.events().events]
    return snap.seq, entries, dict(snap.leases), events, logs


def types(reg: Registry, slug: str | None = None) -> list[str]:
    return [e.type for e in reg.events(slug).events]


# -- a store as it starts ------------------------------------------------------------------------


def test_a_fresh_store_is_empty_and_healthy(reg: Registry) -> None:
    assert isinstance(reg.location, str) and reg.location
    assert reg.entries() == {} and reg.find("a") is None
    snap = reg.snapshot()
    assert (dict(snap.entries), dict(snap.leases), snap.seq) == ({}, {}, 0)
    assert reg.events().events == () and reg.events().warnings == ()
    assert reg.read_cycle() is None
    with pytest.raises(NotFoundError, match="'a'"):
        reg.logs("a")
    report = reg.repair()
    assert report.needed is False
    assert observed(reg) == (0, {}, {}, [], {})


def test_the_actor_comes_from_the_environment(
    store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFILES_ACTOR", "agent-7")
    reg = store_factory()
    reg.claim("a", worker="w")
    actor = reg.events().events[0].actor
    assert (actor.who, actor.pid) == ("agent-7", os.getpid())
    assert reg.get("a").host == actor.host


def test_open_registry_under_the_store_environment_opens_the_same_store(
    store_factory: StoreFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What child processes rely on (test_registry_concurrency.py): the same store, both ways."""
    here = store_factory(actor=ACTOR)
    here.claim("a", worker="w")
    for name, value in store_factory.env().items():
        monkeypatch.setenv(name, value)
    there = open_registry(config_module.load(tmp_path))
    assert there.get("a").lease == 1
    there.claim("b", worker="w")
    assert set(here.entries()) == {"a", "b"}
    assert store_factory(name="other").entries() == {}  # another name: another store


# -- claims and the worker's path ----------------------------------------------------------------


def test_claim_to_release_records_each_step_with_time_and_actor(reg: Registry, clock: ManualClock) -> None:
    claimed = reg.claim("fix-login", worker="w1", owner="core", max_attempts=2, task_blob="abc123")
    assert (claimed.state, claimed.lease, claimed.attempt, claimed.max_attempts) == ("claimed", 1, 1, 2)
    assert (claimed.host, claimed.claimed_at, claimed.task_blob) == ("host-1", T0, "abc123")
    assert reg.get("fix-login") == claimed
    clock.advance(seconds=5)
    started = reg.start("fix-login", 1, pid=123, pid_start_time=456, worktree="wt", branch="task/fix-login")
    assert (started.state, started.pid, started.pid_start_time) == ("running", 123, 456)
    assert (started.worktree, started.branch) == ("wt", "task/fix-login")
    assert started.started_at == started.heartbeat_at == "2025-03-01T12:00:05.000000Z"
    finished = reg.finish("fix-login", 1, 0)
    assert (finished.state, finished.exit_code, finished.consecutive_failures) == ("exited", 0, 0)
    assert finished.finished_at == "2025-03-01T12:00:05.000000Z"
    released = reg.release("fix-login", reason="completed on main")
    assert released.state == "released" and reg.get("fix-login") == released
    page = reg.events()
    assert [e.type for e in page.events] == ["task.claimed", "task.started", "task.exited", "task.released"]
    assert all(e.actor == ACTOR and e.slug == "fix-login" and e.lease == 1 for e in page.events)
    assert page.events[0].details == {"worker": "w1", "owner": "core", "attempt": 1}
    assert page.events[0].time == T0
    assert page.events[-1].details == {"reason": "completed on main", "previous_state": "exited"}
    assert page.events[-1].change is not None and page.events[-1].change["set"]["state"] == "released"
    seqs = [e.seq for e in page.events]
    assert seqs == sorted(set(seqs)) and reg.snapshot().seq == seqs[-1]  # one write each, in order
    assert page.warnings == ()


def test_a_live_claim_cannot_be_claimed_twice(reg: Registry) -> None:
    reg.claim("fix-login", worker="w1")
    before = observed(reg)
    with pytest.raises(ConflictError, match=r"'fix-login' has a live claim \(lease 1, claimed by w1"):
        reg.claim("fix-login", worker="w2")
    with pytest.raises(UsageError, match="max_attempts must be at least 1"):
        reg.claim("other", worker="w", max_attempts=0)
    assert observed(reg) == before


def test_failure_is_recorded_and_a_retry_is_a_new_attempt_with_a_new_lease(reg: Registry) -> None:
    lease = running(reg)
    reg.heartbeat("fix-login", lease, cost_usd=0.5)
    failed = reg.finish("fix-login", lease, 2, error="tests failed")
    assert (failed.state, failed.last_error, failed.failure_class) == ("failed", "tests failed", "exit_2")
    assert (failed.consecutive_failures, failed.exit_code) == (1, 2)
    with pytest.raises(ConflictError, match="task retry fix-login"):
        reg.claim("fix-login", worker="w2")
    retried = reg.retry("fix-login", reason="flaky", fresh=True)
    assert (retried.state, retried.fresh, retried.consecutive_failures) == ("retry_wait", True, 0)
    assert reg.events().events[-1].details["fresh"] is True
    again = reg.claim("fix-login", worker="w2")
    assert (again.lease, again.attempt, again.fresh) == (2, 2, True)
    assert (again.cost_usd, again.total_cost_usd, again.heartbeats) == (0, 0.5, 0)
    assert reg.start("fix-login", 2).fresh is False


def test_fail_records_a_failure_without_an_exit(reg: Registry) -> None:
    lease = running(reg)
    failed = reg.fail("fix-login", lease, failure_class="worker_gone", error="pid 123 is gone")
    assert (failed.state, failed.failure_class, failed.last_error) == (
        "failed",
        "worker_gone",
        "pid 123 is gone",
    )
    assert (failed.exit_code, failed.consecutive_failures, failed.failure_streak) == (None, 1, 1)
    event = reg.events().events[-1]
    assert (event.type, event.details) == (
        "task.failed",
        {
            "failure_class": "worker_gone",
            "error": "pid 123 is gone",
            "started_at": T0,
            "cost_usd": 0.0,
            "attempt": 1,
            "owner": "core",
            "worker": "w1",
        },
    )


def test_failures_count_in_a_row_until_a_success_or_a_manual_retry(reg: Registry) -> None:
    """The circuit breaker's counters: failures in a row, and in a row of the same class."""

    def again() -> int:
        reg.schedule_retry("t", at=reg.clock())  # the reconciler's backoff keeps the counts
        return reg.claim("t", worker="w").lease

    lease = reg.claim("t", worker="w").lease
    counts = []
    for how in ("stalled", "stalled", "exit", "exit", "stalled"):
        if how == "exit":
            entry = reg.finish("t", lease, 1)
        else:
            entry = reg.fail("t", lease, failure_class="stalled", error="no heartbeat")
        counts.append((entry.consecutive_failures, entry.failure_streak))
        lease = again()
    assert counts == [(1, 1), (2, 2), (3, 1), (4, 2), (5, 1)]
    assert reg.finish("t", lease, 0).consecutive_failures == 0 and reg.get("t").failure_streak == 0
    reg.retry("t")
    lease = reg.claim("t", worker="w").lease
    entry = reg.fail("t", lease, failure_class="stalled", error="x")
    reg.retry("t")  # a manual retry closes the circuit
    assert (reg.get("t").consecutive_failures, reg.get("t").failure_streak) == (0, 0)
    assert (entry.consecutive_failures, entry.failure_streak) == (1, 1)


def test_leases_grow_and_are_never_reused_after_release_prune_or_gc(
    reg: Registry, clock: ManualClock
) -> None:
    assert reg.claim("a", worker="w").lease == 1
    reg.release("a")
    assert reg.claim("a", worker="w").lease == 2
    reg.stop("a")
    pruned = reg.prune("a", reason="task file deleted")
    assert (pruned.state, pruned.lease) == ("stopped", 2) and reg.find("a") is None
    removal = reg.events().events[-1]
    assert (removal.type, removal.removed, removal.details) == (
        "task.pruned",
        True,
        {"reason": "task file deleted", "previous_state": "stopped"},
    )
    assert reg.snapshot().leases == {"a": 2}
    assert reg.claim("a", worker="w").lease == 3
    reg.release("a")
    clock.advance(days=40)
    assert reg.gc(older_than_days=30).entries_removed == ("a",)
    assert reg.find("a") is None
    assert reg.claim("a", worker="w").lease == 4
    assert reg.snapshot().leases == {"a": 4}


def test_backoff_holds_a_claim_until_its_time(reg: Registry, clock: ManualClock) -> None:
    lease = running(reg)
    reg.finish("fix-login", lease, 1)
    waiting = reg.schedule_retry(
        "fix-login", at=clock.now + timedelta(minutes=10), reason="backoff", lease=lease
    )
    assert (waiting.state, waiting.next_attempt_at) == ("retry_wait", "2025-03-01T12:10:00.000000Z")
    with pytest.raises(ConflictError, match="backing off until 2025-03-01T12:10:00"):
        reg.claim("fix-login", worker="w")
    assert reg.claim_first(["fix-login"], worker="w") is None
    clock.advance(minutes=10)
    again = reg.claim("fix-login", worker="w")
    assert (again.lease, again.attempt, again.next_attempt_at) == (lease + 1, 2, None)


def test_claim_first_takes_the_first_free_candidate(reg: Registry) -> None:
    reg.claim("a", worker="w")
    reg.claim("c", worker="w")
    reg.park("c", reason="flaky")
    got = reg.claim_first(["a", "b", "c"], worker="w2", owner="core", task_blobs={"b": "blob-b"})
    assert got is not None and (got.slug, got.task_blob, got.worker, got.owner) == (
        "b",
        "blob-b",
        "w2",
        "core",
    )
    assert reg.get("b") == got
    before = observed(reg)
    assert reg.claim_first(["a", "b", "c"], worker="w2") is None
    assert reg.claim_first([], worker="w2") is None
    assert observed(reg) == before  # finding nothing writes nothing


def test_heartbeats_add_cost_and_only_news_becomes_an_event(reg: Registry, clock: ManualClock) -> None:
    lease = running(reg)
    for n in range(5):
        clock.advance(seconds=30)
        entry = reg.heartbeat("fix-login", lease, cost_usd=0.01, note="halfway" if n == 3 else None)
    assert (entry.heartbeats, entry.cost_usd, entry.total_cost_usd) == (5, 0.05, 0.05)
    assert (entry.progress, entry.heartbeat_at) == ("halfway", "2025-03-01T12:02:30.000000Z")
    assert reg.get("fix-login") == entry  # silent heartbeats are stored all the same
    beats = [e for e in reg.events().events if e.type == "task.heartbeat"]
    assert [e.details.get("note") for e in beats] == [None, "halfway"]  # the first, and the noted one


def test_a_heartbeat_of_a_claimed_attempt_is_accepted(reg: Registry) -> None:
    lease = reg.claim("a", worker="w").lease
    assert reg.heartbeat("a", lease).heartbeats == 1


# -- fencing -------------------------------------------------------------------------------------

SUPERSEDED = "lease 1 for 'fix-login' was superseded by lease 2"
MUST_STOP = f"{SUPERSEDED}; this worker must stop"

# (name, a write by the worker holding ``lease``, the exact refusal)
FENCED: list[tuple[str, Callable[[Registry, int], object], str]] = [
    ("heartbeat", lambda r, n: r.heartbeat("fix-login", n, note="still here", cost_usd=1.0), MUST_STOP),
    ("start", lambda r, n: r.start("fix-login", n, pid=1), MUST_STOP),
    ("finish", lambda r, n: r.finish("fix-login", n, 0), MUST_STOP),
    ("finish-failed", lambda r, n: r.finish("fix-login", n, 1, error="late"), MUST_STOP),
    ("fail", lambda r, n: r.fail("fix-login", n, failure_class="stalled", error="late"), MUST_STOP),
    ("log", lambda r, n: r.log("fix-login", "late output", lease=n), MUST_STOP),
    ("log_many", lambda r, n: r.log_many("fix-login", ["a", "b"], lease=n, source="stderr"), MUST_STOP),
    ("note", lambda r, n: r.note("fix-login", "late", lease=n), MUST_STOP),
    ("progress", lambda r, n: r.progress("fix-login", 50, "late", lease=n), MUST_STOP),
    ("blocker", lambda r, n: r.blocker("fix-login", "late", lease=n), MUST_STOP),
    ("evidence", lambda r, n: r.evidence("fix-login", "pytest", 0, "late", lease=n), MUST_STOP),
    ("artifact", lambda r, n: r.artifact("fix-login", "late.txt", lease=n), MUST_STOP),
    ("park", lambda r, n: r.park("fix-login", reason="late", lease=n), SUPERSEDED),
    ("schedule_retry", lambda r, n: r.schedule_retry("fix-login", at=r.clock(), lease=n), SUPERSEDED),
]


@pytest.mark.parametrize(("write", "message"), [(f, m) for _, f, m in FENCED], ids=[n for n, _, _ in FENCED])
def test_a_superseded_lease_is_refused_for_every_fenced_write(
    reg: Registry, write: Callable[[Registry, int], object], message: str
) -> None:
    old = running(reg)
    reg.log("fix-login", "old worker output", lease=old)
    reg.stop("fix-login", reason="timed out")
    reg.retry("fix-login")
    new = reg.claim("fix-login", worker="w2").lease
    assert (old, new) == (1, 2)
    before = observed(reg)
    with pytest.raises(StaleLeaseError) as caught:
        write(reg, old)
    assert str(caught.value) == message
    assert observed(reg) == before
    assert reg.heartbeat("fix-login", new).heartbeats == 1  # the successor is unaffected
    assert reg.log("fix-login", "new output", lease=new) == 2


# How a lease's attempt ended, and the words the refusal uses for it.
OVER = [
    ("stopped", lambda r, n: r.stop("fix-login", reason="operator"), r"stopped \(operator\)"),
    ("parked", lambda r, n: r.park("fix-login", reason="circuit open"), r"parked \(circuit open\)"),
    ("released", lambda r, n: r.release("fix-login"), "released"),
    ("exited", lambda r, n: r.finish("fix-login", n, 0), "exited"),
    ("failed", lambda r, n: r.fail("fix-login", n, failure_class="stalled", error="x"), "failed"),
]


@pytest.mark.parametrize(("end", "words"), [(e, w) for _, e, w in OVER], ids=[n for n, _, _ in OVER])
def test_a_lease_whose_attempt_ended_is_over_for_every_fenced_write(
    reg: Registry, end: Callable[[Registry, int], object], words: str
) -> None:
    lease = running(reg)
    end(reg, lease)
    before = observed(reg)
    for name, write, _ in FENCED[:-2]:  # park and schedule_retry judge the state, not the lease
        with pytest.raises(
            StaleLeaseError,
            match=f"lease 1 for 'fix-login' is over: the task is {words}; this worker must stop$",
        ):
            write(reg, lease)
        assert observed(reg) == before, name


def test_a_lease_never_issued_is_a_usage_error(reg: Registry) -> None:
    running(reg)
    before = observed(reg)
    for write in (
        lambda: reg.heartbeat("fix-login", 7),
        lambda: reg.log("fix-login", "x", lease=7),
        lambda: reg.note("fix-login", "x", lease=7),
    ):
        with pytest.raises(
            UsageError, match="lease 7 for 'fix-login' was never issued; the current lease is 1"
        ):
            write()
    assert observed(reg) == before


# -- every transition ---------------------------------------------------------------------------


def _into(reg: Registry, state: str) -> int:
    """Walk task 't' into ``state``; return its lease."""
    lease = reg.claim("t", worker="w").lease
    if state == "claimed":
        return lease
    reg.start("t", lease)
    steps: dict[str, Callable[[], object]] = {
        "exited": lambda: reg.finish("t", lease, 0),
        "failed": lambda: reg.finish("t", lease, 3),
        "parked": lambda: reg.park("t", reason="circuit open"),
        "stopped": lambda: reg.stop("t", reason="operator"),
        "released": lambda: reg.release("t"),
        "retry_wait": lambda: (reg.finish("t", lease, 3), reg.retry("t")),
    }
    if state in steps:
        steps[state]()
    return lease


ACTIONS: dict[str, Callable[[Registry, int], object]] = {
    "claim": lambda r, n: r.claim("t", worker="w2"),
    "start": lambda r, n: r.start("t", n),
    "finish 0": lambda r, n: r.finish("t", n, 0),
    "finish 3": lambda r, n: r.finish("t", n, 3),
    "fail": lambda r, n: r.fail("t", n, failure_class="stalled", error="no heartbeat"),
    "stop": lambda r, n: r.stop("t", reason="r"),
    "retry": lambda r, n: r.retry("t", reason="r"),
    "schedule_retry": lambda r, n: r.schedule_retry("t", at=r.clock() + timedelta(minutes=5), lease=n),
    "park": lambda r, n: r.park("t", reason="r"),
    "unpark": lambda r, n: r.unpark("t"),
    "release": lambda r, n: r.release("t"),
    "prune": lambda r, n: r.prune("t", reason="r"),
}

# (state before, action, state after (None: no entry) or the error, the event it records)
TRANSITIONS: list[tuple[str, str, str | type[Exception] | None, str | None]] = [
    ("released", "claim", "claimed", "task.claimed"),
    ("retry_wait", "claim", "claimed", "task.claimed"),
    ("claimed", "claim", ConflictError, None),
    ("running", "claim", ConflictError, None),
    ("exited", "claim", ConflictError, None),
    ("failed", "claim", ConflictError, None),
    ("parked", "claim", ConflictError, None),
    ("stopped", "claim", ConflictError, None),
    ("claimed", "start", "running", "task.started"),
    ("running", "start", ConflictError, None),
    ("running", "finish 0", "exited", "task.exited"),
    ("claimed", "finish 0", "exited", "task.exited"),
    ("running", "finish 3", "failed", "task.exited"),
    ("running", "fail", "failed", "task.failed"),
    ("claimed", "fail", "failed", "task.failed"),
    ("running", "stop", "stopped", "task.stopped"),
    ("claimed", "stop", "stopped", "task.stopped"),
    ("exited", "stop", ConflictError, None),
    ("failed", "stop", ConflictError, None),
    ("failed", "retry", "retry_wait", "task.retry_scheduled"),
    ("stopped", "retry", "retry_wait", "task.retry_scheduled"),
    ("exited", "retry", "retry_wait", "task.retry_scheduled"),
    ("parked", "retry", "retry_wait", "task.retry_scheduled"),
    ("retry_wait", "retry", "retry_wait", "task.retry_scheduled"),
    ("running", "retry", ConflictError, None),
    ("claimed", "retry", ConflictError, None),
    ("released", "retry", ConflictError, None),
    ("failed", "schedule_retry", "retry_wait", "task.retry_scheduled"),
    ("exited", "schedule_retry", ConflictError, None),
    ("stopped", "schedule_retry", ConflictError, None),
    ("running", "schedule_retry", ConflictError, None),
    ("failed", "park", "parked", "task.parked"),
    ("running", "park", "parked", "task.parked"),
    ("claimed", "park", "parked", "task.parked"),
    ("retry_wait", "park", "parked", "task.parked"),
    ("parked", "park", ConflictError, None),
    ("released", "park", ConflictError, None),
    ("parked", "unpark", "retry_wait", "task.unparked"),
    ("failed", "unpark", ConflictError, None),
    ("failed", "release", "released", "task.released"),
    ("running", "release", "released", "task.released"),
    ("parked", "release", "released", "task.released"),
    ("released", "release", "released", None),  # already released: nothing to write
    ("failed", "prune", None, "task.pruned"),
    ("exited", "prune", None, "task.pruned"),
    ("released", "prune", None, "task.pruned"),
    ("parked", "prune", None, "task.pruned"),
    ("running", "prune", ConflictError, None),
    ("claimed", "prune", ConflictError, None),
]


@pytest.mark.parametrize(
    ("state", "action", "expected", "event"),
    TRANSITIONS,
    ids=[f"{s}-{a.replace(' ', '')}" for s, a, _, _ in TRANSITIONS],
)
def test_every_transition(
    reg: Registry, state: str, action: str, expected: str | type[Exception] | None, event: str | None
) -> None:
    lease = _into(reg, state)
    assert reg.get("t").state == state
    before = observed(reg)
    if isinstance(expected, type):
        with pytest.raises(expected):
            ACTIONS[action](reg, lease)
        assert observed(reg) == before
        return
    row = reg.get("t").to_dict()
    ACTIONS[action](reg, lease)
    after = reg.find("t")
    assert (after.state if after else None) == expected
    if event is None:
        assert observed(reg) == before
    else:
        last = reg.events().events[-1]
        assert (last.type, last.slug, last.seq) == (event, "t", reg.snapshot().seq)
        if after is None:
            assert last.removed and last.change is None
        else:  # the event carries what changed, and only that: the old row with it is the new
            change = last.change or {}  # None: the event changed nothing in the entry
            assert journal.patch(row, change) == after.to_dict()
            assert set(change.get("set", {})) == {k for k, v in after.to_dict().items() if row.get(k) != v}


def test_unpark_closes_the_circuit_and_makes_the_task_claimable(reg: Registry) -> None:
    for n in range(3):
        lease = reg.claim("t", worker="w").lease
        reg.finish("t", lease, 1)
        if n < 2:
            reg.retry("t")
    assert reg.get("t").consecutive_failures == 1  # a manual retry closes the circuit
    parked = reg.park("t", reason="same failure 3 times", lease=3)
    assert (parked.parked_reason, reg.events().events[-1].details["previous_state"]) == (
        "same failure 3 times",
        "failed",
    )
    with pytest.raises(ConflictError, match="task unpark t"):
        reg.claim("t", worker="w")
    entry = reg.unpark("t", reason="fixed the flake")
    assert (entry.state, entry.parked_reason, entry.consecutive_failures) == ("retry_wait", None, 0)
    assert reg.events().events[-1].details == {"reason": "fixed the flake"}
    assert reg.claim("t", worker="w").lease == 4


def test_update_hook_applies_a_custom_change_or_none(reg: Registry) -> None:
    lease = running(reg)

    def gone(entry: RegistryEntry, s: Snapshot) -> Change:
        return Change(entry.slug, replace(entry, state="failed", failure_class="worker_gone"), "task.failed")

    before = observed(reg)
    unchanged = reg.update("fix-login", lambda entry, s: None)
    assert unchanged == reg.get("fix-login") and observed(reg) == before
    assert reg.update("fix-login", gone).failure_class == "worker_gone"
    assert reg.get("fix-login").state == "failed"
    assert reg.events().events[-1].type == "task.failed"
    with pytest.raises(StaleLeaseError):
        reg.heartbeat("fix-login", lease)


def test_transact_writes_a_plan_at_once_or_nothing(reg: Registry) -> None:
    reg.claim("a", worker="w")
    reg.release("a")
    before = observed(reg)
    seq = reg.snapshot().seq

    def reuse(s: Snapshot) -> Plan[None]:
        ok = Change("b", RegistryEntry("b", "claimed", 1), "task.claimed")
        return Plan((ok, Change("a", RegistryEntry("a", "claimed", 1), "task.claimed")), None)

    with pytest.raises(RegistryError, match="lease 1 was issued before"):
        reg.transact(reuse)
    assert observed(reg) == before  # not even the good change of the plan

    def broken(s: Snapshot) -> Plan[None]:
        raise ValueError("the mutation failed")

    with pytest.raises(ValueError, match="the mutation failed"):
        reg.transact(broken)
    assert reg.transact(lambda s: Plan((), len(s.entries))) == 1  # a plan without changes
    assert observed(reg) == before

    def two(s: Snapshot) -> Plan[str]:
        news = [Change(slug, RegistryEntry(slug, "claimed", 1), "task.claimed") for slug in ("c", "d")]
        return Plan(tuple(news), "both")

    assert reg.transact(two) == "both"
    assert reg.snapshot().seq == seq + 1  # one write
    assert [(e.slug, e.seq) for e in reg.events().events[-2:]] == [("c", seq + 1), ("d", seq + 1)]
    assert reg.snapshot().leases == {"a": 1, "c": 1, "d": 1}


# -- runtime facts -------------------------------------------------------------------------------


def test_runtime_facts_are_kept_on_the_entry_and_in_events(reg: Registry) -> None:
    lease = running(reg)
    reg.note("fix-login", "looking at the parser")
    reg.progress("fix-login", 40, "parser done", lease=lease)
    reg.blocker("fix-login", "needs a staging database")
    reg.evidence("fix-login", "pytest -q", 0, "212 passed")
    reg.artifact("fix-login", "https://ci.example/run/1")
    entry = reg.artifact("fix-login", "https://ci.example/run/1")
    assert (entry.progress, entry.progress_percent) == ("parser done", 40)
    assert entry.blocker == "needs a staging database"
    assert entry.artifacts == ("https://ci.example/run/1",)
    assert [(e.command, e.exit_code, e.summary, e.who, e.time) for e in entry.evidence] == [
        ("pytest -q", 0, "212 passed", "tester", T0)
    ]
    assert reg.get("fix-login") == entry and entry.state == "running"  # facts change no state
    assert reg.blocker("fix-login", None).blocker is None
    facts = ["task.note", "task.progress", "task.blocker", "task.evidence", "task.artifact"]
    assert types(reg, "fix-login")[2:] == [*facts, "task.artifact", "task.blocker"]
    details = [e.details for e in reg.events("fix-login").events[2:]]
    assert details == [
        {"text": "looking at the parser"},
        {"percent": 40, "message": "parser done"},
        {"text": "needs a staging database"},
        {"command": "pytest -q", "exit_code": 0, "summary": "212 passed"},
        {"ref": "https://ci.example/run/1"},
        {"ref": "https://ci.example/run/1"},
        {"cleared": True},
    ]


def test_runtime_facts_without_a_lease_are_an_operators_remark_in_any_state(reg: Registry) -> None:
    lease = running(reg)
    reg.finish("fix-login", lease, 1)
    reg.release("fix-login")
    noted = reg.note("fix-login", "post mortem")
    assert noted is not None and (noted.note, noted.progress) == ("post mortem", None)
    proved = reg.evidence("fix-login", "make check", 2)
    assert proved is not None and proved.evidence[-1].exit_code == 2
    assert reg.get("fix-login").state == "released"


@pytest.mark.parametrize("percent", [-1, 101, 50.5, True])
def test_progress_must_be_a_percentage(reg: Registry, percent: object) -> None:
    running(reg)
    before = observed(reg)
    with pytest.raises(UsageError, match="whole percentage"):
        reg.progress("fix-login", percent)  # type: ignore[arg-type]
    assert observed(reg) == before


@pytest.mark.parametrize("cost", [-1, float("inf"), float("nan")])
def test_a_cost_that_is_not_a_non_negative_number_is_refused(reg: Registry, cost: float) -> None:
    lease = running(reg)
    before = observed(reg)
    with pytest.raises(UsageError, match="cost_usd"):
        reg.heartbeat("fix-login", lease, cost_usd=cost)
    assert observed(reg) == before


# -- bad input ------------------------------------------------------------------------------------

UNKNOWN: list[Callable[[Registry], object]] = [
    lambda r: r.heartbeat("nope", 1),
    lambda r: r.start("nope", 1),
    lambda r: r.finish("nope", 1, 0),
    lambda r: r.fail("nope", 1, failure_class="x", error="x"),
    # Runtime facts without a lease are taken for a slug with no entry (as events alone,
    # tests/test_history.py); with a lease they are fenced like any write.
    lambda r: r.note("nope", "x", lease=1),
    lambda r: r.progress("nope", 5, lease=1),
    lambda r: r.blocker("nope", "x", lease=1),
    lambda r: r.evidence("nope", "x", 0, lease=1),
    lambda r: r.artifact("nope", "x", lease=1),
    lambda r: r.stop("nope"),
    lambda r: r.retry("nope"),
    lambda r: r.schedule_retry("nope", at=r.clock()),
    lambda r: r.park("nope", reason="x"),
    lambda r: r.unpark("nope"),
    lambda r: r.release("nope"),
    lambda r: r.prune("nope", reason="x"),
    lambda r: r.update("nope", lambda e, s: None),
    lambda r: r.get("nope"),
    lambda r: r.log("nope", "x"),
    lambda r: r.log_many("nope", ["x"]),
    lambda r: r.logs("nope"),
    lambda r: drain(r.follow_logs("nope", poll=0.01)),
]


@pytest.mark.parametrize("call", UNKNOWN)
def test_unknown_slug_is_not_found(reg: Registry, call: Callable[[Registry], object]) -> None:
    reg.claim("known", worker="w")
    before = observed(reg)
    with pytest.raises(NotFoundError, match="'nope'"):
        call(reg)
    assert observed(reg) == before


@pytest.mark.parametrize("slug", ["../etc", "a/b", "", ".hidden", "x y"])
@pytest.mark.parametrize(
    "call",
    [
        lambda r, s: r.claim(s, worker="w"),
        lambda r, s: r.claim_first(["ok", s], worker="w"),
        lambda r, s: r.log(s, "x"),
        lambda r, s: r.logs(s),
    ],
    ids=["claim", "claim_first", "log", "logs"],
)
def test_a_slug_that_could_escape_a_folder_is_refused(
    reg: Registry, slug: str, call: Callable[[Registry, str], object]
) -> None:
    reg.claim("ok", worker="w")
    with pytest.raises(UsageError, match="is not a task slug"):
        call(reg, slug)
    assert set(reg.entries()) == {"ok"}


# -- events --------------------------------------------------------------------------------------


def test_events_filter_by_slug_and_since(reg: Registry, clock: ManualClock) -> None:
    reg.claim("a", worker="w")
    clock.advance(hours=1)
    reg.claim("b", worker="w")
    reg.note("a", "later")
    assert types(reg, "a") == ["task.claimed", "task.note"]
    assert [e.slug for e in reg.events(since=clock.now).events] == ["b", "a"]
    assert [e.type for e in reg.events("a", since=clock.now).events] == ["task.note"]
    assert reg.events(since=clock.now + timedelta(seconds=1)).events == ()
    assert reg.events("nobody").events == ()


def test_follow_events_from_now_and_since(reg: Registry, clock: ManualClock) -> None:
    reg.claim("a", worker="w")
    live = reg.follow_events(poll=0.01)  # from this call on, not from the first next()
    clock.advance(hours=1)
    reg.note("a", "hello")
    reg.claim("b", worker="w")
    event, other = take(live, 2)
    assert (event.type, event.details) == ("task.note", {"text": "hello"})
    assert other.slug == "b"
    history = reg.follow_events(slug="a", since=clock.now - timedelta(minutes=1), poll=0.01)
    assert take(history)[0].type == "task.note"  # the claim of 'a' is too old, 'b' is not 'a'
    reg.note("a", "again")
    assert take(history)[0].details == {"text": "again"}


# -- logs ----------------------------------------------------------------------------------------


def test_logs_read_back_by_attempt_level_and_source(reg: Registry, clock: ManualClock) -> None:
    lease = running(reg)
    assert reg.log("fix-login", "compiling", lease=lease, source="stdout") == 1
    messages = ["warn: slow", "line\nwith newline"]
    assert reg.log_many("fix-login", messages, lease=lease, level="warning", source="stderr") == 1
    reg.log("fix-login", "operator remark", level="error", source="operator")
    reg.finish("fix-login", lease, 1)
    reg.retry("fix-login")
    clock.advance(minutes=1)
    second = reg.claim("fix-login", worker="w").lease
    assert reg.log("fix-login", "second attempt", lease=second) == 2
    page = reg.logs("fix-login", attempt=1)
    assert (page.slug, page.attempt, page.warnings) == ("fix-login", 1, ())
    assert [r.message for r in page.records] == [
        "compiling",
        "warn: slow",
        "line\nwith newline",
        "operator remark",
    ]
    first = page.records[0]
    assert (first.time, first.level, first.source, first.lease, first.who) == (
        T0,
        "info",
        "stdout",
        1,
        "tester",
    )
    assert page.records[3].lease is None
    assert [r.message for r in reg.logs("fix-login", attempt=1, level="warning").records] == [
        "warn: slow",
        "line\nwith newline",
        "operator remark",
    ]
    assert [r.message for r in reg.logs("fix-login", attempt=1, source="stdout").records] == ["compiling"]
    assert [r.message for r in reg.logs("fix-login", attempt=1, level="error", source="stderr").records] == []
    current = reg.logs("fix-login")
    assert (current.attempt, [r.message for r in current.records]) == (2, ["second attempt"])
    assert current.records[0].time == "2025-03-01T12:01:00.000000Z"
    with pytest.raises(NotFoundError, match="attempt 9 of 'fix-login' has no log"):
        reg.logs("fix-login", attempt=9)
    before = observed(reg)
    with pytest.raises(UsageError, match="log level 'loud'"):
        reg.log("fix-login", "x", level="loud")
    with pytest.raises(UsageError, match="log source"):
        reg.log("fix-login", "x", source="two\nlines")
    with pytest.raises(UsageError, match="log level 'loud'"):
        reg.logs("fix-login", level="loud")
    assert observed(reg) == before
    assert len(reg.events().events) == 5  # claimed, started, exited, retry, claimed: log lines are not events


def test_an_attempt_that_logged_nothing_has_an_empty_log(reg: Registry) -> None:
    reg.claim("a", worker="w")
    page = reg.logs("a")
    assert (page.slug, page.attempt, page.records) == ("a", 1, ())


def test_follow_logs_yields_everything_then_ends_with_the_attempt(reg: Registry) -> None:
    lease = running(reg)
    reg.log("fix-login", "one", lease=lease)
    follower = reg.follow_logs("fix-login", poll=0.01)
    assert take(follower)[0].message == "one"
    reg.log("fix-login", "two", lease=lease, level="error")
    reg.finish("fix-login", lease, 0)
    assert [r.message for r in drain(follower)] == ["two"]
    reg.retry("fix-login")
    again = reg.claim("fix-login", worker="w").lease
    reg.log("fix-login", "three", lease=again, source="stderr")
    reg.log("fix-login", "four", lease=again)
    filtered = reg.follow_logs("fix-login", attempt=2, source="stderr", poll=0.01)
    assert take(filtered)[0].message == "three"
    reg.stop("fix-login")
    assert drain(filtered) == []
    # an attempt that is over: what it logged, then the end
    over = reg.follow_logs("fix-login", attempt=1, level="error", poll=0.01)
    assert [r.message for r in drain(over)] == ["two"]


# -- retention, repair and the cycle record -----------------------------------------------------


def test_gc_removes_released_entries_and_their_logs_and_archives_old_events(
    reg: Registry, clock: ManualClock
) -> None:
    old = running(reg, "old")
    reg.log("old", "old output", lease=old)
    reg.finish("old", old, 0)
    reg.release("old")
    live = running(reg, "live")
    reg.log("live", "live output", lease=live)
    follower = reg.follow_events(since=clock.now - timedelta(days=1), poll=0.01)
    seen = [e.type for e in take(follower, 6)]
    assert seen == [
        *["task.claimed", "task.started", "task.exited", "task.released"],
        "task.claimed",
        "task.started",
    ]
    clock.advance(days=31)
    recent = reg.claim("recent", worker="w").lease
    reg.log("recent", "recent output", lease=recent)
    reg.release("recent")
    reg.note("live", "recent")
    assert [e.type for e in take(follower, 3)] == ["task.claimed", "task.released", "task.note"]
    report = reg.gc(older_than_days=30)
    assert report.entries_removed == ("old",)
    assert report.logs_removed == ("logs/old",)
    assert report.log_bytes_removed > 0 and report.events_archived == 6 and report.archive
    assert report.warnings == ()
    assert set(reg.entries()) == {"live", "recent"} and reg.snapshot().leases["old"] == 1
    with pytest.raises(NotFoundError):
        reg.logs("old", attempt=1)
    assert [r.message for r in reg.logs("live").records] == ["live output"]
    assert [r.message for r in reg.logs("recent").records] == ["recent output"]
    assert types(reg) == ["task.claimed", "task.released", "task.note", "task.pruned"]
    assert reg.events().events[-1].details == {"reason": "released before 2025-03-02T12:00:00.000000Z"}
    # the follower goes on past the archiving: what it saw before is not replayed
    assert [e.type for e in take(follower)] == ["task.pruned"]
    reg.note("live", "after gc")
    assert take(follower)[0].details == {"text": "after gc"}
    again = reg.gc(older_than_days=30)
    assert (again.entries_removed, again.logs_removed, again.events_archived) == ((), (), 0)
    with pytest.raises(UsageError):
        reg.gc(older_than_days=-1)


def test_gc_of_everything_leaves_an_empty_store_that_still_knows_its_leases(
    reg: Registry, clock: ManualClock
) -> None:
    reg.claim("a", worker="w")
    reg.release("a")
    clock.advance(seconds=1)
    assert reg.gc(0).entries_removed == ("a",)
    assert reg.entries() == {} and reg.snapshot().leases == {"a": 1}
    assert reg.claim("a", worker="w").lease == 2


def test_repair_of_a_healthy_store_is_not_needed_and_changes_nothing(reg: Registry) -> None:
    lease = running(reg)
    reg.log("fix-login", "output", lease=lease)
    reg.claim("other", worker="w")
    before = observed(reg)
    report = reg.repair()
    assert report.needed is False and report.problem is None and report.unrecovered == ()
    assert observed(reg) == before


def test_write_cycle_and_read_cycle_round_trip(reg: Registry) -> None:
    assert reg.read_cycle() is None
    reg.claim("a", worker="w")
    before = observed(reg)
    first = CycleRecord(
        generated_at=T0,
        owner="tester@host-1",
        host="host-1",
        pid=4242,
        duration_ms=12.5,
        ref="main",
        commit="0123abcd",
        owners=("core", "agents"),
        counts={"ready": 2, "running": 1},
        attention=({"slug": "a", "why": "stalled"},),
        tasks={"a": {"bucket": "running", "state": "claimed", "signals": ["stalled"]}},
        actions=({"kind": "retry", "slug": "b"},),
        dispatched=({"slug": "c", "lease": 1},),
        warnings=("tasks/x.md: unreadable",),
        ready_since={"c": T0},
        orphan_since={"gone": T0},
    )
    reg.write_cycle(first)
    assert reg.read_cycle() == first
    second = CycleRecord(generated_at="2025-03-01T12:05:00.000000Z", counts={"ready": 0})
    reg.write_cycle(second)
    assert reg.read_cycle() == second  # replaced, not merged
    assert observed(reg)[1:] == before[1:]  # entries, leases, events and logs are another matter


def test_a_cycle_record_read_without_rows_has_everything_but_its_task_rows(reg: Registry) -> None:
    rows = {"a": {"bucket": "ready", "state": "ready"}}
    record = CycleRecord(
        generated_at=T0, host="host-1", counts={"ready": 1}, tasks=rows, ready_since={"a": T0}
    )
    reg.write_cycle(record)
    assert reg.read_cycle(rows=False) == replace(record, tasks={})
    assert reg.read_cycles(rows=False) == (replace(record, tasks={}),)
    assert reg.read_cycle() == record


def test_write_cycle_stamps_duration_ms_with_elapsed_read_once(reg: Registry) -> None:
    readings: list[float] = []

    def elapsed() -> float:
        readings.append(81.24)
        return readings[-1]

    record = CycleRecord(generated_at=T0, host="host-1", duration_ms=3.0, tasks={"a": {"bucket": "ready"}})
    reg.write_cycle(record, elapsed=elapsed)
    assert readings == [81.24]
    assert reg.read_cycle() == replace(record, duration_ms=81.2)  # rounded to a tenth, as the cycle's
    reg.write_cycle(record)  # without elapsed: the record's own
    assert reg.read_cycle() == record


# -- two handles on one store ---------------------------------------------------------------------


_stores = itertools.count()


@example(ops=[("claim", "a"), ("release", "a"), ("gc", "a")])  # found by hypothesis: no entries left
@example(ops=[("claim", "a"), ("stop", "a"), ("prune", "a"), ("claim", "a")])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=REGISTRY_OPS)
def test_two_writers_interleaving_always_agree_and_never_reuse_a_lease(
    store_factory: StoreFactory, ops: list[tuple[str, str]]
) -> None:
    """Each handle may keep its own cache; every handle, and a fresh one, must see the same."""
    name = f"interleaved-{next(_stores)}"
    writers = [store_factory(actor=ACTOR, name=name), store_factory(actor=ACTOR, name=name)]
    highs: dict[str, int] = {}
    for n, (op, slug) in enumerate(ops):
        with contextlib.suppress(ConflictError):
            registry_op(writers[n % 2], op, slug)
        readers = (*writers, store_factory(name=name))
        seen = [
            ({s: e.to_dict() for s, e in r.entries().items()}, dict(r.snapshot().leases)) for r in readers
        ]
        assert seen[0] == seen[1] == seen[2]
        snap = readers[2].snapshot()
        for key in {*highs, *snap.entries}:
            high = snap.last_lease(key)
            assert high >= highs.get(key, 0)  # a lease never goes back, not after prune or gc either
            if high > highs.get(key, 0):  # only a claim issues a lease, one more than the last
                assert (high, snap.entries[key].state) == (highs.get(key, 0) + 1, "claimed")
            highs[key] = high


# -- not about a store: the process facts a claim records ----------------------------------------


# -- decisions under a lease, naive times, the change feed ---------------------------------------


@pytest.mark.parametrize("decide", ["schedule_retry", "park"])
def test_a_decision_under_a_lease_never_issued_is_a_usage_error(reg: Registry, decide: str) -> None:
    lease = reg.claim("t", worker="w").lease
    reg.finish("t", lease, 1)
    before = observed(reg)
    with pytest.raises(UsageError, match="lease 99 for 't' was never issued; the current lease is 1"):
        if decide == "park":
            reg.park("t", reason="x", lease=99)
        else:
            reg.schedule_retry("t", at=reg.clock(), lease=99)
    assert observed(reg) == before
    reg.retry("t")
    reg.claim("t", worker="w")
    with pytest.raises(StaleLeaseError, match="superseded by lease 2"):
        reg.park("t", reason="x", lease=lease)


def test_events_since_a_naive_time_reads_it_as_utc(reg: Registry, clock: ManualClock) -> None:
    reg.claim("t", worker="w")
    clock.advance(hours=1)
    reg.note("t", "later")
    naive = clock.now.replace(tzinfo=None)
    assert [e.type for e in reg.events(since=naive).events] == ["task.note"]


def test_watch_reports_entries_cycle_and_logs_with_the_events_and_stops(reg: Registry) -> None:
    stop = threading.Event()
    feed = reg.watch(stop)
    changes: list[RegistryChange] = []

    def until(predicate: Callable[[RegistryChange], bool]) -> RegistryChange:
        for change in take(feed, 1, timeout=15):
            changes.append(change)
        while not predicate(changes[-1]):
            changes.extend(take(feed, 1, timeout=15))
        return changes[-1]

    lease = reg.claim("t", worker="w").lease  # the first write: the store comes into being
    claimed = until(lambda c: any(e.type == "task.claimed" for e in c.events))
    assert "registry" in claimed.scopes and "t" in claimed.slugs
    reg.start("t", lease)
    started = until(lambda c: any(e.type == "task.started" for e in c.events))
    assert [e.type for e in started.events if e.slug == "t"][-1] == "task.started"
    reg.write_cycle(CycleRecord(generated_at=T0))
    until(lambda c: "cycle" in c.scopes)
    reg.log("t", "a line", lease=lease)
    until(lambda c: "logs" in c.scopes)
    stop.set()
    assert drain(feed, timeout=15) is not None  # it ends once stopped
    seen = [e.type for c in changes for e in c.events]
    assert seen.count("task.claimed") == 1  # each event once, in order


def test_unreleased_is_every_entry_but_the_released_ones(reg: Registry) -> None:
    """What the classification reads: a store may skip released entries unread."""
    for slug in ("a", "b", "c", "d"):
        reg.claim(slug, worker="w")
    reg.release("b")
    reg.note("b", "a note on a released entry")  # its line changes; still released
    lease = reg.get("c").lease
    reg.finish("c", lease, 1)
    reg.release("d")
    reg.retry("c")
    want = {slug: entry for slug, entry in reg.entries().items() if entry.state != "released"}
    assert reg.unreleased() == want and set(want) == {"a", "c"}
    reopened = reg.claim("d", worker="w2")  # released, then claimed again
    assert reg.unreleased()["d"] == reopened


def test_a_chain_of_steps_is_one_transaction_each_step_seeing_the_last(reg: Registry) -> None:
    """``lifecycle.chain`` (task mcp's report): the heartbeat and its facts as one write; a
    refused step (here a bad percentage after a good note) writes none of them."""
    lease = running(reg)
    before = len(reg.events("fix-login").events)
    entry = reg.transact(
        lambda s: lifecycle.chain(
            s,
            [
                lambda s: lifecycle.heartbeat(s, "fix-login", lease, cost_usd=0.5),
                lambda s: lifecycle.progress(s, "fix-login", 40, "half", lease=lease),
                lambda s: lifecycle.note(s, "fix-login", "a note", lease=lease),
            ],
        )
    )
    assert (entry.progress_percent, entry.progress, entry.note, entry.cost_usd) == (40, "half", "a note", 0.5)
    assert reg.get("fix-login") == entry
    kinds = [e.type for e in reg.events("fix-login").events[before:]]
    assert kinds == ["task.heartbeat", "task.progress", "task.note"]
    assert len({e.seq for e in reg.events("fix-login").events[before:]}) == 1  # one transaction
    with pytest.raises(UsageError):
        reg.transact(
            lambda s: lifecycle.chain(
                s,
                [
                    lambda s: lifecycle.note(s, "fix-login", "never written", lease=lease),
                    lambda s: lifecycle.progress(s, "fix-login", 140, lease=lease),
                ],
            )
        )
    assert reg.get("fix-login").note == "a note"
    assert len(reg.events("fix-login").events) == before + 3
    with pytest.raises(StaleLeaseError):
        reg.transact(
            lambda s: lifecycle.chain(s, [lambda s: lifecycle.note(s, "fix-login", "x", lease=lease - 1)])
        )
