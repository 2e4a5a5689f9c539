"""The runtime registry: the interface every store implements, and how to open one.

Runtime state (claims, leases, heartbeats, attempts, exits, logs) lives here and
never in task files. ``JsonRegistry`` (files under ``registry/``) is the embedded
default; a PostgreSQL store for several dispatch hosts will implement the same
abstract methods, so nothing above this interface may assume files.

A store implements a handful of primitives (``transact``, ``snapshot``, event and
log reading, ``gc``, ``repair``). Every operation below is one ``transact`` call
running a pure function of ``lifecycle``, so the rules are the same in every store.
See ``records`` for the entry states and ``lifecycle`` for the transitions.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from ..errors import NotFoundError, UsageError
from ..slugs import check_slug
from . import lifecycle
from .records import Actor, Event, LogRecord, RegistryEntry, format_time, utc_now
from .transaction import Change, Mutation, Snapshot

if TYPE_CHECKING:
    # Imported where used: runlog and rollup are ~3 ms that a fact's write does not need,
    # nor the cycle record and the dump (~1 ms) that a listing and a fact's write do not.
    from .cyclerecord import CycleRecord
    from .dump import Dump
    from .repair import RepairReport
    from .rollup import Rollup
    from .runlog import LogLine, LogPage, LogStats, LogTail


T = TypeVar("T")
Clock = Callable[[], datetime]


class EventPage(NamedTuple):
    """Events in log order, and warnings for lines that could not be read."""

    events: tuple[Event, ...]
    warnings: tuple[str, ...] = ()


class RegistryChange(NamedTuple):
    """One batch of changes, for live views: what changed, for which tasks, and the events
    recorded since the batch before (oldest first)."""

    scopes: frozenset[str]  # "registry" (entries, events), "cycle" (the cycle record), "logs"
    slugs: frozenset[str] = frozenset()
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class GcReport:
    """What ``gc`` removed."""

    entries_removed: tuple[str, ...]  # released entries older than the cutoff
    # Per-task folders (logs/, prompts/, workers/) and attempt logs past the log retention
    # (logs/<slug>/<attempt>.log) removed; log_bytes_removed counts every byte of them.
    logs_removed: tuple[str, ...]
    log_bytes_removed: int
    events_archived: int
    archive: str | None  # where the archived events went
    warnings: tuple[str, ...] = ()
    rolled_up: int = 0  # runs, retries and removed entries' costs folded into the rollup first


def keeps_log(entry: RegistryEntry | None, attempt: int) -> bool:
    """Whether gc's log retention keeps ``attempt``'s log however old its last line: it is
    the current attempt of a live entry (a quiet worker may log again any moment). Any
    other attempt log, the current one of a failed or parked entry included, goes once
    its last line is older than the retention."""
    return entry is not None and entry.is_live and entry.attempt == attempt


class Registry(ABC):
    """Runtime state of every task, behind one interface.

    An instance is meant for one thread (stores keep caches); open one per thread.
    """

    def __init__(self, *, clock: Clock | None = None, actor: Actor | None = None) -> None:
        self.clock: Clock = clock or utc_now
        self.actor = actor or Actor.current()

    # -- primitives each store implements ----------------------------------------------------

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the registry lives, for messages (a folder, a database URL)."""

    @abstractmethod
    def transact(self, fn: Mutation[T]) -> T:
        """Run ``fn`` on a snapshot under the store's lock and write its plan atomically.

        The one way anything changes an entry. ``fn`` must be pure: it may run
        again in a store that retries transactions. An exception from ``fn`` writes nothing.
        """

    @abstractmethod
    def snapshot(self) -> Snapshot:
        """Every entry and lease as last written (no lock: a consistent past state)."""

    @abstractmethod
    def events(self, slug: str | None = None, since: datetime | None = None) -> EventPage:
        """Recorded events, oldest first, for ``slug`` (None: all) from ``since`` on."""

    @abstractmethod
    def follow_events(
        self, slug: str | None = None, since: datetime | None = None, *, poll: float = 0.5
    ) -> Iterator[Event]:
        """Events as they are recorded: those from ``since`` first (None: only new ones)."""

    @abstractmethod
    def _append_log(self, slug: str, lease: int | None, records: Sequence[LogRecord]) -> int:
        """Append ``records`` to the current attempt's log, fenced by ``lease``; return the attempt."""

    @abstractmethod
    def _logged_attempts(self, slug: str) -> list[int]:
        """The attempt numbers of ``slug`` that have log lines, in order."""

    def _log_attempt(self, slug: str, attempt: int | None) -> int:
        """The attempt a log reader means: ``attempt`` if it has a log or is the entry's,
        else the entry's current one, else the last with a log; NotFoundError otherwise."""
        check_slug(slug)
        known = self._logged_attempts(slug)
        entry = self.find(slug)
        if attempt is not None:
            if attempt not in known and not (entry and entry.attempt == attempt):
                listed = ", ".join(map(str, known)) or "none"
                raise NotFoundError(
                    f"attempt {attempt} of '{slug}' has no log (attempts with logs: {listed})"
                )
            return attempt
        if entry is None and not known:
            raise NotFoundError(f"'{slug}' has no registry entry and no logs")
        return entry.attempt if entry else known[-1]

    def _attempt_over(self, slug: str, attempt: int) -> bool:
        """Whether ``attempt`` of ``slug`` can log no more (a log follower stops then)."""
        entry = self.find(slug)
        return entry is None or entry.attempt != attempt or not entry.is_live

    @abstractmethod
    def _read_log(self, slug: str, attempt: int, after: int) -> tuple[list[LogLine], int, list[str]]:
        """The lines of one attempt's log after position ``after`` (unfiltered), the position
        of its last line, and warnings for lines that could not be read."""

    @abstractmethod
    def log_stats(self, slug: str, *, attempt: int | None = None) -> LogStats:
        """What one attempt's log (None: the latest) holds: lines by level and by source,
        first and last time, size. The stats and sources endpoints both read this."""

    def logs(
        self, slug: str, *, attempt: int | None = None, level: str | None = None, source: str | None = None
    ) -> LogPage:
        """One attempt's log (None: the latest), at ``level`` or above, from ``source``."""
        from .runlog import LogPage, check_filters, matches

        check_filters(level, source)
        number = self._log_attempt(slug, attempt)
        lines, last, warnings = self._read_log(slug, number, 0)
        kept = tuple(line.record for line in lines if matches(line.record, level, source))
        return LogPage(slug, number, kept, tuple(warnings), last)

    def log_tail(
        self,
        slug: str,
        *,
        attempt: int | None = None,
        after: int = 0,
        level: str | None = None,
        source: str | None = None,
    ) -> LogTail:
        """The lines of one attempt's log (None: the latest) after position ``after`` that
        pass the filters, and whether the attempt is over (the live stream's one read)."""
        from .runlog import LogTail, check_filters, matches

        check_filters(level, source)
        if after < 0:
            raise UsageError(f"a log position is 0 or more, not {after}")
        number = self._log_attempt(slug, attempt)
        over = self._attempt_over(slug, number)  # checked before reading: no last line is missed
        lines, last, warnings = self._read_log(slug, number, after)
        kept = tuple(line for line in lines if matches(line.record, level, source))
        return LogTail(slug, number, kept, max(last, after), over, tuple(warnings))

    def follow_logs(
        self,
        slug: str,
        *,
        attempt: int | None = None,
        level: str | None = None,
        source: str | None = None,
        poll: float = 0.25,
    ) -> Iterator[LogRecord]:
        """The attempt's log lines so far, then new ones until the attempt is over."""
        from .runlog import check_filters, matches

        check_filters(level, source)
        number = self._log_attempt(slug, attempt)
        lines = self._follow_log(slug, number, poll)
        return (record for record in lines if matches(record, level, source))

    @abstractmethod
    def _follow_log(self, slug: str, attempt: int, poll: float) -> Iterator[LogRecord]:
        """Every record of ``attempt``'s log, then new ones as they are written, ending once
        the attempt is over (``_attempt_over``, checked before each read: nothing is missed)."""

    @abstractmethod
    def watch(self, stop: threading.Event) -> Iterator[RegistryChange]:
        """Batches of changes as they happen, until ``stop`` is set: the feed live views stand on.

        Blocking: run it in a thread. A batch may come with no change at all (a timeout),
        so the caller can look at ``stop``; a store that is not there yet is waited for.
        """

    @abstractmethod
    def gc(self, older_than_days: float = 30.0, *, log_retention_days: float = 0.0) -> GcReport:
        """Remove released entries and their logs, and archive events, older than the cutoff;
        with ``log_retention_days`` (0: keep logs), also every attempt log whose last line is
        older than that, whatever its entry, except the current attempt of a live entry;
        first fold what metrics read of them into the rollup (``rollups``)."""

    @abstractmethod
    def rollups(self) -> Rollup:
        """What gc folded before it archived events and removed entries (see ``rollup``):
        run metrics read it with the live events, so gc never shortens their history."""

    @abstractmethod
    def write_cycle(self, record: CycleRecord, *, elapsed: Callable[[], float] | None = None) -> None:
        """Store the record of a heartbeat cycle of ``record.host``, atomically, replacing that
        host's record before (a store that keeps one record replaces it).

        ``elapsed``: the cycle's milliseconds so far, read once the record is encoded and
        just before it is stored; it becomes the stored ``duration_ms``, which so counts
        building and encoding the record."""

    @abstractmethod
    def read_cycle(self, *, rows: bool = True) -> CycleRecord | None:
        """The last heartbeat cycle's classification (the newest of any host), or None before
        the first cycle. ``rows=False``: without its task rows (``tasks`` empty), which no
        reader in this package needs and which are most of a record (50,000 at 50,000 tasks)."""

    def read_cycles(self, *, rows: bool = True) -> tuple[CycleRecord, ...]:
        """Each dispatch host's last cycle record, newest first; the first is ``read_cycle()``'s.

        A store that keeps one record (the JSON store's ``snapshot.json``) has one host's:
        the one that ran last. A store shared by several hosts keeps one a host.
        """
        record = self.read_cycle(rows=rows)
        return (record,) if record is not None else ()

    @abstractmethod
    def dump(self) -> Dump:
        """Everything this registry holds (entries, lease history, events, logs): what
        ``task registry copy`` moves to another store."""

    @abstractmethod
    def load(self, dump: Dump) -> None:
        """Fill this empty registry from ``dump``; RegistryError when it already holds anything."""

    @abstractmethod
    def repair(self) -> RepairReport:
        """Rebuild unreadable registry state from the backup and the event log."""

    # -- reading ----------------------------------------------------------------------------

    def entries(self) -> dict[str, RegistryEntry]:
        """Every entry, by slug."""
        snap = self.snapshot()
        return {slug: snap.entries[slug] for slug in snap.entries}

    def unreleased(self) -> dict[str, RegistryEntry]:
        """Every entry but the released ones: what the classification looks at (a released
        entry is history; a task with one is classified as if it had none). A store may
        answer without reading the released ones."""
        return {slug: entry for slug, entry in self.entries().items() if entry.state != "released"}

    def find(self, slug: str) -> RegistryEntry | None:
        """The entry for ``slug``, or None."""
        return self.snapshot().entries.get(slug)

    def get(self, slug: str) -> RegistryEntry:
        """The entry for ``slug``; NotFoundError when there is none."""
        return self.snapshot().get(slug)

    # -- the worker's side -------------------------------------------------------------------

    def claim(
        self,
        slug: str,
        *,
        worker: str,
        owner: str | None = None,
        max_attempts: int | None = None,
        task_blob: str | None = None,
    ) -> RegistryEntry:
        """Claim ``slug`` with a new lease; ConflictError when it has a live claim.

        Readiness and dependencies are the caller's to check; this checks runtime state.
        """
        return self.transact(
            lambda s: lifecycle.claim(
                s, slug, worker=worker, owner=owner, max_attempts=max_attempts, task_blob=task_blob
            )
        )

    def claim_first(
        self,
        candidates: Sequence[str],
        *,
        worker: str,
        owner: str | None = None,
        max_attempts: int | None = None,
        task_blobs: Mapping[str, str] | None = None,
    ) -> RegistryEntry | None:
        """Claim the first claimable candidate in one transaction; None when none is.

        Two processes calling this at once never get the same task.
        """
        return self.transact(
            lambda s: lifecycle.claim_first(
                s, candidates, worker=worker, owner=owner, max_attempts=max_attempts, task_blobs=task_blobs
            )
        )

    def start(
        self,
        slug: str,
        lease: int,
        *,
        pid: int | None = None,
        pid_start_time: int | None = None,
        worktree: str | None = None,
        branch: str | None = None,
        agent: str | None = None,
    ) -> RegistryEntry:
        """Record that the worker holding ``lease`` started (see ``process.pid_start_time``);
        ``agent`` names the agent profile it runs, in the event."""
        return self.transact(
            lambda s: lifecycle.start(
                s,
                slug,
                lease,
                pid=pid,
                pid_start_time=pid_start_time,
                worktree=worktree,
                branch=branch,
                agent=agent,
            )
        )

    def heartbeat(
        self, slug: str, lease: int, *, note: str | None = None, cost_usd: float | None = None
    ) -> RegistryEntry:
        """Record that the worker holding ``lease`` is alive; StaleLeaseError means stop."""
        return self.transact(lambda s: lifecycle.heartbeat(s, slug, lease, note=note, cost_usd=cost_usd))

    def finish(
        self,
        slug: str,
        lease: int,
        exit_code: int,
        *,
        error: str | None = None,
        failure_class: str | None = None,
    ) -> RegistryEntry:
        """Record the worker's exit code (0: ``exited``, else ``failed``)."""
        return self.transact(
            lambda s: lifecycle.finish(s, slug, lease, exit_code, error=error, failure_class=failure_class)
        )

    def fail(self, slug: str, lease: int, *, failure_class: str, error: str) -> RegistryEntry:
        """Mark a live attempt failed without an exit (the reconciler: worker gone, stalled)."""
        return self.transact(
            lambda s: lifecycle.fail(s, slug, lease, failure_class=failure_class, error=error)
        )

    def release(self, slug: str, *, reason: str | None = None) -> RegistryEntry:
        """End the claim for good; the lease history stays, so no lease is ever reused."""
        return self.transact(lambda s: lifecycle.release(s, slug, reason=reason))

    def log(
        self,
        slug: str,
        message: str,
        *,
        lease: int | None = None,
        level: str = "info",
        source: str = "worker",
        fields: Mapping[str, str] | None = None,
    ) -> int:
        """Append one line to the current attempt's log; return the attempt number."""
        return self.log_many(slug, [message], lease=lease, level=level, source=source, fields=fields)

    def log_many(
        self,
        slug: str,
        messages: Sequence[str],
        *,
        lease: int | None = None,
        level: str = "info",
        source: str = "worker",
        fields: Mapping[str, str] | None = None,
    ) -> int:
        """Append several lines in one write (the worker's tee), each with ``fields``
        (``runlog.check_fields`` says what they may be); return the attempt number.

        Log lines are not events: a log is its own stream, and one event per line
        would drown the state changes in ``events.jsonl``.
        """
        from .runlog import check_fields, check_level, check_source

        check_level(level)
        check_source(source)
        extra = check_fields(fields or {})
        stamp = format_time(self.clock())
        who = self.actor.who
        records = [LogRecord(stamp, level, source, m, lease, who, extra) for m in messages]
        return self._append_log(slug, lease, records)

    # -- runtime facts ------------------------------------------------------------------------
    # Each updates the entry when the task has one (fenced by ``lease`` when given) and
    # returns it; a task without an entry takes the fact as an event alone (None returned).
    # A lease given for a slug with no entry is NotFoundError, as for any fenced write.

    def note(self, slug: str, text: str, *, lease: int | None = None) -> RegistryEntry | None:
        """Record a note (the entry's ``note``: the last one)."""
        return self.transact(lambda s: lifecycle.note(s, slug, text, lease=lease))

    def progress(
        self, slug: str, percent: int, message: str | None = None, *, lease: int | None = None
    ) -> RegistryEntry | None:
        """Record how far along the work is, 0-100."""
        return self.transact(lambda s: lifecycle.progress(s, slug, percent, message, lease=lease))

    def blocker(self, slug: str, text: str | None, *, lease: int | None = None) -> RegistryEntry | None:
        """Record what blocks the work; ``None`` clears it."""
        return self.transact(lambda s: lifecycle.blocker(s, slug, text, lease=lease))

    def evidence(
        self,
        slug: str,
        command: str,
        exit_code: int,
        summary: str | None = None,
        *,
        lease: int | None = None,
    ) -> RegistryEntry | None:
        """Record a command run as evidence and how it ended."""
        return self.transact(lambda s: lifecycle.evidence(s, slug, command, exit_code, summary, lease=lease))

    def artifact(self, slug: str, ref: str, *, lease: int | None = None) -> RegistryEntry | None:
        """Record a path or URL the work produced."""
        return self.transact(lambda s: lifecycle.artifact(s, slug, ref, lease=lease))

    # -- operators and the reconciler -------------------------------------------------------

    def cancelled(self, slug: str, *, reason: str | None = None) -> RegistryEntry | None:
        """Record a ``task.cancelled`` event (its entry, if any, as it is; None without one)."""
        return self.transact(lambda s: lifecycle.cancelled(s, slug, reason=reason))

    def stop(self, slug: str, *, reason: str | None = None) -> RegistryEntry:
        """Stop a live attempt; the worker learns it from its next (refused) write."""
        return self.transact(lambda s: lifecycle.stop(s, slug, reason=reason))

    def retry(
        self, slug: str, *, reason: str | None = None, fresh: bool = False, instructions: str | None = None
    ) -> RegistryEntry:
        """Make a failed, parked, stopped or exited task claimable now; ``instructions`` are
        for the next attempt."""
        return self.transact(
            lambda s: lifecycle.retry(s, slug, reason=reason, fresh=fresh, instructions=instructions)
        )

    def request_changes(self, slug: str, *, instructions: str) -> RegistryEntry:
        """Send a task in review (exited) back, claimable now, with instructions for the next attempt."""
        return self.transact(lambda s: lifecycle.request_changes(s, slug, instructions=instructions))

    def schedule_retry(
        self, slug: str, *, at: datetime, reason: str | None = None, lease: int | None = None
    ) -> RegistryEntry:
        """Let a failed task be claimed again from ``at`` (backoff)."""
        return self.transact(lambda s: lifecycle.schedule_retry(s, slug, at=at, reason=reason, lease=lease))

    def park(self, slug: str, *, reason: str, lease: int | None = None) -> RegistryEntry:
        """Keep a task from dispatch until ``unpark`` (stops a live attempt)."""
        return self.transact(lambda s: lifecycle.park(s, slug, reason=reason, lease=lease))

    def unpark(self, slug: str, *, reason: str | None = None) -> RegistryEntry:
        """Make a parked task claimable now."""
        return self.transact(lambda s: lifecycle.unpark(s, slug, reason=reason))

    def prune(self, slug: str, *, reason: str) -> RegistryEntry:
        """Remove the entry of a task that is gone (not while a worker holds it); return what it was."""
        return self.transact(lambda s: lifecycle.prune(s, slug, reason=reason))

    def update(self, slug: str, fn: Callable[[RegistryEntry, Snapshot], Change | None]) -> RegistryEntry:
        """Apply ``fn`` to one entry in a transaction (``None``: no change)."""
        return self.transact(lambda s: lifecycle.update(s, slug, fn))
