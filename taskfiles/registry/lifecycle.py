"""The entry state machine, as pure functions from a snapshot to a plan.

Every store runs these same functions inside its own transaction, so the rules
(fencing, which state may follow which) live once, above any storage::

    (none) | released | retry_wait (due) --claim--> claimed --start--> running
    claimed | running --finish 0--> exited        --finish !=0 | fail--> failed
    claimed | running --stop--> stopped
    failed --schedule_retry--> retry_wait (at a later time: backoff)
    failed | parked | stopped | exited | retry_wait --retry--> retry_wait (due now)
    exited --request_changes--> retry_wait (due now)
    any but released/parked --park--> parked --unpark--> retry_wait (due now)
    any --release--> released
    any but claimed/running --prune--> (removed; the lease history stays)

A lease is issued only by claim, as one more than any lease the slug ever had;
leaving claimed/running retires it. Runtime facts (note, progress, blocker,
evidence, artifact) change no state; given a lease they are fenced like a
heartbeat, without one they are an operator's remark. A task with no entry takes
them too, as events alone (``EventOnly``): nothing makes an entry but a claim.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..errors import ConflictError, StaleLeaseError, UsageError
from ..slugs import check_slug
from .records import LIVE_STATES, Evidence, Instructions, RegistryEntry, format_time, parse_time
from .transaction import Change, EventOnly, Plan, Snapshot

MAX_LISTED = 100  # evidence/artifacts kept on an entry; the event log keeps every one
MAX_INSTRUCTIONS = 16_000  # characters: what a prompt can carry without drowning the task itself


def _one(entry: RegistryEntry, event: str | None, **details: Any) -> Plan[RegistryEntry]:
    kept = {k: v for k, v in details.items() if v is not None}
    return Plan((Change(entry.slug, entry, event, kept),), entry)


# -- fencing -----------------------------------------------------------------------------------


def fenced(s: Snapshot, slug: str, lease: int) -> RegistryEntry:
    """The live entry ``lease`` still holds; StaleLeaseError when it was superseded."""
    entry = s.get(slug)
    current = s.last_lease(slug)
    if lease < current:
        raise StaleLeaseError(
            f"lease {lease} for '{slug}' was superseded by lease {current}; this worker must stop"
        )
    if lease > current:
        raise UsageError(f"lease {lease} for '{slug}' was never issued; the current lease is {current}")
    if entry.state not in LIVE_STATES:
        why = entry.stop_reason or entry.parked_reason
        raise StaleLeaseError(
            f"lease {lease} for '{slug}' is over: the task is {entry.state}"
            f"{f' ({why})' if why else ''}; this worker must stop"
        )
    return entry


def _same_lease(s: Snapshot, slug: str, lease: int) -> None:
    """Refuse a decision about an attempt made under ``lease`` once the task was claimed
    again (StaleLeaseError), or when ``lease`` was never issued (UsageError): the same
    answers ``fenced`` gives, for an entry that need not be live any more."""
    current = s.last_lease(slug)
    if lease < current:
        raise StaleLeaseError(f"lease {lease} for '{slug}' was superseded by lease {current}")
    if lease > current:
        raise UsageError(f"lease {lease} for '{slug}' was never issued; the current lease is {current}")


def retry_due(entry: RegistryEntry, now: datetime) -> bool:
    """THE rule for when a ``retry_wait`` entry may be claimed again: from ``next_attempt_at``
    on (exactly then included); at once without one, or with one that does not parse (a
    hand-edited registry: a claim beats a task stuck for ever). ``claim_refusal`` and
    ``state``'s classification both ask this, so they cannot disagree at the boundary."""
    due = entry.next_attempt_at
    if not due:
        return True
    try:
        return parse_time(due) <= now
    except ValueError:
        return True


def claim_refusal(entry: RegistryEntry | None, now: datetime) -> str | None:
    """Why ``entry`` cannot be claimed at ``now``, or None when it can."""
    if entry is None or entry.state == "released":
        return None
    slug, state = entry.slug, entry.state
    if state == "retry_wait":
        if retry_due(entry, now):
            return None
        return f"'{slug}' is backing off until {entry.next_attempt_at}; run 'task retry {slug}' to retry now"
    if state in LIVE_STATES:
        return (
            f"'{slug}' has a live claim (lease {entry.lease}, {state} by {entry.worker} "
            f"since {entry.claimed_at}); wait for it or run 'task stop {slug}'"
        )
    hints = {
        "exited": f"its worker exited 0 and the completion is not on the base branch yet; "
        f"run 'task retry {slug}' to run it again or 'task release {slug}'",
        "failed": f"it failed ({entry.last_error}); run 'task retry {slug}'",
        "parked": f"it is parked ({entry.parked_reason}); run 'task unpark {slug}'",
        "stopped": f"it was stopped ({entry.stop_reason}); run 'task retry {slug}'",
    }
    return f"'{slug}' cannot be claimed: {hints[state]}"


# -- the worker's side -------------------------------------------------------------------------


def claim(
    s: Snapshot,
    slug: str,
    *,
    worker: str,
    owner: str | None = None,
    max_attempts: int | None = None,
    task_blob: str | None = None,
) -> Plan[RegistryEntry]:
    """Claim ``slug`` with a new lease; ConflictError when it cannot be claimed."""
    entry = s.entries.get(check_slug(slug))
    refusal = claim_refusal(entry, s.now)
    if refusal:
        raise ConflictError(refusal)
    new = _claimed(s, slug, entry, worker, owner, max_attempts, task_blob)
    given = new.instructions.to_dict() if new.instructions else None
    return _one(new, "task.claimed", worker=worker, owner=new.owner, attempt=new.attempt, instructions=given)


def claim_first(
    s: Snapshot,
    candidates: Sequence[str],
    *,
    worker: str,
    owner: str | None = None,
    max_attempts: int | None = None,
    task_blobs: Mapping[str, str] | None = None,
) -> Plan[RegistryEntry | None]:
    """Claim the first candidate that can be claimed; a plan with no change when none can."""
    for slug in candidates:
        if claim_refusal(s.entries.get(check_slug(slug)), s.now) is None:
            blob = (task_blobs or {}).get(slug)
            plan = claim(s, slug, worker=worker, owner=owner, max_attempts=max_attempts, task_blob=blob)
            return Plan(plan.changes, plan.result)
    return Plan((), None)


def _claimed(
    s: Snapshot,
    slug: str,
    prev: RegistryEntry | None,
    worker: str,
    owner: str | None,
    max_attempts: int | None,
    task_blob: str | None,
) -> RegistryEntry:
    if max_attempts is not None and max_attempts < 1:
        raise UsageError(f"max_attempts must be at least 1, not {max_attempts}")
    base = prev if prev is not None and prev.state == "retry_wait" else None
    carried = RegistryEntry(slug, "claimed", 0, total_cost_usd=prev.total_cost_usd if prev else 0.0)
    attempt = prev.attempt + 1 if prev else 1
    given = base.instructions if base else None
    return replace(
        _reset_attempt(base or carried),
        state="claimed",
        lease=s.last_lease(slug) + 1,
        attempt=attempt,
        # Instructions given for this attempt come with it; older ones are history now.
        instructions=given if given is not None and given.attempt == attempt else None,
        max_attempts=max_attempts or (prev.max_attempts if prev else 3),
        owner=owner or (prev.owner if prev else None),
        worker=worker,
        host=s.actor.host,
        claimed_at=s.stamp,
        updated_at=s.stamp,
        next_attempt_at=None,
        task_blob=task_blob or (prev.task_blob if prev else None),
    )


def _reset_attempt(entry: RegistryEntry) -> RegistryEntry:
    return replace(
        entry,
        pid=None,
        pid_start_time=None,
        started_at=None,
        heartbeat_at=None,
        heartbeats=0,
        finished_at=None,
        exit_code=None,
        cost_usd=0.0,
        progress_percent=None,
        stop_reason=None,
    )


def start(
    s: Snapshot,
    slug: str,
    lease: int,
    *,
    pid: int | None = None,
    pid_start_time: int | None = None,
    worktree: str | None = None,
    branch: str | None = None,
    agent: str | None = None,
) -> Plan[RegistryEntry]:
    """Record that the worker holding ``lease`` started (``agent``: the profile it runs, for the
    event)."""
    entry = fenced(s, slug, lease)
    if entry.state != "claimed":
        raise ConflictError(f"'{slug}' was already started at {entry.started_at}; a lease runs one worker")
    new = replace(
        entry,
        state="running",
        started_at=s.stamp,
        heartbeat_at=s.stamp,
        updated_at=s.stamp,
        pid=pid,
        pid_start_time=pid_start_time,
        worktree=worktree or entry.worktree,
        branch=branch or entry.branch,
        fresh=False,
    )
    return _one(new, "task.started", pid=pid, worktree=new.worktree, branch=new.branch, agent=agent)


def heartbeat(
    s: Snapshot, slug: str, lease: int, *, note: str | None = None, cost_usd: float | None = None
) -> Plan[RegistryEntry]:
    """Record that the worker holding ``lease`` is alive; cost adds to the attempt and the task.

    Only the first heartbeat of an attempt and heartbeats with a note become events:
    the rest would drown the log, and ``heartbeat_at`` on the entry says all they say.
    """
    entry = fenced(s, slug, lease)
    cost = _cost(cost_usd)
    new = replace(
        entry,
        heartbeat_at=s.stamp,
        updated_at=s.stamp,
        heartbeats=entry.heartbeats + 1,
        progress=entry.progress if note is None else note,
        cost_usd=round(entry.cost_usd + cost, 6),
        total_cost_usd=round(entry.total_cost_usd + cost, 6),
    )
    event = "task.heartbeat" if note is not None or new.heartbeats == 1 else None
    return _one(new, event, note=note, cost_usd=cost_usd)


def _cost(cost_usd: float | None) -> float:
    if cost_usd is None:
        return 0.0
    if not isinstance(cost_usd, int | float) or not 0 <= cost_usd < float("inf"):
        raise UsageError(f"cost_usd must be a non-negative number of dollars, not {cost_usd!r}")
    return float(cost_usd)


def finish(
    s: Snapshot,
    slug: str,
    lease: int,
    exit_code: int,
    *,
    error: str | None = None,
    failure_class: str | None = None,
) -> Plan[RegistryEntry]:
    """Record the worker's exit: 0 is ``exited``, anything else ``failed``."""
    entry = fenced(s, slug, lease)
    if exit_code == 0:
        new = replace(
            entry,
            state="exited",
            last_error=None,
            failure_class=None,
            consecutive_failures=0,
            failure_streak=0,
        )
    else:
        cls = failure_class or f"exit_{exit_code}"
        new = _failed(entry, error or f"exit code {exit_code}", cls)
    new = replace(new, exit_code=exit_code, finished_at=s.stamp, updated_at=s.stamp)
    return _one(
        new,
        "task.exited",
        exit_code=exit_code,
        error=new.last_error,
        failure_class=new.failure_class,
        **_run(new),
    )


def fail(s: Snapshot, slug: str, lease: int, *, failure_class: str, error: str) -> Plan[RegistryEntry]:
    """Mark a live attempt failed without an exit record (worker gone, stalled)."""
    entry = fenced(s, slug, lease)
    new = replace(_failed(entry, error, failure_class), finished_at=s.stamp, updated_at=s.stamp)
    return _one(new, "task.failed", failure_class=failure_class, error=error, **_run(new))


def _run(entry: RegistryEntry) -> dict[str, Any]:
    """What an attempt's end event says of the run, so metrics need no entry (and keep it
    once gc has removed the entry): when it started (or was claimed), what it cost, which
    attempt it was, and whose it was (owner and worker, for metrics grouped by them)."""
    return {
        "started_at": entry.started_at or entry.claimed_at,
        "cost_usd": entry.cost_usd,
        "attempt": entry.attempt,
        "owner": entry.owner,
        "worker": entry.worker,
    }


def _failed(entry: RegistryEntry, error: str, failure_class: str) -> RegistryEntry:
    return replace(
        entry,
        state="failed",
        last_error=error,
        failure_class=failure_class,
        consecutive_failures=entry.consecutive_failures + 1,
        failure_streak=entry.failure_streak + 1 if entry.failure_class == failure_class else 1,
    )


def release(s: Snapshot, slug: str, *, reason: str | None = None) -> Plan[RegistryEntry]:
    """End the claim for good (retiring its lease); a released entry stays as it is."""
    entry = s.get(slug)
    if entry.state == "released":
        return Plan((), entry)
    new = replace(entry, state="released", updated_at=s.stamp, finished_at=entry.finished_at or s.stamp)
    return _one(new, "task.released", reason=reason, previous_state=entry.state)


# -- runtime facts -----------------------------------------------------------------------------


def _fact(
    s: Snapshot,
    slug: str,
    lease: int | None,
    event: str,
    edit: Callable[[RegistryEntry], RegistryEntry],
    **details: Any,
) -> Plan[RegistryEntry | None]:
    """Record a runtime fact: on the entry (``edit``) when there is one, fenced by ``lease``
    when given; as an event alone when the task has no entry and no lease was given (an
    entry needs a lease, and only a claim issues one). Whether the slug names a task is
    the caller's to check: the registry does not read task files."""
    kept = {k: v for k, v in details.items() if v is not None}
    entry = fenced(s, slug, lease) if lease is not None else s.entries.get(check_slug(slug))
    if entry is None:
        return Plan((EventOnly(slug, event, kept),), None)
    new = replace(edit(entry), updated_at=s.stamp)
    return Plan((Change(slug, new, event, kept),), new)


def note(s: Snapshot, slug: str, text: str, *, lease: int | None = None) -> Plan[RegistryEntry | None]:
    """Record a note; it becomes the entry's ``note`` (the last one; ``progress`` stays the
    worker's own message)."""
    return _fact(s, slug, lease, "task.note", lambda e: replace(e, note=text), text=text)


def progress(
    s: Snapshot, slug: str, percent: int, message: str | None = None, *, lease: int | None = None
) -> Plan[RegistryEntry | None]:
    """Record how far along the work is (0-100), with an optional message."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise UsageError(f"progress must be a whole percentage from 0 to 100, not {percent!r}")

    def edit(entry: RegistryEntry) -> RegistryEntry:
        return replace(entry, progress_percent=percent, progress=message or entry.progress)

    return _fact(s, slug, lease, "task.progress", edit, percent=percent, message=message)


def blocker(
    s: Snapshot, slug: str, text: str | None, *, lease: int | None = None
) -> Plan[RegistryEntry | None]:
    """Record what blocks the work, or clear it with ``text=None``."""
    return _fact(
        s,
        slug,
        lease,
        "task.blocker",
        lambda e: replace(e, blocker=text or None),
        text=text or None,
        cleared=True if not text else None,
    )


def evidence(
    s: Snapshot,
    slug: str,
    command: str,
    exit_code: int,
    summary: str | None = None,
    *,
    lease: int | None = None,
) -> Plan[RegistryEntry | None]:
    """Record a command run as evidence, its exit code and a summary."""
    item = Evidence(command, exit_code, summary, s.stamp, s.actor.who)

    def edit(entry: RegistryEntry) -> RegistryEntry:
        return replace(entry, evidence=(*entry.evidence, item)[-MAX_LISTED:])

    return _fact(s, slug, lease, "task.evidence", edit, command=command, exit_code=exit_code, summary=summary)


def artifact(s: Snapshot, slug: str, ref: str, *, lease: int | None = None) -> Plan[RegistryEntry | None]:
    """Record a path or URL the work produced (each one once)."""

    def edit(entry: RegistryEntry) -> RegistryEntry:
        kept = tuple(a for a in entry.artifacts if a != ref)
        return replace(entry, artifacts=(*kept, ref)[-MAX_LISTED:])

    return _fact(s, slug, lease, "task.artifact", edit, ref=ref)


def chain(s: Snapshot, steps: Sequence[Callable[[Snapshot], Plan[Any]]]) -> Plan[Any]:
    """Several mutations as one transaction (``task mcp``'s ``report``: a heartbeat and its
    facts): each step sees the entries the steps before it left, a refusal in any step
    writes nothing, and the result is the last step's."""
    changes: list[Change | EventOnly] = []
    result: Any = None
    for step in steps:
        plan = step(s)
        changes.extend(plan.changes)
        result = plan.result
        s = s.after(plan.changes)
    return Plan(tuple(changes), result)


# -- operator actions and the reconciler -------------------------------------------------------


def cancelled(s: Snapshot, slug: str, *, reason: str | None = None) -> Plan[RegistryEntry | None]:
    """Record that the task was cancelled in its file (``task cancel``): an event alone,
    with or without an entry (ending a claim is ``stop`` and ``release``, each its own event)."""
    details = {"reason": reason} if reason else {}
    return Plan((EventOnly(check_slug(slug), "task.cancelled", details),), s.entries.get(slug))


def stop(s: Snapshot, slug: str, *, reason: str | None = None) -> Plan[RegistryEntry]:
    """Stop a live attempt: its lease is retired, so the worker's next write tells it to stop."""
    entry = s.get(slug)
    if not entry.is_live:
        raise ConflictError(f"'{slug}' is {entry.state}, not claimed or running; there is nothing to stop")
    new = replace(entry, state="stopped", stop_reason=reason or "stopped by an operator")
    new = replace(new, finished_at=s.stamp, updated_at=s.stamp)
    return _one(new, "task.stopped", reason=reason, pid=entry.pid, previous_state=entry.state)


RETRYABLE = frozenset({"failed", "parked", "stopped", "exited", "retry_wait"})


def retry(
    s: Snapshot,
    slug: str,
    *,
    reason: str | None = None,
    fresh: bool = False,
    instructions: str | None = None,
) -> Plan[RegistryEntry]:
    """Make a finished attempt claimable now; ``fresh`` starts over from the base ref.

    ``instructions`` are for the next attempt (its prompt shows them); without them,
    instructions given earlier for that attempt stay.
    """
    entry = s.get(slug)
    if entry.state not in RETRYABLE:
        hint = f"run 'task stop {slug}' first" if entry.is_live else f"claim it with 'task claim {slug}'"
        raise ConflictError(f"'{slug}' is {entry.state} and cannot be retried; {hint}")
    given = _instructions(s, entry, instructions, "retry") if instructions is not None else None
    new = _due(entry, s.stamp, s.stamp, fresh=fresh)
    if given is not None:
        new = replace(new, instructions=given)
    return _one(
        new,
        "task.retry_scheduled",
        reason=reason,
        fresh=fresh,
        at=s.stamp,
        manual=True,
        instructions=given.text if given else None,
    )


def request_changes(s: Snapshot, slug: str, *, instructions: str) -> Plan[RegistryEntry]:
    """Send a task in review (its worker exited 0) back with what to change: claimable now,
    keeping its branch and worktree, with ``instructions`` for the next attempt."""
    entry = s.get(slug)
    if entry.state != "exited":
        raise ConflictError(_not_in_review(entry))
    given = _instructions(s, entry, instructions, "changes_requested")
    new = replace(_due(entry, s.stamp, s.stamp), instructions=given)
    return _one(new, "task.changes_requested", instructions=given.text, at=s.stamp)


def _instructions(s: Snapshot, entry: RegistryEntry, text: str, kind: str) -> Instructions:
    """``text`` as instructions for the attempt after ``entry``'s; UsageError when empty or too long."""
    if not text.strip():
        raise UsageError("the instructions are empty; say what the next attempt should do differently")
    if len(text) > MAX_INSTRUCTIONS:
        raise UsageError(
            f"the instructions are {len(text)} characters, over the limit of {MAX_INSTRUCTIONS}; "
            "shorten them, or put the detail in the task file's body"
        )
    return Instructions(text.strip(), s.actor.who, s.stamp, entry.attempt + 1, kind)


def _not_in_review(entry: RegistryEntry) -> str:
    """Why changes cannot be requested on ``entry``, and what to run instead."""
    slug, state = entry.slug, entry.state
    head = f"'{slug}' is {state}, not in review (its worker has not exited 0)"
    retry = f"'task retry {slug} --instructions TEXT'"
    if entry.is_live:
        return f"{head}; wait for attempt {entry.attempt} to end, or run 'task stop {slug}' and then {retry}"
    if state in RETRYABLE:
        return f"{head}; run {retry} to give the next attempt instructions"
    return f"{head}: its claim is over and a new claim starts afresh; see 'task status {slug}'"


def schedule_retry(
    s: Snapshot, slug: str, *, at: datetime, reason: str | None = None, lease: int | None = None
) -> Plan[RegistryEntry]:
    """Let a failed attempt be claimed again from ``at`` (the reconciler's backoff).

    With ``lease``, refuse when the entry has been claimed again since it was read.
    """
    entry = s.get(slug)
    if lease is not None:
        _same_lease(s, slug, lease)
    if entry.state != "failed":
        raise ConflictError(f"'{slug}' is {entry.state}; only a failed attempt is scheduled for retry")
    due = format_time(at)
    new = replace(entry, state="retry_wait", next_attempt_at=due, updated_at=s.stamp)
    return _one(new, "task.retry_scheduled", reason=reason, at=due, manual=False)


def park(s: Snapshot, slug: str, *, reason: str, lease: int | None = None) -> Plan[RegistryEntry]:
    """Keep a task from being dispatched until it is unparked (stopping a live attempt)."""
    entry = s.get(slug)
    if lease is not None:
        _same_lease(s, slug, lease)
    if entry.state in ("parked", "released"):
        raise ConflictError(f"'{slug}' is {entry.state}; only a task with a claim history can be parked")
    new = replace(entry, state="parked", parked_reason=reason, updated_at=s.stamp)
    return _one(new, "task.parked", reason=reason, previous_state=entry.state)


def unpark(s: Snapshot, slug: str, *, reason: str | None = None) -> Plan[RegistryEntry]:
    """Make a parked task claimable now, with a closed circuit (failures reset)."""
    entry = s.get(slug)
    if entry.state != "parked":
        raise ConflictError(f"'{slug}' is {entry.state}, not parked")
    return _one(_due(entry, s.stamp, s.stamp), "task.unparked", reason=reason)


def _due(entry: RegistryEntry, at: str, now: str, *, fresh: bool = False) -> RegistryEntry:
    return replace(
        entry,
        state="retry_wait",
        next_attempt_at=at,
        fresh=fresh or entry.fresh,
        parked_reason=None,
        consecutive_failures=0,
        failure_streak=0,
        updated_at=now,
    )


def prune(s: Snapshot, slug: str, *, reason: str) -> Plan[RegistryEntry]:
    """Remove an entry that no live worker holds (its lease history stays, so no lease is reused)."""
    entry = s.get(slug)
    if entry.is_live:
        raise ConflictError(f"'{slug}' is {entry.state}; run 'task stop {slug}' before removing its entry")
    return Plan(
        (Change(slug, None, "task.pruned", {"reason": reason, "previous_state": entry.state}),), entry
    )


def update(
    s: Snapshot, slug: str, fn: Callable[[RegistryEntry, Snapshot], Change | None]
) -> Plan[RegistryEntry]:
    """Apply ``fn`` to one entry: the hook for changes this module does not name."""
    entry = s.get(slug)
    change = fn(entry, s)
    if change is None:
        return Plan((), entry)
    return Plan((change,), change.entry or entry)
