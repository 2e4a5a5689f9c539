"""Each attempt of a task as its events tell it: the account an agent gets of earlier attempts.

One derivation, from the event log alone (``Registry.events(slug)``), so it also covers
attempts whose entry fields a later claim reset: a ``task.claimed`` event opens an
attempt (its details carry the attempt number and the instructions given for it), and
what follows until the next claim belongs to it: the start (with the agent profile),
progress and notes, and how it ended (``task.exited``, ``task.failed``,
``task.stopped``, a ``task.parked`` or ``task.released`` of a live attempt). Events
before the first claim belong to no attempt. Events ``gc`` archived are not read, so
an old task's account may start later than its first attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from .records import Event, Instructions
from .rollup import run_of

LIVE = frozenset({"claimed", "running"})


@dataclass(frozen=True)
class Attempt:
    """One attempt: who ran it, how it went and how it ended."""

    number: int
    lease: int | None
    claimed_at: str
    worker: str | None = None
    agent: str | None = None  # the agent profile its start recorded
    started_at: str | None = None
    ended_at: str | None = None
    outcome: str = "claimed"  # claimed, running, exited, failed, stopped, parked, released
    ended_by: str | None = None  # the event that ended it (task.exited, task.failed, task.stopped, ...)
    exit_code: int | None = None
    failure_class: str | None = None
    error: str | None = None  # the last error, or why it was stopped or parked
    progress: str | None = None  # the last progress message or note
    percent: int | None = None
    cost_usd: float | None = None
    instructions: Instructions | None = None  # given before it; its claim carried them

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        data = dict(vars(self))
        data["instructions"] = self.instructions.to_dict() if self.instructions else None
        return data


def attempts(events: Iterable[Event]) -> tuple[Attempt, ...]:
    """Every attempt the events (one task's, oldest first) tell of, in order."""
    found: list[Attempt] = []
    for event in events:
        if event.type == "task.claimed":
            found.append(_opened(event, found[-1].number if found else 0))
        elif found:
            found[-1] = _after(found[-1], event)
    return tuple(found)


def earlier(events: Iterable[Event], current: int, limit: int = 5) -> tuple[tuple[Attempt, ...], int]:
    """The last ``limit`` attempts before attempt ``current``, and how many earlier ones were left out."""
    before = [a for a in attempts(events) if a.number < current]
    shown = before[-limit:] if limit > 0 else []
    return tuple(shown), len(before) - len(shown)


def _opened(event: Event, previous: int) -> Attempt:
    details = event.details
    number = details.get("attempt")
    given = details.get("instructions")
    return Attempt(
        number=number if isinstance(number, int) else previous + 1,
        lease=event.lease,
        claimed_at=event.time,
        worker=_text(details.get("worker")),
        instructions=_instructions(given) if isinstance(given, dict) else None,
    )


def _instructions(given: dict[str, Any]) -> Instructions | None:
    try:
        return Instructions.from_dict(given)
    except (KeyError, TypeError, ValueError):  # a hand-edited or foreign line: no instructions
        return None


def _after(attempt: Attempt, event: Event) -> Attempt:
    """``attempt`` as ``event`` leaves it."""
    details, kind = event.details, event.type
    if kind == "task.started":
        return replace(attempt, outcome="running", started_at=event.time, agent=_text(details.get("agent")))
    if kind in ("task.heartbeat", "task.note", "task.progress"):
        return _progressed(attempt, kind, details)
    if kind in ("task.exited", "task.failed"):
        return _ended(attempt, event)
    live = attempt.outcome in LIVE
    if kind in ("task.stopped", "task.parked", "task.released") and live:
        outcome = {"task.stopped": "stopped", "task.parked": "parked", "task.released": "released"}[kind]
        return replace(
            attempt, outcome=outcome, ended_by=kind, ended_at=event.time, error=_text(details.get("reason"))
        )
    return attempt


def _progressed(attempt: Attempt, kind: str, details: Any) -> Attempt:
    text = _text(details.get({"task.heartbeat": "note", "task.note": "text"}.get(kind, "message")))
    percent = details.get("percent") if kind == "task.progress" else None
    return replace(
        attempt,
        progress=text or attempt.progress,
        percent=percent if isinstance(percent, int) else attempt.percent,
    )


def _ended(attempt: Attempt, event: Event) -> Attempt:
    """``attempt`` closed by its run-end event, read as metrics read it (``rollup.run_of``)."""
    run = run_of(event)
    if run is None:  # an end event without a slug: nothing to read
        return attempt
    return replace(
        attempt,
        outcome="exited" if run.ok else "failed",
        ended_by=event.type,
        ended_at=event.time,
        exit_code=run.exit_code,
        failure_class=run.failure_class,
        error=_text(event.details.get("error")),
        cost_usd=run.cost_usd if "cost_usd" in event.details else attempt.cost_usd,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
