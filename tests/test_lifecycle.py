"""registry/lifecycle.py: what each transition writes on the entry and in its event, down to
the times and the details, on a real JSON registry in tmp_path (the rules are the same
functions on every store; test_registry.py runs the contract on each). The clock is the
only fake: it moves between steps, so a time left from an earlier step shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from taskfiles.errors import ConflictError, UsageError
from taskfiles.registry import Plan, Registry, RegistryEntry, Snapshot, lifecycle
from taskfiles.registry.jsonstore import JsonRegistry
from taskfiles.registry.records import format_time

from .conftest import TEST_ACTOR, ManualClock


@pytest.fixture
def reg(tmp_path: Path, clock: ManualClock) -> Registry:
    return JsonRegistry(tmp_path / "registry", clock=clock, actor=TEST_ACTOR)


def failed(reg: Registry, clock: ManualClock, slug: str = "t") -> int:
    """``slug`` claimed, started and failed (exit 1) a minute later; its lease."""
    lease = reg.claim(slug, worker="w1").lease
    reg.start(slug, lease)
    clock.advance(minutes=1)
    reg.finish(slug, lease, 1)
    return lease


def last_event(reg: Registry, slug: str = "t") -> tuple[str, dict[str, Any]]:
    event = reg.events(slug).events[-1]
    return event.type, dict(event.details)


def now(clock: ManualClock) -> str:
    return format_time(clock.now)


def test_fail_marks_the_attempt_finished_and_updated_now(reg: Registry, clock: ManualClock) -> None:
    lease = reg.claim("t", worker="w1").lease
    clock.advance(minutes=5)
    entry = reg.fail("t", lease, failure_class="stalled", error="no heartbeat for 700 s")
    assert (entry.state, entry.finished_at, entry.updated_at) == ("failed", now(clock), now(clock))


def test_schedule_retry_sets_the_time_and_records_who_decided_why(reg: Registry, clock: ManualClock) -> None:
    lease = failed(reg, clock)
    clock.advance(minutes=1)
    at = clock.now + timedelta(minutes=10)
    entry = reg.schedule_retry("t", at=at, reason="backoff after attempt 1", lease=lease)
    assert (entry.state, entry.next_attempt_at) == ("retry_wait", format_time(at))
    assert entry.updated_at == now(clock)
    assert last_event(reg) == (
        "task.retry_scheduled",
        {"reason": "backoff after attempt 1", "at": format_time(at), "manual": False},
    )


def test_schedule_retry_of_an_attempt_that_did_not_fail_says_why_not(reg: Registry) -> None:
    reg.claim("t", worker="w1")
    with pytest.raises(ConflictError) as refused:
        reg.schedule_retry("t", at=reg.snapshot().now)
    assert str(refused.value) == "'t' is claimed; only a failed attempt is scheduled for retry"


def test_request_changes_makes_the_task_due_now(reg: Registry, clock: ManualClock) -> None:
    lease = reg.claim("t", worker="w1").lease
    reg.finish("t", lease, 0)
    clock.advance(minutes=3)
    entry = reg.request_changes("t", instructions="split the migration in two")
    assert (entry.state, entry.next_attempt_at, entry.updated_at) == ("retry_wait", now(clock), now(clock))
    assert lifecycle.claim_refusal(entry, clock.now) is None


def test_unpark_makes_the_task_due_now_and_says_why(reg: Registry, clock: ManualClock) -> None:
    failed(reg, clock)
    reg.park("t", reason="needs a human")
    clock.advance(minutes=3)
    entry = reg.unpark("t", reason="credentials added")
    assert (entry.state, entry.next_attempt_at, entry.updated_at) == ("retry_wait", now(clock), now(clock))
    assert entry.parked_reason is None
    assert last_event(reg) == ("task.unparked", {"reason": "credentials added"})


@pytest.mark.parametrize(
    ("reason", "details"), [("duplicate of #12", {"reason": "duplicate of #12"}), (None, {})]
)
def test_cancelled_is_an_event_alone_with_its_reason(
    reg: Registry, clock: ManualClock, reason: str | None, details: dict[str, str]
) -> None:
    """``task cancel`` records the cancellation; the entry, if any, stays as it was."""
    assert reg.cancelled("t", reason=reason) is None  # no entry: an event alone
    assert last_event(reg) == ("task.cancelled", details)
    lease = failed(reg, clock, "u")
    before = reg.get("u")
    assert reg.cancelled("u", reason=reason) == before
    assert reg.get("u") == before and before.lease == lease
    assert last_event(reg, "u") == ("task.cancelled", details)


def test_chain_of_no_steps_writes_nothing_and_returns_none(reg: Registry) -> None:
    assert reg.transact(lambda s: lifecycle.chain(s, [])) is None
    assert reg.events().events == ()


def test_update_hands_the_hook_the_snapshot_and_a_none_change_writes_nothing(
    reg: Registry, clock: ManualClock
) -> None:
    reg.claim("t", worker="w1")
    seen: list[Snapshot] = []

    def look(entry: RegistryEntry, snapshot: Snapshot) -> None:
        seen.append(snapshot)

    count = len(reg.events("t").events)
    assert reg.update("t", look) == reg.get("t")
    assert [s.now for s in seen] == [clock.now]
    assert len(reg.events("t").events) == count


def test_claim_first_passes_max_attempts_on_and_claims_nothing_when_none_can_be(
    reg: Registry, clock: ManualClock
) -> None:
    entry = reg.claim_first(["t"], worker="w1", max_attempts=5)
    assert entry is not None and (entry.slug, entry.max_attempts) == ("t", 5)
    count = len(reg.events().events)
    assert reg.claim_first(["t"], worker="w2") is None  # live: nothing to take
    assert len(reg.events().events) == count


def test_release_ends_the_claim_now_and_keeps_an_earlier_finish(reg: Registry, clock: ManualClock) -> None:
    reg.claim("t", worker="w1")
    clock.advance(minutes=2)
    entry = reg.release("t", reason="not needed")
    assert (entry.state, entry.updated_at, entry.finished_at) == ("released", now(clock), now(clock))
    finished = format_time(clock.now + timedelta(minutes=1))
    failed(reg, clock, "u")
    clock.advance(minutes=5)
    entry = reg.release("u")
    assert (entry.updated_at, entry.finished_at) == (now(clock), finished)


def test_release_of_a_released_entry_returns_it_and_writes_nothing_even_in_a_chain(reg: Registry) -> None:
    reg.claim("t", worker="w1")
    released = reg.release("t")
    count = len(reg.events().events)
    assert reg.release("t") == released
    assert reg.transact(lambda s: lifecycle.chain(s, [lambda s: lifecycle.release(s, "t")])) == released
    assert len(reg.events().events) == count


def test_a_fact_on_a_task_without_an_entry_is_an_event_alone(reg: Registry) -> None:
    assert reg.note("t", "looked at it") is None
    event = reg.events("t").events[-1]
    assert (event.type, event.slug, dict(event.details)) == ("task.note", "t", {"text": "looked at it"})
    assert reg.find("t") is None


def test_a_fact_on_an_entry_updates_it_now(reg: Registry, clock: ManualClock) -> None:
    reg.claim("t", worker="w1")
    clock.advance(minutes=4)
    entry = reg.note("t", "halfway")
    assert entry is not None and (entry.note, entry.updated_at) == ("halfway", now(clock))


@pytest.mark.parametrize("percent", [0, 100])
def test_progress_takes_0_and_100(reg: Registry, percent: int) -> None:
    reg.claim("t", worker="w1")
    entry = reg.progress("t", percent)
    assert entry is not None and entry.progress_percent == percent


@pytest.mark.parametrize("percent", [-1, 101])
def test_progress_refuses_what_is_not_a_percentage(reg: Registry, percent: int) -> None:
    reg.claim("t", worker="w1")
    with pytest.raises(UsageError) as refused:
        reg.progress("t", percent)
    assert str(refused.value) == f"progress must be a whole percentage from 0 to 100, not {percent}"


def test_retry_is_not_fresh_unless_asked(reg: Registry, clock: ManualClock) -> None:
    failed(reg, clock)
    assert reg.transact(lambda s: lifecycle.retry(s, "t")).fresh is False  # the rule's own default
    assert reg.retry("t").fresh is False
    assert reg.retry("t", fresh=True).fresh is True


@pytest.mark.parametrize(
    ("release", "message"),
    [
        (False, "'t' is claimed and cannot be retried; run 'task stop t' first"),
        (True, "'t' is released and cannot be retried; claim it with 'task claim t'"),
    ],
)
def test_retry_refuses_a_live_or_released_entry_saying_what_to_run(
    reg: Registry, release: bool, message: str
) -> None:
    reg.claim("t", worker="w1")
    if release:
        reg.release("t")
    with pytest.raises(ConflictError) as refused:
        reg.retry("t")
    assert str(refused.value) == message


def test_request_changes_records_when(reg: Registry, clock: ManualClock) -> None:
    lease = reg.claim("t", worker="w1").lease
    reg.finish("t", lease, 0)
    clock.advance(minutes=3)
    reg.request_changes("t", instructions="add a test")
    assert last_event(reg) == ("task.changes_requested", {"instructions": "add a test", "at": now(clock)})


def test_park_records_why_and_when_and_refuses_twice(reg: Registry, clock: ManualClock) -> None:
    failed(reg, clock)
    clock.advance(minutes=2)
    entry = reg.park("t", reason="needs a human")
    assert (entry.state, entry.parked_reason, entry.updated_at) == ("parked", "needs a human", now(clock))
    assert last_event(reg) == ("task.parked", {"reason": "needs a human", "previous_state": "failed"})
    with pytest.raises(ConflictError) as refused:
        reg.park("t", reason="again")
    assert str(refused.value) == "'t' is parked; only a task with a claim history can be parked"


def test_heartbeat_updates_the_entry_now_and_takes_a_cost_of_zero(reg: Registry, clock: ManualClock) -> None:
    lease = reg.claim("t", worker="w1").lease
    clock.advance(minutes=1)
    entry = reg.heartbeat("t", lease, cost_usd=0)
    assert (entry.heartbeat_at, entry.updated_at, entry.cost_usd) == (now(clock), now(clock), 0.0)


def test_stop_ends_the_attempt_now_and_records_what_it_stopped(reg: Registry, clock: ManualClock) -> None:
    lease = reg.claim("t", worker="w1").lease
    reg.start("t", lease, pid=4242)
    clock.advance(minutes=2)
    entry = reg.stop("t")
    assert (entry.state, entry.stop_reason) == ("stopped", "stopped by an operator")
    assert (entry.finished_at, entry.updated_at) == (now(clock), now(clock))
    assert last_event(reg) == ("task.stopped", {"pid": 4242, "previous_state": "running"})
    with pytest.raises(ConflictError) as refused:
        reg.stop("t", reason="again")
    assert str(refused.value) == "'t' is stopped, not claimed or running; there is nothing to stop"


def test_retry_is_due_now_and_its_event_says_a_person_asked(reg: Registry, clock: ManualClock) -> None:
    failed(reg, clock)
    clock.advance(minutes=2)
    entry = reg.retry("t", reason="flaky network")
    assert (entry.state, entry.next_attempt_at, entry.updated_at) == ("retry_wait", now(clock), now(clock))
    details = {"reason": "flaky network", "fresh": False, "at": now(clock), "manual": True}
    assert last_event(reg) == ("task.retry_scheduled", details)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" \n", "the instructions are empty; say what the next attempt should do differently"),
        (
            "x" * 16_001,
            "the instructions are 16001 characters, over the limit of 16000; "
            "shorten them, or put the detail in the task file's body",
        ),
    ],
)
def test_instructions_empty_or_too_long_are_refused_saying_what_to_do(
    reg: Registry, clock: ManualClock, text: str, message: str
) -> None:
    failed(reg, clock)
    with pytest.raises(UsageError) as refused:
        reg.retry("t", instructions=text)
    assert str(refused.value) == message


def test_steps_that_change_nothing_chain_into_a_transaction_that_writes_nothing(reg: Registry) -> None:
    """A step with no change still hands ``chain`` a sequence of changes (an empty one)."""
    reg.claim("t", worker="w1")
    count = len(reg.events().events)
    steps: list[Callable[[Snapshot], Plan[Any]]] = [
        lambda s: lifecycle.claim_first(s, ["t"], worker="w2"),  # live: nothing to take
        lambda s: lifecycle.update(s, "t", lambda entry, snapshot: None),
    ]
    assert reg.transact(lambda s: lifecycle.chain(s, steps)) == reg.get("t")
    assert len(reg.events().events) == count


def test_max_attempts_of_one_is_taken_and_of_zero_refused(reg: Registry) -> None:
    assert reg.claim("t", worker="w1", max_attempts=1).max_attempts == 1
    with pytest.raises(UsageError) as refused:
        reg.claim("u", worker="w1", max_attempts=0)
    assert str(refused.value) == "max_attempts must be at least 1, not 0"


def test_start_records_the_worker_now_and_refuses_a_second_start(reg: Registry, clock: ManualClock) -> None:
    lease = reg.claim("t", worker="w1").lease
    clock.advance(seconds=30)
    entry = reg.start("t", lease, pid=4242, worktree=".worktrees/t", branch="task/t")
    assert (entry.started_at, entry.updated_at) == (now(clock), now(clock))
    assert last_event(reg) == ("task.started", {"pid": 4242, "worktree": ".worktrees/t", "branch": "task/t"})
    with pytest.raises(ConflictError) as refused:
        reg.start("t", lease)
    assert str(refused.value) == f"'t' was already started at {now(clock)}; a lease runs one worker"


def test_heartbeat_costs_are_kept_to_the_micro_dollar_and_in_the_event(reg: Registry) -> None:
    lease = reg.claim("t", worker="w1").lease
    entry = reg.heartbeat("t", lease, cost_usd=0.0000004)
    assert (entry.cost_usd, entry.total_cost_usd) == (0.0, 0.0)
    entry = reg.heartbeat("t", lease, note="step 2", cost_usd=0.25)
    assert (entry.cost_usd, entry.total_cost_usd) == (0.25, 0.25)
    assert last_event(reg) == ("task.heartbeat", {"note": "step 2", "cost_usd": 0.25})


def test_an_exit_0_after_a_failure_clears_the_error(reg: Registry, clock: ManualClock) -> None:
    failed(reg, clock)
    reg.retry("t")
    lease = reg.claim("t", worker="w2").lease
    clock.advance(minutes=7)
    entry = reg.finish("t", lease, 0)
    assert (entry.state, entry.last_error, entry.failure_class) == ("exited", None, None)
    assert (entry.finished_at, entry.updated_at) == (now(clock), now(clock))


def test_an_attempts_end_event_says_when_it_started_or_else_was_claimed(
    reg: Registry, clock: ManualClock
) -> None:
    lease = reg.claim("t", worker="w1").lease
    clock.advance(minutes=1)
    reg.start("t", lease)
    started = now(clock)
    reg.finish("t", lease, 0)
    assert last_event(reg)[1]["started_at"] == started
    lease = reg.claim("u", worker="w1").lease
    claimed = now(clock)
    clock.advance(minutes=1)
    reg.fail("u", lease, failure_class="dispatch_failed", error="git worktree add failed")
    assert last_event(reg, "u")[1]["started_at"] == claimed


def test_a_claim_after_a_release_starts_afresh_but_keeps_the_tasks_total_cost(reg: Registry) -> None:
    lease = reg.claim("t", worker="w1").lease
    reg.start("t", lease, worktree=".worktrees/t", branch="task/t")
    reg.heartbeat("t", lease, note="half done", cost_usd=0.5)
    reg.note("t", "remember the flag")
    reg.release("t")
    entry = reg.claim("t", worker="w2")
    assert (entry.worktree, entry.branch, entry.progress, entry.note) == (None, None, None, None)
    assert (entry.attempt, entry.cost_usd, entry.total_cost_usd) == (2, 0.0, 0.5)


def test_a_claim_is_dated_now_and_keeps_the_attempts_allowed(reg: Registry, clock: ManualClock) -> None:
    clock.advance(minutes=1)
    entry = reg.claim("t", worker="w1")
    assert (entry.claimed_at, entry.updated_at, entry.max_attempts) == (now(clock), now(clock), 3)
    reg.fail("t", entry.lease, failure_class="stalled", error="no heartbeat")
    reg.retry("t")
    reg.claim("t", worker="w2", max_attempts=5)
    reg.release("t")
    assert reg.claim("t", worker="w3").max_attempts == 5  # the earlier claim's, not the default


def test_a_new_attempt_forgets_the_last_attempts_run_and_keeps_the_tasks_facts(
    reg: Registry, clock: ManualClock
) -> None:
    lease = reg.claim("t", worker="w1", owner="core", task_blob="a" * 40).lease
    reg.start("t", lease, pid=4242, pid_start_time=99)
    reg.heartbeat("t", lease)
    reg.progress("t", 40, lease=lease)
    clock.advance(minutes=1)
    reg.stop("t", reason="wrong approach")
    reg.retry("t")
    entry = reg.claim("t", worker="w2")
    run = (entry.pid, entry.pid_start_time, entry.started_at, entry.heartbeat_at, entry.finished_at)
    assert run == (None, None, None, None, None)
    assert (entry.exit_code, entry.progress_percent, entry.stop_reason) == (None, None, None)
    assert (entry.owner, entry.task_blob) == ("core", "a" * 40)
    reg.finish("t", entry.lease, 3)
    reg.retry("t")
    assert reg.claim("t", worker="w3").exit_code is None
