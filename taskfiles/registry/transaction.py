"""What one registry transaction is: a snapshot in, a plan out, rows and events written.

A mutation is a pure function of a ``Snapshot`` returning a ``Plan``. The store
runs it under its lock and writes what ``apply`` makes of the plan; ``apply``
checks the invariants every store must keep (above all: a slug's lease never
goes back), so a buggy mutation cannot write a bad entry.

A plan holds two kinds of change: a ``Change`` sets (or removes) one entry and may
record an event; an ``EventOnly`` records an event for a slug and holds no entry at
all, so it cannot create, change or remove one (a runtime fact about a task that was
never claimed: an entry needs a lease, and only a claim issues one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from ..errors import NotFoundError, RegistryError
from ..slugs import check_slug
from .journal import diff
from .records import STATES, Actor, Event, RegistryEntry, format_time

T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    """What a mutation sees: every entry, the lease history, the time and the actor."""

    entries: Mapping[str, RegistryEntry]
    leases: Mapping[str, int]  # slug -> the highest lease ever issued for it
    now: datetime
    actor: Actor
    seq: int = 0  # the registry write this snapshot was read at

    @property
    def stamp(self) -> str:
        """``now`` as a registry time string."""
        return format_time(self.now)

    def get(self, slug: str) -> RegistryEntry:
        """The entry for ``slug``; NotFoundError when there is none."""
        entry = self.entries.get(check_slug(slug))
        if entry is None:
            raise NotFoundError(f"'{slug}' has no registry entry; it was never claimed (or gc removed it)")
        return entry

    def after(self, changes: Sequence[Change | EventOnly]) -> Snapshot:
        """This snapshot as ``changes`` would leave it (for a mutation made of several steps).

        The entries stay a view over these ones: a store whose snapshot reads (and locks)
        entries as they are asked for reads no more than the steps ask for."""
        written = {c.slug: c.entry for c in changes if isinstance(c, Change)}
        if not written:
            return self
        leases = dict(self.leases)
        for slug, entry in written.items():
            if entry is not None:
                leases[slug] = max(leases.get(slug, 0), entry.lease)
        return replace(self, entries=_Written(self.entries, written), leases=leases)

    def last_lease(self, slug: str) -> int:
        """The highest lease ever issued for ``slug`` (0: never claimed)."""
        entry = self.entries.get(slug)
        return max(self.leases.get(slug, 0), entry.lease if entry else 0)


class _Written(Mapping[str, RegistryEntry]):
    """Entries with some written over (None: removed), looked up without copying the rest."""

    def __init__(
        self, base: Mapping[str, RegistryEntry], written: Mapping[str, RegistryEntry | None]
    ) -> None:
        self._base, self._written = base, written

    def __getitem__(self, slug: str) -> RegistryEntry:
        if slug in self._written:
            entry = self._written[slug]
            if entry is None:
                raise KeyError(slug)
            return entry
        return self._base[slug]

    def __iter__(self) -> Iterator[str]:
        yield from (slug for slug in self._base if slug not in self._written)
        yield from (slug for slug, entry in self._written.items() if entry is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Change(NamedTuple):
    """One entry's new value, and the event that records it."""

    slug: str
    entry: RegistryEntry | None  # None removes the entry (its lease history stays)
    event: str | None = None  # None: a silent change (a heartbeat without news)
    details: Mapping[str, Any] = {}  # read-only (a Mapping): one shared empty default is safe


class EventOnly(NamedTuple):
    """An event recorded for ``slug`` that leaves its entry (or its having none) as it is."""

    slug: str
    event: str
    details: Mapping[str, Any] = {}  # read-only (a Mapping): one shared empty default is safe


class Plan(NamedTuple, Generic[T]):
    """What a mutation decided: the changes to write and the value to return."""

    changes: tuple[Change | EventOnly, ...]
    result: T


Mutation = Callable[[Snapshot], Plan[T]]


class Applied(NamedTuple):
    """A plan made ready to write: new rows, raised lease highs, the journal's changes."""

    rows: dict[str, dict[str, Any] | None]  # slug -> sparse JSON form; None: removed
    leases: dict[str, int]
    changes: tuple[dict[str, Any], ...]  # one per Change: what ``journal.encode`` writes
    events: tuple[Event, ...]


def apply(s: Snapshot, changes: Sequence[Change | EventOnly], seq: int) -> Applied:
    """Check every change against the snapshot and turn the plan into rows, journal
    changes (each only what changed in its entry) and events."""
    current: dict[str, RegistryEntry | None] = {}
    rows: dict[str, dict[str, Any] | None] = {}
    leases: dict[str, int] = {}
    written: list[dict[str, Any]] = []
    events: list[Event] = []
    for change in changes:
        if isinstance(change, EventOnly):
            line = _event_only(change)
            written.append(line)
            events.append(_event(s, change, line, seq))
            continue
        slug = change.slug
        old = current[slug] if slug in current else s.entries.get(slug)
        high = leases.get(slug, s.last_lease(slug))
        _check(change, old, high)
        current[slug] = change.entry
        row = rows[slug] = change.entry.to_dict() if change.entry else None
        if change.entry:
            leases[slug] = max(high, change.entry.lease)
        line = _line(change, old, row)
        written.append(line)
        if change.event:
            events.append(_event(s, change, line, seq))
    return Applied(rows, leases, tuple(written), tuple(events))


def _line(change: Change, old: RegistryEntry | None, row: dict[str, Any] | None) -> dict[str, Any]:
    holder = change.entry or old
    line: dict[str, Any] = {"slug": change.slug}
    if change.event:
        line["type"] = change.event
    line["lease"] = holder.lease if holder else None
    if change.details:
        line["details"] = dict(change.details)
    if row is None:
        line["removed"] = True
    else:
        line.update(diff(old.to_dict() if old else None, row))
    return line


def _event_only(change: EventOnly) -> dict[str, Any]:
    """The journal change of an ``EventOnly``: a type and details, no lease (no claim holds
    it) and nothing set, so no replay makes an entry of it (``journal.changes_entry``)."""
    check_slug(change.slug)
    if not isinstance(change.event, str) or not change.event.startswith("task."):
        raise RegistryError(
            f"refusing to record event {change.event!r} for {change.slug!r}: "
            "an event type starts with 'task.'; this is a bug in the caller"
        )
    line: dict[str, Any] = {"slug": change.slug, "type": change.event, "lease": None}
    if change.details:
        line["details"] = dict(change.details)
    return line


def _event(s: Snapshot, change: Change | EventOnly, line: dict[str, Any], seq: int) -> Event:
    return Event(
        time=s.stamp,
        type=str(change.event),
        slug=change.slug,
        lease=line["lease"],
        actor=s.actor,
        details=dict(change.details),
        seq=seq,
        change={k: line[k] for k in ("set", "unset", "drop", "append") if k in line} or None,
        removed=isinstance(change, Change) and change.entry is None,
    )


def _check(change: Change, old: RegistryEntry | None, high: int) -> None:
    new = change.entry
    if new is None:
        return
    problem = _problem(change.slug, new, old, high)
    if problem:
        raise RegistryError(
            f"refusing to write registry entry {change.slug!r}: {problem}; this is a bug in the caller"
        )


def _problem(slug: str, new: RegistryEntry, old: RegistryEntry | None, high: int) -> str | None:
    check_slug(slug)
    if new.slug != slug:
        return f"it is filed under {slug!r} but names {new.slug!r}"
    if new.state not in STATES:
        return f"state {new.state!r} is not one of {', '.join(STATES)}"
    if new.lease < 1 or (old is not None and new.lease < old.lease):
        return f"lease {new.lease} goes back from {old.lease if old else 0}"
    # A new lease, or a retired one coming back to life, must be one never issued before.
    revived = old is None or new.lease != old.lease or (new.is_live and not old.is_live)
    if revived and new.lease <= high:
        return f"lease {new.lease} was issued before (the highest is {high}); a lease is never reused"
    if new.attempt < 1 or new.max_attempts < 1 or new.consecutive_failures < 0:
        return "attempt, max_attempts and consecutive_failures must be positive"
    if new.cost_usd < 0 or new.total_cost_usd < 0:
        return "costs cannot be negative"
    return None
