"""Effective state: ONE pure function of (task, registry entry, dependencies, clock).

``task status``, the heartbeat and the status page all call ``classify_all``;
none of them re-derives state. Nothing here reads files, processes or clocks:
whatever is impure (which workers are dead, blob ids at the base ref, the
commits that edited dispatched tasks, the time) comes in as an argument.

Every signal is one condition, and its ``since`` is the moment that condition
became true: a stall at the last heartbeat plus the stall limit, an unreconciled
exit at the exit plus the review grace, an edit when its commit landed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from .config import Limits
from .plan import query
from .plan.source import TaskSet
from .plan.taskfile import DONE_STATUSES, Task
from .registry.lifecycle import retry_due
from .registry.records import LIVE_STATES, RegistryEntry, format_time, parse_time
from .slugs import slug_of

BUCKETS = ("backlog", "waiting", "ready", "active", "review", "needs_attention", "done")
SIGNALS = (
    "dispatch_failed",
    "stalled",
    "worker_gone",
    "pickup_overdue",
    "exited_unreconciled",
    "root_task_edited",
    "registry_orphan",
    "legacy_runtime_keys",
    "parked",
    "stopped",
)
# Failure classes that are signals too: a task parked after one carries that signal and ``parked``.
FAILURE_SIGNALS = ("worker_gone", "stalled", "dispatch_failed")
# A ready task with one of these signals is still dispatched: the signal is about the wait.
DISPATCHABLE_SIGNALS = frozenset({"pickup_overdue", "dispatch_failed"})
DISPATCHABLE_STATES = frozenset({"ready", "retry_due"})
# Frontmatter keys (besides an in_progress-like status) that say an older tool claimed the task.
LEGACY_CLAIM_KEYS = ("claimed_by", "claimed_at", "started_at", "worker", "claim")


class Signal(NamedTuple):
    """Something a human should look at: what, why, and since when (the moment it became true).

    One condition, one kind: a task parked after its worker vanished carries
    ``worker_gone`` and ``parked``, each with its own reason and ``since``.
    """

    kind: str
    reason: str
    since: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "since": self.since}


class Classification(NamedTuple):
    """The effective state of one task (or of one orphaned registry entry).

    A NamedTuple, not a frozen dataclass: a cycle makes one per task (50,000), and a
    tuple is built in a quarter of the time; it is as immutable and compares alike.
    """

    slug: str
    bucket: str
    state: str  # finer than the bucket: e.g. running, retry_wait, parked, legacy_in_progress
    task: Task | None
    entry: RegistryEntry | None
    signals: tuple[Signal, ...] = ()
    blocked_by: tuple[str, ...] = ()  # dependencies not completed
    detail: str = ""  # one human line: why it is in this bucket

    @property
    def owner(self) -> str | None:
        """The task's owner, else the registry entry's (an orphaned entry has only that)."""
        return (self.task.owner if self.task else None) or (self.entry.owner if self.entry else None)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: slug, bucket, state, lease, attempt, signals, blocked_by, detail, task, entry."""
        entry = self.entry
        return {
            "slug": self.slug,
            "bucket": self.bucket,
            "state": self.state,
            "lease": entry.lease if entry else None,
            "attempt": entry.attempt if entry else None,
            "title": self.task.title if self.task else None,
            "owner": self.owner,
            "priority": self.task.priority if self.task else None,
            "path": self.task.path if self.task else None,
            "status": self.task.status if self.task else None,
            "signals": [signal.to_dict() for signal in self.signals],
            "blocked_by": list(self.blocked_by),
            "detail": self.detail,
            "entry": entry.to_dict() if entry else None,
        }


class Edit(NamedTuple):
    """The commit on the base ref that changed a dispatched task's file, and when it landed."""

    at: str  # its commit time, as a registry time string
    commit: str


@dataclass(frozen=True)
class Inputs:
    """The impure facts the caller gathered, so classification can stay pure."""

    now: datetime
    limits: Limits = field(default_factory=Limits)
    dead_workers: frozenset[str] = frozenset()  # slugs whose recorded worker process is gone
    blobs: Mapping[str, str] = field(default_factory=dict)  # slug -> blob at the base ref (entries only)
    ready_since: Mapping[str, str] = field(default_factory=dict)  # slug -> first seen ready
    capacity_free: bool = True
    edits: Mapping[str, Edit] = field(default_factory=dict)  # slug -> the edit behind root_task_edited


def classify_all(
    tasks: TaskSet, entries: Mapping[str, RegistryEntry], inputs: Inputs
) -> list[Classification]:
    """Every task in path order, then registry entries whose task is gone."""
    result: list[Classification] = []
    add, entry_of = result.append, entries.get
    for task in tasks.tasks:
        entry = entry_of(task.slug)
        if entry is None and not task.legacy:
            add(_plain(task, tasks, inputs))  # most tasks: no runtime record, nothing to check
        else:
            add(classify(task, entry, tasks, inputs))
    unreadable = {slug_of(path) for path in tasks.skipped}
    for slug, entry in sorted(entries.items()):
        if slug not in tasks.by_slug and entry.state != "released":
            result.append(_orphan(slug, entry, slug in unreadable))
    return result


def classify(task: Task, entry: RegistryEntry | None, tasks: TaskSet, inputs: Inputs) -> Classification:
    """The effective state of one task; see the bucket table in ARCHITECTURE.md.

    Any signal moves a task to needs_attention, except a done one: its durable
    record is final, so it stays done and carries the signal.
    """
    if entry is not None and entry.state == "released":
        entry = None
    base = _base(task, entry, tasks, inputs)
    extra = _common_signals(task, entry, inputs) if entry is not None or task.legacy else ()
    if not extra and (not base.signals or base.bucket in ("done", "needs_attention")):
        return base  # the common case: no copy (50,000 tasks per cycle)
    signals = (*base.signals, *extra)
    bucket = base.bucket if base.bucket == "done" else "needs_attention"
    return base._replace(bucket=bucket, signals=signals)


def _base(task: Task, entry: RegistryEntry | None, tasks: TaskSet, inputs: Inputs) -> Classification:
    if task.done:
        return _done(task, entry)
    if entry is not None and (entry.is_live or entry.state in ("exited", "parked", "stopped")):
        return _from_entry(task, entry, inputs)  # runtime state that holds whatever the plan says
    if entry is None and legacy_claim(task):
        return _legacy(task)
    if task.status == "not_started":
        detail = f"runtime record: {entry.state}" if entry else ""
        return Classification(task.slug, "backlog", "not_started", task, entry, detail=detail)
    blocked = query.blocked_by(task, tasks)
    if blocked:
        return Classification(
            task.slug,
            "waiting",
            "waiting",
            task,
            entry,
            blocked_by=blocked,
            detail="waits for " + ", ".join(blocked),
        )
    if entry is not None:
        return _from_entry(task, entry, inputs)  # retry_wait or failed, its gates met
    return _ready(task, inputs)


def _plain(task: Task, tasks: TaskSet, inputs: Inputs) -> Classification:
    """``classify`` of a task without a registry entry or legacy keys: only the plan and the
    pickup wait can apply, so the row is built straight from the status (most of a cycle)."""
    status = task.status
    if status in DONE_STATUSES:
        return _row(Classification, (task.slug, "done", status, task, None, (), (), task.completed_at or ""))
    if status == "not_started":
        return _row(Classification, (task.slug, "backlog", "not_started", task, None, (), (), ""))
    if task.depends_on:
        blocked = query.blocked_by(task, tasks)
        if blocked:
            detail = "waits for " + ", ".join(blocked)
            return _row(Classification, (task.slug, "waiting", "waiting", task, None, (), blocked, detail))
    ready = _ready(task, inputs)
    return ready._replace(bucket="needs_attention") if ready.signals else ready  # as ``classify``


# A row from its eight fields in order, without the NamedTuple's argument handling.
_row = tuple.__new__


def _done(task: Task, entry: RegistryEntry | None) -> Classification:
    signals: tuple[Signal, ...] = ()
    if entry is not None:
        reason = (
            f"task is {task.status} but its registry entry is still {entry.state} "
            f"(lease {entry.lease}); the heartbeat releases it, or run 'task release {task.slug}'"
        )
        signals = (Signal("registry_orphan", reason, entry.updated_at or entry.claimed_at),)
    detail = task.completed_at or ""
    return Classification(task.slug, "done", task.status, task, entry, signals, detail=detail)


def legacy_claim(task: Task) -> bool:
    """True when frontmatter keys describe a claim an older tool made (e.g. status: in_progress)."""
    legacy = task.legacy
    if not legacy or task.status != "ready":
        return False
    return "status" in legacy or any(key in legacy for key in LEGACY_CLAIM_KEYS)


def _ready(task: Task, inputs: Inputs) -> Classification:
    since = inputs.ready_since.get(task.slug)
    signals: tuple[Signal, ...] = ()
    wait = inputs.limits.pickup_after
    if since and inputs.capacity_free and _age(since, inputs.now) > wait:
        signals = (
            Signal("pickup_overdue", "ready with free capacity but not dispatched", _after(since, wait)),
        )
    return _row(Classification, (task.slug, "ready", "ready", task, None, signals, (), ""))


def _from_entry(task: Task, entry: RegistryEntry, inputs: Inputs) -> Classification:
    slug, state = task.slug, entry.state
    if state in LIVE_STATES:
        return _live(task, entry, inputs)
    if state == "exited" and entry.exit_code == 0:
        return _review(task, entry, inputs)
    if state == "retry_wait":
        if not retry_due(entry, inputs.now):  # the claim's own rule: both say "due" alike
            when = entry.next_attempt_at
            detail = f"attempt {entry.attempt} failed ({entry.failure_class}); retry at {when}"
            return Classification(slug, "waiting", "retry_wait", task, entry, detail=detail)
        return Classification(slug, "ready", "retry_due", task, entry, detail="retry due")
    if state == "parked":
        since = entry.updated_at or entry.finished_at  # when it was parked (or last noted on)
        parked = Signal("parked", entry.parked_reason or "parked", since)
        failure = _failure(entry, inputs)
        signals = (failure, parked) if failure else (parked,)
        return Classification(slug, "needs_attention", "parked", task, entry, signals)
    if state == "stopped":
        signal = Signal("stopped", entry.stop_reason or "stopped by an operator", entry.finished_at)
        return Classification(slug, "needs_attention", "stopped", task, entry, (signal,))
    # failed or exited non-zero without a decision yet: the next heartbeat schedules it.
    ended = f"exited {entry.exit_code}" if entry.exit_code is not None else f"failed ({entry.failure_class})"
    detail = f"attempt {entry.attempt} {ended}; the next heartbeat decides"
    return Classification(slug, "waiting", state, task, entry, detail=detail)


def _live(task: Task, entry: RegistryEntry, inputs: Inputs) -> Classification:
    signals = []
    last = _last_sign(entry)
    if task.slug in inputs.dead_workers:
        reason = f"worker pid {entry.pid} is gone without an exit record"
        signals.append(Signal("worker_gone", reason, last))
    quiet = _age(last, inputs.now) if last else 0.0
    if last and quiet > inputs.limits.stall_after:
        signals.append(
            Signal("stalled", f"no heartbeat for {int(quiet)} s", _after(last, inputs.limits.stall_after))
        )
    said = [entry.progress or "", f"note: {entry.note}" if entry.note else ""]  # a note never hides progress
    detail = f"blocked: {entry.blocker}" if entry.blocker else "; ".join(part for part in said if part)
    return Classification(task.slug, "active", entry.state, task, entry, tuple(signals), detail=detail)


def _review(task: Task, entry: RegistryEntry, inputs: Inputs) -> Classification:
    signals: tuple[Signal, ...] = ()
    finished = entry.finished_at
    grace = inputs.limits.review_grace
    if finished and _age(finished, inputs.now) > grace:
        reason = "worker exited 0 but the completion record is not on the base ref"
        signals = (Signal("exited_unreconciled", reason, _after(finished, grace)),)
    return Classification(task.slug, "review", "review", task, entry, signals, detail="waiting for the merge")


def _legacy(task: Task) -> Classification:
    keys = ", ".join(f"{k}={v}" for k, v in task.legacy.items())
    return Classification(task.slug, "needs_attention", "legacy_in_progress", task, None, detail=keys)


def _common_signals(task: Task, entry: RegistryEntry | None, inputs: Inputs) -> list[Signal]:
    signals = []
    if task.legacy:
        keys = ", ".join(sorted(task.legacy))
        signals.append(
            Signal("legacy_runtime_keys", f"runtime keys in frontmatter ({keys}); run 'task migrate'")
        )
    if entry is None or task.done:
        return signals
    if root_task_edited(task, entry, inputs.blobs.get(task.slug)):
        signals.append(_edited(entry, inputs.edits.get(task.slug)))
    # A parked entry's failure signal comes with its parked signal (_from_entry).
    if entry.last_error and entry.failure_class == "dispatch_failed" and entry.state != "parked":
        failure = _failure(entry, inputs)
        if failure:
            signals.append(failure)
    return signals


def root_task_edited(task: Task, entry: RegistryEntry | None, blob: str | None) -> bool:
    """True when the task's file at the base ref (``blob``) is not the one its live or exited
    attempt was dispatched with: the one rule, also for which edits ``status`` looks up in git."""
    return bool(
        entry is not None
        and not task.done
        and entry.task_blob
        and blob
        and blob != entry.task_blob
        and entry.state in (*LIVE_STATES, "exited")
    )


def _edited(entry: RegistryEntry, edit: Edit | None) -> Signal:
    """Since the commit that changed the file landed on the base ref; when that commit is not
    known (no history to read), since the dispatch, the earliest it can have happened after."""
    if edit is None:
        return Signal(
            "root_task_edited", "task file changed on the base ref since dispatch", entry.claimed_at
        )
    reason = f"task file changed on the base ref since dispatch (commit {edit.commit[:12]})"
    return Signal("root_task_edited", reason, edit.at)


def _failure(entry: RegistryEntry, inputs: Inputs) -> Signal | None:
    """The signal the class of the attempt that ended stands for (worker_gone, stalled,
    dispatch_failed), dated as it was while the attempt was live; None for any other class,
    and while a later attempt is live (its claim cleared ``finished_at``)."""
    kind, last, ended = entry.failure_class, _last_sign(entry), entry.finished_at
    if kind is None or kind not in FAILURE_SIGNALS or not ended:
        return None
    since: str | None = last
    if kind == "dispatch_failed":
        since = ended
    elif kind == "stalled" and last:
        since = _after(last, inputs.limits.stall_after)
    return Signal(kind, entry.last_error or kind, since)


def _last_sign(entry: RegistryEntry) -> str | None:
    """The last time the attempt's worker was known alive."""
    return entry.heartbeat_at or entry.started_at or entry.claimed_at


def _orphan(slug: str, entry: RegistryEntry, unreadable: bool) -> Classification:
    reason = (
        "registry entry for a task whose file cannot be read; run 'task validate'"
        if unreadable
        else f"registry entry ({entry.state}) for a task that no longer exists; run 'task release {slug}'"
    )
    signal = Signal("registry_orphan", reason, entry.heartbeat_at or entry.claimed_at)
    return Classification(slug, "needs_attention", "orphan", None, entry, (signal,))


def _after(stamp: str, seconds: float) -> str:
    """The registry time ``seconds`` after ``stamp`` (``stamp`` itself when it does not parse)."""
    try:
        return format_time(parse_time(stamp) + timedelta(seconds=seconds))
    except (TypeError, ValueError):
        return stamp


def _age(stamp: str, now: datetime) -> float:
    """Seconds from ``stamp`` (ISO-8601) to ``now``; negative when it is in the future.

    A stamp that does not parse (a hand-edited file) counts as 0: no signal is
    better than a status command that crashes.
    """
    try:
        return (now - parse_time(stamp)) / timedelta(seconds=1)
    except (TypeError, ValueError):
        return 0.0


def dispatchable(c: Classification) -> bool:
    """THE readiness rule: a worker may take this task now (``task next``, claims, the heartbeat)."""
    if c.state not in DISPATCHABLE_STATES:
        return False
    return not c.signals or all(s.kind in DISPATCHABLE_SIGNALS for s in c.signals)


def counts(classes: Iterable[Classification]) -> dict[str, int]:
    """Tasks per bucket, every bucket present."""
    tally = Counter(c.bucket for c in classes)
    return {bucket: tally.get(bucket, 0) for bucket in BUCKETS}
