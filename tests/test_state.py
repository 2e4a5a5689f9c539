"""The one classification: buckets and signals as a table, on a fixed clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskfiles.config import Limits
from taskfiles.errors import ConfigError, ConflictError
from taskfiles.plan.source import TaskSet
from taskfiles.plan.taskfile import Task
from taskfiles.registry.jsonstore import JsonRegistry
from taskfiles.registry.records import RegistryEntry, format_time
from taskfiles.registry.transaction import Change, Snapshot
from taskfiles.state import BUCKETS, SIGNALS, Edit, Inputs, classify_all, counts, dispatchable

from .conftest import TEST_ACTOR, ManualClock

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    """A registry time ``seconds`` before NOW (negative: in the future)."""
    return format_time(NOW - timedelta(seconds=seconds))


def task(
    slug: str, status: str = "ready", *, deps: Sequence[str] = (), legacy: Mapping[str, Any] | None = None
) -> Task:
    """A task as the parser would give it (legacy: runtime keys found in its frontmatter)."""
    return Task(
        slug=slug,
        path=f"tasks/{slug}.md",
        title=slug.title(),
        status=status,
        priority="p2",
        owner="alice",
        depends_on=tuple(deps),
        completed_at="2026-11-01" if status == "completed" else None,
        legacy=dict(legacy or {}),
    )


def entry(slug: str = "t", state: str = "running", **fields: Any) -> RegistryEntry:
    """A registry entry claimed a minute ago."""
    fields.setdefault("claimed_at", ago(60))
    fields.setdefault("worker", "w1")
    return RegistryEntry(slug=slug, state=state, lease=fields.pop("lease", 3), **fields)


@dataclass(frozen=True)
class Case:
    """One row: the world, then what ``t`` (or the orphan's slug) must classify as, and
    ``since``: when each of its signals became true, in order."""

    tasks: Sequence[Task]
    entries: Sequence[RegistryEntry] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)
    bucket: str = ""
    state: str = ""
    signals: tuple[str, ...] = ()
    slug: str = "t"
    blocked_by: tuple[str, ...] = ()
    since: tuple[str | None, ...] = ()


DONE_DEP = task("dep", "completed")
CASES = {
    "backlog": Case([task("t", "not_started")], bucket="backlog", state="not_started"),
    "waiting on a dependency": Case(
        [task("t", deps=["dep", "done"]), task("dep", "ready"), task("done", "completed")],
        bucket="waiting",
        state="waiting",
        blocked_by=("dep",),
    ),
    "waiting on a missing dependency": Case(
        [task("t", deps=["ghost"])], bucket="waiting", state="waiting", blocked_by=("ghost",)
    ),
    "waiting on two dependencies": Case(
        [task("t", deps=["b", "a"]), task("a"), task("b")],
        bucket="waiting",
        state="waiting",
        blocked_by=("b", "a"),
    ),
    "ready": Case([task("t", deps=["dep"]), DONE_DEP], bucket="ready", state="ready"),
    "claimed, fresh": Case([task("t")], [entry(state="claimed")], bucket="active", state="claimed"),
    "running, with progress and a note": Case(
        [task("t")],
        [entry(heartbeat_at=ago(5), progress="half done", note="waiting on CI")],
        bucket="active",
        state="running",
    ),
    "running, fresh heartbeat": Case(
        [task("t")],
        [entry(started_at=ago(300), heartbeat_at=ago(30))],
        bucket="active",
        state="running",
    ),
    "stalled": Case(
        [task("t")],
        [entry(started_at=ago(900), heartbeat_at=ago(601))],
        bucket="needs_attention",
        state="running",
        signals=("stalled",),
        since=(ago(1),),  # the last heartbeat + stall_after_seconds (600)
    ),
    "quiet exactly as long as the stall limit: not stalled yet": Case(
        [task("t")], [entry(heartbeat_at=ago(600))], bucket="active", state="running"
    ),
    "claimed, never started, stalled": Case(
        [task("t")],
        [entry(state="claimed", claimed_at=ago(3600))],
        bucket="needs_attention",
        state="claimed",
        signals=("stalled",),
        since=(ago(3000),),
    ),
    "stall limit from config": Case(
        [task("t")],
        [entry(heartbeat_at=ago(120))],
        {"limits": Limits.from_config({"limits": {"stall_after_seconds": 60}})},
        bucket="needs_attention",
        state="running",
        signals=("stalled",),
        since=(ago(60),),
    ),
    "worker gone": Case(
        [task("t")],
        [entry(pid=4242, heartbeat_at=ago(5))],
        {"dead_workers": frozenset({"t"})},
        bucket="needs_attention",
        state="running",
        signals=("worker_gone",),
        since=(ago(5),),  # its last sign of life
    ),
    "review": Case(
        [task("t")],
        [entry(state="exited", exit_code=0, finished_at=ago(600))],
        bucket="review",
        state="review",
    ),
    "exited exactly the review grace ago: not unreconciled yet": Case(
        [task("t")],
        [entry(state="exited", exit_code=0, finished_at=ago(3600))],
        bucket="review",
        state="review",
    ),
    "exited, unreconciled after the grace": Case(
        [task("t")],
        [entry(state="exited", exit_code=0, finished_at=ago(3601))],
        bucket="needs_attention",
        state="review",
        signals=("exited_unreconciled",),
        since=(ago(1),),  # the exit + review_grace_seconds (3600)
    ),
    "retry_wait (backing off)": Case(
        [task("t")],
        [entry(state="retry_wait", next_attempt_at=ago(-120), failure_class="exit_1")],
        bucket="waiting",
        state="retry_wait",
    ),
    "retry due": Case(
        [task("t")],
        [entry(state="retry_wait", next_attempt_at=ago(1))],
        bucket="ready",
        state="retry_due",
    ),
    "retry due, but its task went back to planning": Case(
        [task("t", "not_started")],
        [entry(state="retry_wait", next_attempt_at=ago(1))],
        bucket="backlog",
        state="not_started",
    ),
    "retry due, but a dependency is not completed": Case(
        [task("t", deps=["dep"]), task("dep")],
        [entry(state="retry_wait", next_attempt_at=ago(1))],
        bucket="waiting",
        state="waiting",
        blocked_by=("dep",),
    ),
    "retry due, but two dependencies are not completed": Case(
        [task("t", deps=["a", "b"]), task("a"), task("b")],
        [entry(state="retry_wait", next_attempt_at=ago(1))],
        bucket="waiting",
        state="waiting",
        blocked_by=("a", "b"),
    ),
    "changes requested after review: due, not in review again": Case(
        [task("t")],
        [entry(state="retry_wait", exit_code=0, finished_at=ago(30), next_attempt_at=ago(10))],
        bucket="ready",
        state="retry_due",
    ),
    "retry due after a failed dispatch: dispatched with its signal": Case(
        [task("t")],
        [
            entry(
                state="retry_wait",
                next_attempt_at=ago(1),
                failure_class="dispatch_failed",
                last_error="git worktree add failed",
                finished_at=ago(30),
            )
        ],
        bucket="needs_attention",
        state="retry_due",
        signals=("dispatch_failed",),
        since=(ago(30),),
    ),
    "failed, the heartbeat decides": Case(
        [task("t")],
        [entry(state="failed", exit_code=2, finished_at=ago(5))],
        bucket="waiting",
        state="failed",
    ),
    "dispatch failed": Case(
        [task("t")],
        [
            entry(
                state="retry_wait",
                next_attempt_at=ago(-60),
                failure_class="dispatch_failed",
                last_error="git worktree add failed",
                finished_at=ago(30),
            )
        ],
        bucket="needs_attention",
        state="retry_wait",
        signals=("dispatch_failed",),
        since=(ago(30),),
    ),
    "dispatched again after a failed dispatch: that failure is over": Case(
        [task("t")],
        [
            entry(
                state="claimed",
                failure_class="dispatch_failed",
                last_error="git worktree add failed",
            )
        ],
        bucket="active",
        state="claimed",
    ),
    "parked": Case(
        [task("t")],
        [entry(state="parked", parked_reason="needs a human", updated_at=ago(120))],
        bucket="needs_attention",
        state="parked",
        signals=("parked",),
        since=(ago(120),),
    ),
    "parked after failed dispatches: each its own signal": Case(
        [task("t")],
        [
            entry(
                state="parked",
                failure_class="dispatch_failed",
                last_error="boom",
                parked_reason="circuit open: dispatch_failed 3 times in a row (boom)",
                finished_at=ago(30),
                updated_at=ago(29),
            )
        ],
        bucket="needs_attention",
        state="parked",
        signals=("dispatch_failed", "parked"),
        since=(ago(30), ago(29)),
    ),
    "parked after its worker vanished: worker_gone and parked": Case(
        [task("t")],
        [
            entry(
                state="parked",
                pid=7,
                failure_class="worker_gone",
                last_error="worker pid 7 is gone without an exit record",
                parked_reason="circuit open: worker_gone 3 times in a row (worker pid 7 is gone)",
                heartbeat_at=ago(400),
                finished_at=ago(300),
                updated_at=ago(300),
            )
        ],
        bucket="needs_attention",
        state="parked",
        signals=("worker_gone", "parked"),
        since=(ago(400), ago(300)),
    ),
    "parked after a stall: stalled and parked": Case(
        [task("t")],
        [
            entry(
                state="parked",
                failure_class="stalled",
                last_error="no heartbeat for 700 s",
                parked_reason="retries exhausted: 3 failed attempts (no heartbeat for 700 s)",
                heartbeat_at=ago(1000),
                finished_at=ago(300),
                updated_at=ago(300),
            )
        ],
        bucket="needs_attention",
        state="parked",
        signals=("stalled", "parked"),
        since=(ago(400), ago(300)),  # stalled 600 s after its last heartbeat; parked later
    ),
    "parked after exit 1 three times: only parked": Case(
        [task("t")],
        [
            entry(
                state="parked",
                failure_class="exit_1",
                last_error="exit code 1",
                parked_reason="circuit open: exit_1 3 times in a row (exit code 1)",
                finished_at=ago(300),
                updated_at=ago(300),
            )
        ],
        bucket="needs_attention",
        state="parked",
        signals=("parked",),
        since=(ago(300),),
    ),
    "parked while live: an earlier attempt's worker_gone is not this one's": Case(
        [task("t")],
        [
            entry(
                state="parked",
                failure_class="worker_gone",
                last_error="worker pid 7 is gone without an exit record",
                parked_reason="wrong approach",
                heartbeat_at=ago(100),
                updated_at=ago(50),
            )
        ],
        bucket="needs_attention",
        state="parked",
        signals=("parked",),
        since=(ago(50),),
    ),
    "parked without a reason": Case(
        [task("t")],
        [entry(state="parked", updated_at=ago(120))],
        bucket="needs_attention",
        state="parked",
        signals=("parked",),
        since=(ago(120),),
    ),
    "stopped without a reason": Case(
        [task("t")],
        [entry(state="stopped", finished_at=ago(50))],
        bucket="needs_attention",
        state="stopped",
        signals=("stopped",),
        since=(ago(50),),
    ),
    "stopped": Case(
        [task("t")],
        [entry(state="stopped", stop_reason="wrong approach", finished_at=ago(50))],
        bucket="needs_attention",
        state="stopped",
        signals=("stopped",),
        since=(ago(50),),
    ),
    "root task edited on the base ref": Case(
        [task("t")],
        [entry(task_blob="a" * 40, heartbeat_at=ago(5))],
        {"blobs": {"t": "b" * 40}, "edits": {"t": Edit(ago(30), "c" * 40)}},
        bucket="needs_attention",
        state="running",
        signals=("root_task_edited",),
        since=(ago(30),),  # when the edit landed on the base ref
    ),
    "root task edited, its commit unknown: since the dispatch": Case(
        [task("t")],
        [entry(task_blob="a" * 40, heartbeat_at=ago(5))],
        {"blobs": {"t": "b" * 40}},
        bucket="needs_attention",
        state="running",
        signals=("root_task_edited",),
        since=(ago(60),),
    ),
    "root task edited after its worker exited": Case(
        [task("t")],
        [entry(state="exited", exit_code=0, task_blob="a" * 40, finished_at=ago(30))],
        {"blobs": {"t": "b" * 40}, "edits": {"t": Edit(ago(20), "c" * 40)}},
        bucket="needs_attention",
        state="review",
        signals=("root_task_edited",),
        since=(ago(20),),
    ),
    "root task unchanged": Case(
        [task("t")],
        [entry(task_blob="a" * 40, heartbeat_at=ago(5))],
        {"blobs": {"t": "a" * 40}},
        bucket="active",
        state="running",
    ),
    "registry orphan": Case(
        [task("other")],
        [entry("gone", state="running", heartbeat_at=ago(5))],
        bucket="needs_attention",
        state="orphan",
        signals=("registry_orphan",),
        slug="gone",
        since=(ago(5),),
    ),
    "legacy in_progress file, no entry": Case(
        [task("t", legacy={"status": "in_progress", "claimed_by": "bot"})],
        bucket="needs_attention",
        state="legacy_in_progress",
        signals=("legacy_runtime_keys",),
        since=(None,),  # a fact of the file, not of a moment
    ),
    "legacy status alone: a claim": Case(
        [task("t", legacy={"status": "in_progress"})],
        bucket="needs_attention",
        state="legacy_in_progress",
        signals=("legacy_runtime_keys",),
        since=(None,),
    ),
    "legacy claim key alone: a claim": Case(
        [task("t", legacy={"claimed_by": "bot"})],
        bucket="needs_attention",
        state="legacy_in_progress",
        signals=("legacy_runtime_keys",),
        since=(None,),
    ),
    "legacy claim key on a task not started: no claim": Case(
        [task("t", "not_started", legacy={"claimed_by": "bot"})],
        bucket="needs_attention",
        state="not_started",
        signals=("legacy_runtime_keys",),
        since=(None,),
    ),
    "legacy runtime key that claims nothing": Case(
        [task("t", legacy={"retries": 2})],
        bucket="needs_attention",
        state="ready",
        signals=("legacy_runtime_keys",),
        since=(None,),
    ),
    "legacy key on a completed task": Case(
        [task("t", "completed", legacy={"claimed_by": "bot"})],
        bucket="done",
        state="completed",
        signals=("legacy_runtime_keys",),
        since=(None,),
    ),
    "pickup overdue": Case(
        [task("t")],
        inputs={"ready_since": {"t": ago(901)}},
        bucket="needs_attention",
        state="ready",
        signals=("pickup_overdue",),
        since=(ago(1),),  # first seen ready + pickup_overdue_seconds (900)
    ),
    "ready since a time that does not parse, no pickup wait: not overdue": Case(
        [task("t")],
        inputs={
            "ready_since": {"t": "last week"},
            "limits": Limits.from_config({"limits": {"pickup_overdue_seconds": 0}}),
        },
        bucket="ready",
        state="ready",
    ),
    "not overdue without free capacity": Case(
        [task("t")],
        inputs={"ready_since": {"t": ago(901)}, "capacity_free": False},
        bucket="ready",
        state="ready",
    ),
    "not overdue yet": Case(
        [task("t")], inputs={"ready_since": {"t": ago(899)}}, bucket="ready", state="ready"
    ),
    "ready exactly as long as the pickup limit: not overdue yet": Case(
        [task("t")], inputs={"ready_since": {"t": ago(900)}}, bucket="ready", state="ready"
    ),
    "running while its task went back to planning: the claim holds": Case(
        [task("t", "not_started")], [entry(heartbeat_at=ago(5))], bucket="active", state="running"
    ),
    "exited while a dependency was reopened: still in review": Case(
        [task("t", deps=["dep"]), task("dep")],
        [entry(state="exited", exit_code=0, finished_at=ago(60))],
        bucket="review",
        state="review",
    ),
    "parked while its task went back to planning": Case(
        [task("t", "not_started")],
        [entry(state="parked", parked_reason="needs a human", updated_at=ago(120))],
        bucket="needs_attention",
        state="parked",
        signals=("parked",),
        since=(ago(120),),
    ),
    "stopped while its task went back to planning": Case(
        [task("t", "not_started")],
        [entry(state="stopped", stop_reason="wrong approach", finished_at=ago(50))],
        bucket="needs_attention",
        state="stopped",
        signals=("stopped",),
        since=(ago(50),),
    ),
    "done": Case([task("t", "completed")], bucket="done", state="completed"),
    "cancelled": Case([task("t", "cancelled")], bucket="done", state="cancelled"),
    "done with a lingering entry": Case(
        [task("t", "completed")],
        [entry(state="exited", exit_code=0, finished_at=ago(60))],
        bucket="done",
        state="completed",
        signals=("registry_orphan",),
        since=(ago(60),),
    ),
    "cancelled with a lingering entry, updated since its claim": Case(
        [task("t", "cancelled")],
        [entry(state="stopped", finished_at=ago(50), updated_at=ago(40))],
        bucket="done",
        state="cancelled",
        signals=("registry_orphan",),
        since=(ago(40),),  # its last update, not its claim
    ),
    "released entry ignored": Case(
        [task("t")], [entry(state="released", finished_at=ago(60))], bucket="ready", state="ready"
    ),
    "unparsable heartbeat time is no crash": Case(
        [task("t")], [entry(heartbeat_at="yesterday")], bucket="active", state="running"
    ),
}


def world(case: Case) -> tuple[TaskSet, dict[str, RegistryEntry], Inputs]:
    """The classification's arguments for one row."""
    tasks = sorted(case.tasks, key=lambda t: t.path)
    return (
        TaskSet(tuple(tasks), (), ()),
        {e.slug: e for e in case.entries},
        Inputs(now=NOW, **case.inputs),
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_classification_table(case: Case) -> None:
    tasks, entries, inputs = world(case)
    rows = {c.slug: c for c in classify_all(tasks, entries, inputs)}
    got = rows[case.slug]
    assert (got.bucket, got.state) == (case.bucket, case.state)
    assert tuple(s.kind for s in got.signals) == case.signals
    assert tuple(s.since for s in got.signals) == case.since
    assert got.blocked_by == case.blocked_by
    given = {e.slug: e for e in case.entries if e.state != "released"}.get(case.slug)
    assert got.entry == given  # the row carries its entry (a released one is no claim)
    assert got.task == tasks.by_slug.get(case.slug)  # and its task (an orphan has none)
    assert got.bucket in BUCKETS and {s.kind for s in got.signals} <= set(SIGNALS)
    for signal in got.signals:
        assert signal.reason, f"{signal.kind} has no reason"


# What each row of CASES says to a human: its detail line, and each signal's reason in order.
WORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "backlog": ("", ()),
    "waiting on a dependency": ("waits for dep", ()),
    "waiting on a missing dependency": ("waits for ghost", ()),
    "waiting on two dependencies": ("waits for b, a", ()),
    "ready": ("", ()),
    "claimed, fresh": ("", ()),
    "running, with progress and a note": ("half done; note: waiting on CI", ()),
    "running, fresh heartbeat": ("", ()),
    "stalled": ("", ("no heartbeat for 601 s",)),
    "quiet exactly as long as the stall limit: not stalled yet": ("", ()),
    "claimed, never started, stalled": ("", ("no heartbeat for 3600 s",)),
    "stall limit from config": ("", ("no heartbeat for 120 s",)),
    "worker gone": ("", ("worker pid 4242 is gone without an exit record",)),
    "review": ("waiting for the merge", ()),
    "exited exactly the review grace ago: not unreconciled yet": ("waiting for the merge", ()),
    "exited, unreconciled after the grace": (
        "waiting for the merge",
        ("worker exited 0 but the completion record is not on the base ref",),
    ),
    "retry_wait (backing off)": ("attempt 1 failed (exit_1); retry at 2026-11-22T12:02:00.000000Z", ()),
    "retry due": ("retry due", ()),
    "retry due, but its task went back to planning": ("runtime record: retry_wait", ()),
    "retry due, but a dependency is not completed": ("waits for dep", ()),
    "retry due, but two dependencies are not completed": ("waits for a, b", ()),
    "changes requested after review: due, not in review again": ("retry due", ()),
    "retry due after a failed dispatch: dispatched with its signal": (
        "retry due",
        ("git worktree add failed",),
    ),
    "failed, the heartbeat decides": ("attempt 1 exited 2; the next heartbeat decides", ()),
    "dispatch failed": (
        "attempt 1 failed (dispatch_failed); retry at 2026-11-22T12:01:00.000000Z",
        ("git worktree add failed",),
    ),
    "dispatched again after a failed dispatch: that failure is over": ("", ()),
    "parked": ("", ("needs a human",)),
    "parked after failed dispatches: each its own signal": (
        "",
        ("boom", "circuit open: dispatch_failed 3 times in a row (boom)"),
    ),
    "parked after its worker vanished: worker_gone and parked": (
        "",
        (
            "worker pid 7 is gone without an exit record",
            "circuit open: worker_gone 3 times in a row (worker pid 7 is gone)",
        ),
    ),
    "parked after a stall: stalled and parked": (
        "",
        ("no heartbeat for 700 s", "retries exhausted: 3 failed attempts (no heartbeat for 700 s)"),
    ),
    "parked after exit 1 three times: only parked": (
        "",
        ("circuit open: exit_1 3 times in a row (exit code 1)",),
    ),
    "parked while live: an earlier attempt's worker_gone is not this one's": ("", ("wrong approach",)),
    "parked without a reason": ("", ("parked",)),
    "stopped without a reason": ("", ("stopped by an operator",)),
    "stopped": ("", ("wrong approach",)),
    "root task edited on the base ref": (
        "",
        ("task file changed on the base ref since dispatch (commit cccccccccccc)",),
    ),
    "root task edited, its commit unknown: since the dispatch": (
        "",
        ("task file changed on the base ref since dispatch",),
    ),
    "root task edited after its worker exited": (
        "waiting for the merge",
        ("task file changed on the base ref since dispatch (commit cccccccccccc)",),
    ),
    "root task unchanged": ("", ()),
    "registry orphan": (
        "",
        ("registry entry (running) for a task that no longer exists; run 'task release gone'",),
    ),
    "legacy in_progress file, no entry": (
        "status=in_progress, claimed_by=bot",
        ("runtime keys in frontmatter (claimed_by, status); run 'task migrate'",),
    ),
    "legacy status alone: a claim": (
        "status=in_progress",
        ("runtime keys in frontmatter (status); run 'task migrate'",),
    ),
    "legacy claim key alone: a claim": (
        "claimed_by=bot",
        ("runtime keys in frontmatter (claimed_by); run 'task migrate'",),
    ),
    "legacy claim key on a task not started: no claim": (
        "",
        ("runtime keys in frontmatter (claimed_by); run 'task migrate'",),
    ),
    "legacy runtime key that claims nothing": (
        "",
        ("runtime keys in frontmatter (retries); run 'task migrate'",),
    ),
    "legacy key on a completed task": (
        "2026-11-01",
        ("runtime keys in frontmatter (claimed_by); run 'task migrate'",),
    ),
    "pickup overdue": ("", ("ready with free capacity but not dispatched",)),
    "ready since a time that does not parse, no pickup wait: not overdue": ("", ()),
    "not overdue without free capacity": ("", ()),
    "not overdue yet": ("", ()),
    "ready exactly as long as the pickup limit: not overdue yet": ("", ()),
    "running while its task went back to planning: the claim holds": ("", ()),
    "exited while a dependency was reopened: still in review": ("waiting for the merge", ()),
    "parked while its task went back to planning": ("", ("needs a human",)),
    "stopped while its task went back to planning": ("", ("wrong approach",)),
    "done": ("2026-11-01", ()),
    "cancelled": ("", ()),
    "done with a lingering entry": (
        "2026-11-01",
        (
            "task is completed but its registry entry is still exited (lease 3); "
            "the heartbeat releases it, or run 'task release t'",
        ),
    ),
    "cancelled with a lingering entry, updated since its claim": (
        "",
        (
            "task is cancelled but its registry entry is still stopped (lease 3); "
            "the heartbeat releases it, or run 'task release t'",
        ),
    ),
    "released entry ignored": ("", ()),
    "unparsable heartbeat time is no crash": ("", ()),
}


@pytest.mark.parametrize("name", CASES)
def test_what_each_row_says_its_detail_and_each_signals_reason(name: str) -> None:
    """The words ``task status`` prints for each row of the table: a wrong or empty one is
    a human sent the wrong way."""
    case = CASES[name]
    tasks, entries, inputs = world(case)
    got = {c.slug: c for c in classify_all(tasks, entries, inputs)}[case.slug]
    assert (got.detail, tuple(s.reason for s in got.signals)) == WORDS[name]


# The rows a worker may take (THE readiness rule): ready or due, with no signal but the wait's own.
DISPATCHABLE = {
    "ready",
    "retry due",
    "changes requested after review: due, not in review again",
    "retry due after a failed dispatch: dispatched with its signal",
    "pickup overdue",
    "ready since a time that does not parse, no pickup wait: not overdue",
    "not overdue without free capacity",
    "not overdue yet",
    "ready exactly as long as the pickup limit: not overdue yet",
    "released entry ignored",
}


def test_the_readiness_rule_over_the_table() -> None:
    """Ready or retry due and no signal, or only pickup_overdue / dispatch_failed; not a
    ready task with another signal (legacy keys), nor anything else."""
    assert set(CASES) >= DISPATCHABLE
    taken = set()
    for name, case in CASES.items():
        tasks, entries, inputs = world(case)
        if dispatchable({c.slug: c for c in classify_all(tasks, entries, inputs)}[case.slug]):
            taken.add(name)
    assert taken == DISPATCHABLE


def test_every_bucket_and_signal_is_in_the_table() -> None:
    assert {case.bucket for case in CASES.values()} == set(BUCKETS)
    assert {kind for case in CASES.values() for kind in case.signals} == set(SIGNALS)


def test_released_orphan_is_not_listed_and_order_is_path_then_orphans() -> None:
    tasks = TaskSet((task("a"), task("b")), (), ())
    entries = {
        "zz": entry("zz", state="released"),
        "gone": entry("gone", state="failed"),
        "b": entry("b", heartbeat_at=ago(5)),
    }
    rows = classify_all(tasks, entries, Inputs(now=NOW))
    assert [r.slug for r in rows] == ["a", "b", "gone"]


def test_orphan_of_an_unreadable_file_says_so() -> None:
    tasks = TaskSet((), (), ("tasks/broken.md",))
    [row] = classify_all(tasks, {"broken": entry("broken")}, Inputs(now=NOW))
    assert row.signals[0].kind == "registry_orphan"
    assert row.signals[0].reason == "registry entry for a task whose file cannot be read; run 'task validate'"


def test_signals_carry_since_and_readable_reasons() -> None:
    tasks, entries, inputs = world(CASES["stalled"])
    [row] = classify_all(tasks, entries, inputs)
    assert row.signals[0].since == ago(1)  # stalled from 600 s after the last heartbeat
    assert "601 s" in row.signals[0].reason


def test_a_task_parked_after_its_worker_vanished_says_each_condition_in_its_own_words() -> None:
    tasks, entries, inputs = world(CASES["parked after its worker vanished: worker_gone and parked"])
    [row] = classify_all(tasks, entries, inputs)
    gone, parked = row.signals
    assert gone.reason == "worker pid 7 is gone without an exit record"
    assert parked.reason == "circuit open: worker_gone 3 times in a row (worker pid 7 is gone)"


def test_an_active_task_shows_its_blocker_before_its_progress() -> None:
    tasks = TaskSet((task("t"),), (), ())
    working = entry(heartbeat_at=ago(5), progress="half done")
    [row] = classify_all(tasks, {"t": working}, Inputs(now=NOW))
    assert row.detail == "half done"
    [row] = classify_all(tasks, {"t": replace(working, blocker="needs credentials")}, Inputs(now=NOW))
    assert (row.bucket, row.detail) == ("active", "blocked: needs credentials")


def test_to_dict_keys_and_counts() -> None:
    tasks, entries, inputs = world(CASES["running, fresh heartbeat"])
    rows = classify_all(tasks, entries, inputs)
    data = rows[0].to_dict()
    assert {"slug", "bucket", "state", "lease", "attempt", "signals", "blocked_by", "detail"} <= set(data)
    assert data["lease"] == 3 and data["entry"]["worker"] == "w1" and data["owner"] == "alice"
    assert counts(rows) == {bucket: int(bucket == "active") for bucket in BUCKETS}


def test_to_dict_of_a_task_row_and_of_an_orphan_row() -> None:
    """Every key of the JSON form (task status --json, the status page): a task's fields
    from its file, an orphan's owner from its entry and None for what only a file has."""
    working = entry(heartbeat_at=ago(5), progress="half done", owner="bob", attempt=2)
    gone = entry("gone", state="failed", owner="carol", exit_code=1)
    task_row, orphan_row = classify_all(
        TaskSet((task("t"),), (), ()), {"t": working, "gone": gone}, Inputs(now=NOW)
    )
    assert task_row.to_dict() == {
        "slug": "t",
        "bucket": "active",
        "state": "running",
        "lease": 3,
        "attempt": 2,
        "title": "T",
        "owner": "alice",
        "priority": "p2",
        "path": "tasks/t.md",
        "status": "ready",
        "signals": [],
        "blocked_by": [],
        "detail": "half done",
        "entry": working.to_dict(),
    }
    reason = "registry entry (failed) for a task that no longer exists; run 'task release gone'"
    assert orphan_row.to_dict() == {
        "slug": "gone",
        "bucket": "needs_attention",
        "state": "orphan",
        "lease": 3,
        "attempt": 1,
        "title": None,
        "owner": "carol",
        "priority": None,
        "path": None,
        "status": None,
        "signals": [{"kind": "registry_orphan", "reason": reason, "since": ago(60)}],
        "blocked_by": [],
        "detail": "",
        "entry": gone.to_dict(),
    }


def test_pure_same_inputs_same_answer_and_only_the_given_clock_counts() -> None:
    tasks, entries, inputs = world(CASES["stalled"])
    assert classify_all(tasks, entries, inputs) == classify_all(tasks, entries, inputs)
    earlier = Inputs(now=NOW - timedelta(seconds=600))
    [row] = classify_all(tasks, entries, earlier)
    assert row.bucket == "active"  # the same entry, judged at another (given) time


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, Limits()),
        ({"limits": {"stall_after_seconds": 60, "pickup_overdue_seconds": 0}}, Limits(60.0, 3600.0, 0.0)),
        ({"limits": {"review_grace_seconds": 1.5}}, Limits(review_grace=1.5)),
    ],
)
def test_limits_from_config(raw: dict[str, Any], expected: Limits) -> None:
    assert Limits.from_config(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"limits": {"stall_after_seconds": "10m"}}, "stall_after_seconds must be a number of seconds"),
        ({"limits": {"review_grace_seconds": -1}}, "e.g. review_grace_seconds = 3600"),
        ({"limits": {"pickup_overdue_seconds": True}}, "not True"),
        ({"limits": 5}, "[limits] must be a table"),
    ],
)
def test_bad_limits_are_config_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Limits.from_config(raw)
    assert message in str(caught.value)


def test_a_failure_waiting_for_the_heartbeat_says_how_the_attempt_ended() -> None:
    tasks = TaskSet((task("t"),), (), ())
    exited = entry(state="failed", exit_code=3, failure_class="exit_3")
    [row] = classify_all(tasks, {"t": exited}, Inputs(now=NOW))
    assert row.detail == "attempt 1 exited 3; the next heartbeat decides"
    gone = entry(state="failed", failure_class="dispatch_failed")  # no exit: it never ran
    [row] = classify_all(tasks, {"t": gone}, Inputs(now=NOW))
    assert row.detail == "attempt 1 failed (dispatch_failed); the next heartbeat decides"


def retry_waiting(registry: JsonRegistry, clock: ManualClock, next_attempt_at: str | None) -> None:
    """Registry entry ``t``: its first attempt failed, its retry set for ``next_attempt_at``."""
    lease = registry.claim("t", worker="w1").lease
    registry.finish("t", lease, 1)
    registry.schedule_retry("t", at=clock.now)

    def backoff(entry: RegistryEntry, _: Snapshot) -> Change:
        return Change("t", replace(entry, next_attempt_at=next_attempt_at), None, {})

    registry.update("t", backoff)


@pytest.mark.parametrize(
    ("offset", "due"),
    [(-1, False), (0, True), (1, True)],
    ids=["a second before its time", "exactly at its time", "a second after"],
)
def test_a_retry_is_due_from_its_time_on_for_the_classification_and_the_claim_alike(
    tmp_path: Path, clock: ManualClock, offset: int, due: bool
) -> None:
    """One rule (lifecycle.retry_due) says when a backed-off task may run again: the
    classification calls it ready exactly when the claim takes it."""
    registry = JsonRegistry(tmp_path / "registry", clock=clock, actor=TEST_ACTOR)
    retry_waiting(registry, clock, format_time(clock.now + timedelta(seconds=60)))
    clock.advance(seconds=60 + offset)
    [row] = classify_all(TaskSet((task("t"),), (), ()), registry.entries(), Inputs(now=clock.now))
    if due:
        assert (row.bucket, row.state, dispatchable(row)) == ("ready", "retry_due", True)
        assert registry.claim("t", worker="w2").attempt == 2
    else:
        assert (row.bucket, row.state, dispatchable(row)) == ("waiting", "retry_wait", False)
        assert row.detail == "attempt 1 failed (exit_1); retry at 2025-03-01T12:01:00.000000Z"
        with pytest.raises(ConflictError) as refused:
            registry.claim("t", worker="w2")
        assert str(refused.value).startswith("'t' is backing off until 2025-03-01T12:01:00.000000Z;")


@pytest.mark.parametrize("next_attempt_at", ["after lunch", None], ids=["unparsable", "missing"])
def test_a_retry_time_that_does_not_parse_or_is_missing_is_due_for_the_classification_and_the_claim(
    tmp_path: Path, clock: ManualClock, next_attempt_at: str | None
) -> None:
    """A hand-edited next_attempt_at: the task is ready and the claim takes it (no crash,
    no task stuck for ever)."""
    registry = JsonRegistry(tmp_path / "registry", clock=clock, actor=TEST_ACTOR)
    retry_waiting(registry, clock, next_attempt_at)
    [row] = classify_all(TaskSet((task("t"),), (), ()), registry.entries(), Inputs(now=clock.now))
    assert (row.bucket, row.state, dispatchable(row)) == ("ready", "retry_due", True)
    assert registry.claim("t", worker="w2").attempt == 2
