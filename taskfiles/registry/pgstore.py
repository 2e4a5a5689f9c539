"""The registry on PostgreSQL: one database for several dispatch hosts.

Tables (see ``migrations/``): ``taskfiles_entries`` (one small row a task: the hot
table), ``taskfiles_leases`` (the highest lease per slug, never lowered; its row is
also the slug's lock), ``taskfiles_events`` (append-only, increasing ``id``),
``taskfiles_logs`` (attempt logs, so any host's page shows any host's worker),
``taskfiles_cycles`` (each host's last cycle record) and ``taskfiles_rollups`` (what gc
folded for run metrics before it archived events and removed entries).

Every operation is one transaction running the same pure lifecycle function as
the JSON store. The snapshot it sees is lazy: the first time the mutation looks
at a slug, that slug's lease row is locked (``SELECT ... FOR UPDATE``) and its
entry read, so transactions on different tasks run side by side and two on one
task wait for each other. Writes carry the lease they read in their WHERE
clause; a deadlock or serialization failure re-runs the transaction (the
mutation is pure). ``claim_first`` (``next --claim``) locks its candidates one at
a time, in order, with ``FOR UPDATE SKIP LOCKED``, so racing claimers on several
hosts each get a different task without waiting for one another.

Each commit sends ``NOTIFY taskfiles`` with ids only; ``watch`` listens on a
connection of its own and polls as well (behind PgBouncer in transaction mode
notifications do not arrive; a dropped connection misses some), so it never
misses a change for longer than its poll interval.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..config import redacted
from ..errors import NotFoundError, RegistryError, UsageError
from ..slugs import check_slug
from . import lifecycle, pgschema, rollup, runlog
from .cyclerecord import CycleRecord
from .dump import Dump
from .interface import EventPage, GcReport, Registry, RegistryChange, keeps_log
from .records import Actor, Event, LogRecord, RegistryEntry, format_time
from .repair import RepairReport
from .runlog import LogLine, LogStats
from .transaction import Change, EventOnly, Mutation, Plan, Snapshot, apply

if TYPE_CHECKING:
    import psycopg

    from .interface import Clock

T = TypeVar("T")
CHANNEL = "taskfiles"
RETRIES = 30  # deadlocks and serialization failures re-run the (pure) mutation
WATCH_POLL = 0.25  # seconds: how long a missed notification can go unseen
GAP_WAIT = 30.0  # seconds an id skipped over is waited for (a slow commit; else a rollback)
MAX_GAPS = 10_000  # ids skipped over at once beyond which none are waited for
LOOKBACK = 1_000  # ids a reader of events or of the log feed reads again for rows committed late
# What a log line takes in the database, as gc and log_stats count it: its JSON text.
_LOG_BYTES = "octet_length(record::text) + coalesce(octet_length(fields::text), 0)"


class PgRegistry(Registry):
    """The registry in the PostgreSQL database at ``url`` (migrated: ``task registry migrate``)."""

    def __init__(self, url: str, *, clock: Clock | None = None, actor: Actor | None = None) -> None:
        super().__init__(clock=clock, actor=actor)
        pgschema.psycopg_module()  # a clear error naming the extra when psycopg is missing
        self.url = url
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    @property
    def location(self) -> str:
        """The database URL, without its password."""
        return redacted(self.url)

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """This handle's connection (autocommit: every use opens its own transaction)."""
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            # No prepared statements: they do not survive PgBouncer in transaction mode.
            conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=None)
        except psycopg.OperationalError as exc:
            raise self._unreachable(exc) from None
        try:
            pgschema.check(conn, self.url)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _unreachable(self, exc: BaseException) -> RegistryError:
        text = str(exc).strip().splitlines()
        return RegistryError(
            f"cannot reach the registry database {self.location}: {text[0] if text else exc!r}; "
            "check registry_url / TASKFILES_REGISTRY_URL and that the server is up"
        )

    def close(self) -> None:
        """Close the connection (a new one is opened on the next use)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self, body: Any) -> Any:
        """Run ``body(conn)`` in one transaction, again on a deadlock or serialization failure."""
        import psycopg
        from psycopg import errors

        reconnected = False
        for attempt in itertools.count():
            fresh = self._conn is None or self._conn.closed
            conn = self._connect()
            committing = False
            try:
                with conn.transaction():
                    result = body(conn)
                    committing = True  # leaving the block sends COMMIT
                return result
            except (errors.SerializationFailure, errors.DeadlockDetected, errors.UniqueViolation):
                if attempt >= RETRIES:
                    raise RegistryError(
                        f"the registry database {self.location} kept refusing a transaction as "
                        f"conflicting ({RETRIES} tries); try again"
                    ) from None
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
            except psycopg.OperationalError as exc:
                self.close()
                if committing:
                    raise RegistryError(
                        f"the connection to {self.location} dropped while committing: the write may "
                        "or may not have been recorded; look before repeating it (task show)"
                    ) from None
                if fresh or reconnected:
                    raise self._unreachable(exc) from None
                reconnected = True  # a connection that went stale while idle: the server rolled back
        raise AssertionError("unreachable")

    # -- transactions ------------------------------------------------------------------------

    def transact(self, fn: Mutation[T]) -> T:
        """Run ``fn`` on a lazily locked snapshot and write its plan (see ``Registry.transact``)."""

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> T:
            rows = _Locked(conn, self)
            snap = Snapshot(rows, rows.leases, self.clock(), self.actor)  # seq: only readers show it
            plan = fn(snap)
            if plan.changes:
                self._write(conn, rows, snap, plan.changes)
            return plan.result

        result: T = self._run(body)
        return result

    def _write(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        rows: _Locked,
        snap: Snapshot,
        changes: Sequence[Change | EventOnly],
    ) -> None:
        """Write a plan: each entry fenced by the lease it was read with, leases raised,
        events appended, and one notification (ids only) sent on commit."""
        from psycopg.types.json import Jsonb

        apply(snap, changes, 0)  # the invariants first: a refused plan takes no number
        seq = int(_one(conn, "SELECT nextval('taskfiles_txn')"))
        applied = apply(snap, changes, seq)
        fenced: list[tuple[str, psycopg.Cursor[tuple[Any, ...]]]] = []
        with conn.pipeline():  # one round trip for every write of the plan
            for slug, row in applied.rows.items():
                was = rows.read.get(slug)
                if row is None:
                    if was is not None:
                        conn.execute(
                            "DELETE FROM taskfiles_entries WHERE slug = %s AND lease = %s", (slug, was.lease)
                        )
                    continue
                values = (row["state"], row["lease"], row.get("host"), Jsonb(row), slug)
                if was is None:
                    conn.execute(
                        "INSERT INTO taskfiles_entries (state, lease, host, row, slug) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        values,
                    )
                else:
                    update = conn.execute(
                        "UPDATE taskfiles_entries SET state = %s, lease = %s, host = %s, row = %s, "
                        "updated_at = now() WHERE slug = %s AND lease = %s",
                        (*values, was.lease),
                    )
                    fenced.append((slug, update))
            for slug, high in applied.leases.items():
                if high > rows.high.get(slug, 0):
                    conn.execute(
                        "UPDATE taskfiles_leases SET high = greatest(high, %s) WHERE slug = %s", (high, slug)
                    )
            if applied.events:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO taskfiles_events "
                        "(seq, time, type, slug, lease, actor, details, change, removed) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [_event_row(seq, event) for event in applied.events],
                    )
                # Live views learn of events; a silent write (a plain heartbeat) has none to tell.
                _notify(conn, {"seq": seq, "slugs": sorted({e.slug for e in applied.events if e.slug})})
        for slug, update in fenced:
            if update.rowcount != 1:  # the fence: the row is locked, so this is a bug, never a race
                raise RegistryError(f"'{slug}' changed under its lock; nothing was written")

    def claim_first(
        self,
        candidates: Sequence[str],
        *,
        worker: str,
        owner: str | None = None,
        max_attempts: int | None = None,
        task_blobs: Mapping[str, str] | None = None,
    ) -> RegistryEntry | None:
        """Claim the first claimable candidate: candidates another transaction holds are
        skipped (``FOR UPDATE SKIP LOCKED``), so racing claimers never wait on each other
        and never get the same task."""
        wanted = [check_slug(slug) for slug in candidates]
        if not wanted:
            return None

        # Every candidate needs a lease row to lock: made (and committed) first, on its own,
        # so racing claimers never wait on each other's new rows.
        self._run(
            lambda conn: conn.execute(
                "INSERT INTO taskfiles_leases (slug) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                (wanted,),
            )
        )

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> RegistryEntry | None:
            rows = _Locked(conn, self)
            snap = Snapshot(rows, rows.leases, self.clock(), self.actor)
            while (slug := rows.lock_next(wanted)) is not None:  # one at a time, in order
                plan: Plan[RegistryEntry | None] = lifecycle.claim_first(
                    snap, [slug], worker=worker, owner=owner, max_attempts=max_attempts, task_blobs=task_blobs
                )
                if plan.changes:
                    self._write(conn, rows, snap, plan.changes)
                    return plan.result
            return None

        result: RegistryEntry | None = self._run(body)
        return result

    # -- reading -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Every entry and lease, as one consistent read."""

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> Snapshot:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            found = conn.execute("SELECT slug, row::text FROM taskfiles_entries").fetchall()
            leases = conn.execute("SELECT slug, high FROM taskfiles_leases WHERE high > 0").fetchall()
            return Snapshot(
                _Rows({slug: row for slug, row in found}, self),
                {slug: int(high) for slug, high in leases},
                self.clock(),
                self.actor,
                _last_seq(conn),
            )

        snap: Snapshot = self._run(body)
        return snap

    def unreleased(self) -> dict[str, RegistryEntry]:
        """Every entry but the released ones, without reading those."""

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> dict[str, RegistryEntry]:
            found = conn.execute("SELECT slug, row::text FROM taskfiles_entries WHERE state <> 'released'")
            return {slug: self._entry(slug, orjson.loads(row)) for slug, row in found}

        entries: dict[str, RegistryEntry] = self._run(body)
        return entries

    def find(self, slug: str) -> RegistryEntry | None:
        """The entry for ``slug``, or None (one row read, not the whole registry)."""
        check_slug(slug)

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> RegistryEntry | None:
            row = conn.execute("SELECT row FROM taskfiles_entries WHERE slug = %s", (slug,)).fetchone()
            return self._entry(slug, row[0]) if row else None

        entry: RegistryEntry | None = self._run(body)
        return entry

    def get(self, slug: str) -> RegistryEntry:
        """The entry for ``slug``; NotFoundError when there is none."""
        entry = self.find(slug)
        if entry is None:
            raise NotFoundError(f"'{slug}' has no registry entry; it was never claimed (or gc removed it)")
        return entry

    def _entry(self, slug: str, row: Mapping[str, Any]) -> RegistryEntry:
        try:
            return RegistryEntry.from_dict(row)
        except RegistryError as exc:
            raise RegistryError(f"{self.location}: entry '{slug}': {exc}") from None

    # -- events ------------------------------------------------------------------------------

    def events(self, slug: str | None = None, since: datetime | None = None) -> EventPage:
        """Recorded events for ``slug`` (None: all) from ``since`` on, oldest first."""
        found = sorted(self._events_after(0, slug, since), key=lambda f: (f.event.seq, f.id))
        return EventPage(tuple(f.event for f in found))  # in transaction order

    def _events_after(self, after: int, slug: str | None, since: datetime | None) -> list[_IdEvent]:
        query = (
            "SELECT id, seq, time, type, slug, lease, actor, details, change, removed "
            "FROM taskfiles_events WHERE id > %s"
        )
        args: list[Any] = [after]
        if slug is not None:
            query += " AND slug = %s"
            args.append(check_slug(slug))
        if since is not None:
            query += " AND time >= %s"
            args.append(format_time(since if since.tzinfo else since.replace(tzinfo=UTC)))
        query += " ORDER BY id"

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> list[_IdEvent]:
            return [_event(row) for row in conn.execute(query, args).fetchall()]

        found: list[_IdEvent] = self._run(body)
        return found

    def follow_events(
        self, slug: str | None = None, since: datetime | None = None, *, poll: float = 0.5
    ) -> Iterator[Event]:
        """Events as they are recorded (those from ``since`` first; None: only new ones): a
        notification wakes the reader at once, and it reads every ``poll`` seconds anyway."""
        position = self._event_position(since)
        wanted = check_slug(slug) if slug is not None else None

        def follow() -> Iterator[Event]:
            for _ in self._wakeups(poll):
                # Every slug's events are read, so the ids in between are known (see _Position).
                found = self._events_after(position.floor(), None, None)
                fresh = position.admit([f.id for f in found])
                for item in found:
                    if item.id in fresh and (wanted is None or item.event.slug == wanted):
                        yield item.event

        return follow()

    def _event_position(self, since: datetime | None) -> _Position:
        """Where a follower starts: before the first event from ``since`` (None: after the
        last one), with the ids missing in the last ``LOOKBACK`` below it as gaps."""

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[int, list[int]]:
            top = int(_one(conn, "SELECT coalesce(max(id), 0) FROM taskfiles_events"))
            if since is not None:
                stamp = format_time(since if since.tzinfo else since.replace(tzinfo=UTC))
                first = _one(conn, "SELECT min(id) FROM taskfiles_events WHERE time >= %s", (stamp,))
                top = int(first) - 1 if first is not None else top
            recent = conn.execute(
                "SELECT id FROM taskfiles_events WHERE id > %s AND id <= %s", (top - LOOKBACK, top)
            ).fetchall()
            return top, [int(row[0]) for row in recent]

        top, recent = self._run(body)
        return _Position.at(top, recent)

    def _wakeups(self, poll: float, stop: threading.Event | None = None) -> Iterator[None]:
        """Yield at once, then whenever a commit notifies ``taskfiles`` or ``poll`` seconds
        pass, until ``stop`` is set; a lost connection falls back to polling until it is back."""
        import psycopg

        yield None
        while stop is None or not stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as listener:
                    listener.execute(f"LISTEN {CHANNEL}")
                    yield None  # what was committed before the LISTEN
                    while stop is None or not stop.is_set():
                        for _ in listener.notifies(timeout=poll, stop_after=1):
                            pass
                        yield None
            except psycopg.OperationalError:
                time.sleep(poll)
                yield None

    # -- logs --------------------------------------------------------------------------------

    def _append_log(self, slug: str, lease: int | None, records: Sequence[LogRecord]) -> int:
        check_slug(slug)

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
            rows = _Locked(conn, self, share=True)
            snap = Snapshot(rows, rows.leases, self.clock(), self.actor)
            entry = snap.get(slug) if lease is None else lifecycle.fenced(snap, slug, lease)
            # The next positions after the highest committed: a writer racing for the same
            # ones fails on the unique index and runs again (see 0002_log_fields.sql).
            top = int(
                _one(
                    conn,
                    "SELECT coalesce(max(position), 0) FROM taskfiles_logs WHERE slug = %s AND attempt = %s",
                    (slug, entry.attempt),
                )
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO taskfiles_logs (slug, attempt, position, record, fields) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    [(slug, entry.attempt, top + n, *_log_columns(r)) for n, r in enumerate(records, 1)],
                )
            _notify(conn, {"logs": slug})
            return entry.attempt

        attempt: int = self._run(body)
        return attempt

    def _logged_attempts(self, slug: str) -> list[int]:
        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> list[int]:
            found = conn.execute(
                "SELECT DISTINCT attempt FROM taskfiles_logs WHERE slug = %s ORDER BY attempt",
                (check_slug(slug),),
            )
            return [int(row[0]) for row in found]

        attempts: list[int] = self._run(body)
        return attempts

    def _read_log(self, slug: str, attempt: int, after: int) -> tuple[list[LogLine], int, list[str]]:
        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT position, record, fields FROM taskfiles_logs "
                "WHERE slug = %s AND attempt = %s AND position > %s ORDER BY position",
                (check_slug(slug), attempt, after),
            ).fetchall()

        lines, warnings, last = [], [], after
        for position, record, fields in self._run(body):
            decoded, problem = runlog.decode(_log_object(record, fields))
            last = int(position)
            if decoded is None:
                where = f"{self.location} log of '{slug}' attempt {attempt} line {position}"
                warnings.append(f"{where}: {problem}; line skipped")
            else:
                lines.append(LogLine(last, decoded))
        return lines, last, warnings

    def log_stats(self, slug: str, *, attempt: int | None = None) -> LogStats:
        """One attempt's stats, counted by the database (GROUP BY level, source); ``bytes``
        is the rows' JSON text."""
        number = self._log_attempt(slug, attempt)

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT record->>'level', record->>'source', count(*), min(record->>'time'), "
                f"max(record->>'time'), sum({_LOG_BYTES}) "
                "FROM taskfiles_logs WHERE slug = %s AND attempt = %s GROUP BY 1, 2",
                (slug, number),
            ).fetchall()

        levels: dict[str, int] = {}
        sources: dict[str, int] = {}
        firsts, lasts, size = [], [], 0
        for level, source, count, first, last, octets in self._run(body):
            levels[level] = levels.get(level, 0) + int(count)
            sources[source] = sources.get(source, 0) + int(count)
            firsts.append(first)
            lasts.append(last)
            size += int(octets)
        total = sum(levels.values())
        return LogStats(
            slug, number, total, levels, sources, min(firsts, default=None), max(lasts, default=None), size
        )

    def _follow_log(self, slug: str, attempt: int, poll: float) -> Iterator[LogRecord]:
        """The rows after the last position read, at each wake-up (a notification or ``poll``)."""
        last = 0
        for _ in self._wakeups(poll):
            finished = self._attempt_over(slug, attempt)  # checked before reading: nothing is missed
            # Positions become visible in order (see 0002_log_fields.sql): after the last one
            # read, nothing is skipped.
            lines, last, _ = self._read_log(slug, attempt, last)
            yield from (line.record for line in lines)
            if finished:
                return

    # -- the live feed -----------------------------------------------------------------------

    def watch(self, stop: threading.Event) -> Iterator[RegistryChange]:
        """Changes as they are committed on any host: LISTEN for a prompt wake-up, and a poll
        of the events, logs and cycle records after each wake-up or every ``WATCH_POLL``
        seconds, so nothing is missed when notifications are not delivered (PgBouncer in
        transaction mode, a dropped connection)."""
        seen = _Seen(self)  # from this call on, as the JSON store's feed

        def feed() -> Iterator[RegistryChange]:
            for _ in self._wakeups(WATCH_POLL, stop):
                try:
                    yield from seen.changes(self)
                except RegistryError:  # the server is away: the next wake-up tries again
                    stop.wait(1.0)

        return feed()

    # -- retention, cycles, repair -----------------------------------------------------------

    def gc(self, older_than_days: float = 30.0, *, log_retention_days: float = 0.0) -> GcReport:
        """Remove released entries (and their logs) older than the cutoff and the logs of slugs
        that have had no entry since before it, and attempt logs past ``log_retention_days``
        (see ``Registry.gc``); move older events into ``taskfiles_events_archive`` (the live
        table stays small)."""
        if older_than_days < 0:
            raise UsageError(f"older_than_days must not be negative, not {older_than_days}")
        if log_retention_days < 0:
            raise UsageError(f"log_retention_days must not be negative, not {log_retention_days}")
        cutoff = format_time(self.clock() - timedelta(days=older_than_days))
        retention = format_time(self.clock() - timedelta(days=log_retention_days))
        reason = {"reason": f"released before {cutoff}"}

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> GcReport:
            candidates = conn.execute(
                "SELECT slug FROM taskfiles_entries WHERE state = 'released' AND row->>'updated_at' < %s "
                "ORDER BY slug",
                (cutoff,),
            ).fetchall()
            rows = _Locked(conn, self)
            snap = Snapshot(rows, rows.leases, self.clock(), self.actor)
            gone = []
            for (slug,) in candidates:  # locked, and read again: claimed since is kept
                entry = rows.get(slug)
                if entry is not None and entry.state == "released" and (entry.updated_at or "") < cutoff:
                    gone.append(slug)
            folded = self._fold(conn, [rows[slug] for slug in gone], cutoff)  # in this transaction
            if gone:
                self._write(conn, rows, snap, [Change(slug, None, "task.pruned", reason) for slug in gone])
            logs = conn.execute(
                "DELETE FROM taskfiles_logs l WHERE l.slug = ANY(%s) OR (l.record->>'time' < %s "
                "AND NOT EXISTS (SELECT 1 FROM taskfiles_entries e WHERE e.slug = l.slug)) "
                f"RETURNING l.slug, {_LOG_BYTES}",
                (gone, cutoff),
            ).fetchall()
            expired = self._expire_logs(conn, retention) if log_retention_days else []
            events = conn.execute(
                "WITH old AS (DELETE FROM taskfiles_events WHERE time < %s RETURNING *) "
                "INSERT INTO taskfiles_events_archive SELECT * FROM old",
                (cutoff,),
            ).rowcount
            return GcReport(
                tuple(gone),
                tuple(sorted({f"logs/{slug}" for slug, _ in logs} | {name for name, _ in expired})),
                sum(int(n) for _, n in [*logs, *expired]),
                int(events),
                f"{self.location} taskfiles_events_archive",
                rolled_up=folded,
            )

        report: GcReport = self._run(body)
        return report

    def _expire_logs(self, conn: psycopg.Connection[tuple[Any, ...]], cutoff: str) -> list[tuple[str, int]]:
        """Delete the attempt logs whose last line is older than ``cutoff``, but what
        ``keeps_log`` keeps; return each as ``logs/<slug>/<attempt>.log`` with its bytes. A
        line logged meanwhile (no lock keeps writers out) is not deleted: the log goes on."""
        old = conn.execute(
            "SELECT l.slug, l.attempt, max(e.row::text) FROM taskfiles_logs l "
            "LEFT JOIN taskfiles_entries e ON e.slug = l.slug "
            "GROUP BY l.slug, l.attempt HAVING max(l.record->>'time') < %s",
            (cutoff,),
        ).fetchall()
        doomed = [
            (slug, int(attempt))
            for slug, attempt, row in old
            if not keeps_log(self._entry(slug, orjson.loads(row)) if row else None, int(attempt))
        ]
        if not doomed:
            return []
        removed = conn.execute(
            "DELETE FROM taskfiles_logs WHERE (slug, attempt) IN "
            f"(SELECT * FROM unnest(%s::text[], %s::int[])) RETURNING slug, attempt, {_LOG_BYTES}",
            ([slug for slug, _ in doomed], [attempt for _, attempt in doomed]),
        ).fetchall()
        size: dict[str, int] = {}
        for slug, attempt, octets in removed:
            name = f"logs/{slug}/{attempt}.log"
            size[name] = size.get(name, 0) + int(octets)
        return sorted(size.items())

    def _fold(
        self, conn: psycopg.Connection[tuple[Any, ...]], gone: Sequence[RegistryEntry], cutoff: str
    ) -> int:
        """Add to the rollup the runs and retries of the events older than ``cutoff`` and the
        costs of the ``gone`` entries; return how many rows are new. The first fold also
        reads the events a gc archived before rollups existed."""
        first = not _one(conn, "SELECT EXISTS (SELECT 1 FROM taskfiles_rollups)")
        tables = ("taskfiles_events_archive", "taskfiles_events") if first else ("taskfiles_events",)
        events = [
            _event(row).event
            for table in tables
            for row in conn.execute(
                "SELECT id, seq, time, type, slug, lease, actor, details, change, removed "
                f"FROM {table} WHERE time < %s AND type = ANY(%s) ORDER BY seq, id",
                (cutoff, list(rollup.FOLDED)),
            )
        ]
        stamp = format_time(self.clock())
        removed = tuple(rollup.Removed(e.slug, e.lease, stamp, e.total_cost_usd) for e in gone)
        return _insert_rollups(conn, rollup.fold(events).merged(rollup.Rollup(removed=removed)))

    def rollups(self) -> rollup.Rollup:
        """The rows of ``taskfiles_rollups``, oldest first."""

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> rollup.Rollup:
            return _read_rollups(conn)

        found: rollup.Rollup = self._run(body)
        return found

    def write_cycle(self, record: CycleRecord, *, elapsed: Callable[[], float] | None = None) -> None:
        """Keep ``record`` as its host's last cycle (one row a host)."""
        host = record.host or self.actor.host

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
            conn.execute(
                "INSERT INTO taskfiles_cycles (host, generated_at, record) VALUES (%s, %s, %s::jsonb) "
                "ON CONFLICT (host) DO UPDATE "
                "SET generated_at = excluded.generated_at, record = excluded.record",
                (host, record.generated_at, record.to_json(elapsed).decode("utf-8")),
            )
            _notify(conn, {"cycle": host})

        self._run(body)

    def read_cycles(self, *, rows: bool = True) -> tuple[CycleRecord, ...]:
        """Each host's last cycle record, newest first (``rows=False``: the server leaves the
        task rows out)."""
        record = "record" if rows else "record - 'tasks'"

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> list[Any]:
            query = f"SELECT {record} FROM taskfiles_cycles ORDER BY generated_at DESC"
            return [row[0] for row in conn.execute(query)]

        records = [CycleRecord.from_dict(r) for r in self._run(body) if isinstance(r, dict)]
        return tuple(r for r in records if r is not None)

    def read_cycle(self, *, rows: bool = True) -> CycleRecord | None:
        """The newest cycle record of any host; None before the first cycle."""
        cycles = self.read_cycles(rows=rows)
        return cycles[0] if cycles else None

    def dump(self) -> Dump:
        """Entries, lease history, every event and every attempt's log, as one consistent read."""

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> Dump:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            rows = conn.execute("SELECT slug, row FROM taskfiles_entries ORDER BY slug").fetchall()
            leases = conn.execute("SELECT slug, high FROM taskfiles_leases WHERE high > 0").fetchall()
            events = conn.execute(  # archived history too, in transaction order
                "SELECT id, seq, time, type, slug, lease, actor, details, change, removed "
                "FROM (SELECT * FROM taskfiles_events_archive UNION ALL SELECT * FROM taskfiles_events) e "
                "ORDER BY seq, id"
            ).fetchall()
            logs: dict[tuple[str, int], list[LogRecord]] = {}
            for slug, attempt, record, fields in conn.execute(
                "SELECT slug, attempt, record, fields FROM taskfiles_logs ORDER BY slug, attempt, position"
            ):
                decoded = runlog.decode(_log_object(record, fields))[0]
                if decoded is not None:
                    logs.setdefault((slug, int(attempt)), []).append(decoded)
            return Dump(
                {slug: row for slug, row in rows},
                {slug: int(high) for slug, high in leases},
                tuple(_event(row).event for row in events),
                {key: tuple(records) for key, records in logs.items()},
                _last_seq(conn),
                _read_rollups(conn).to_dict(),
            )

        dumped: Dump = self._run(body)
        return dumped

    def load(self, dump: Dump) -> None:
        """Fill this empty database from ``dump``, keeping transaction numbers and lease highs."""
        from psycopg.types.json import Jsonb

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
            held = _one(
                conn,
                "SELECT (SELECT count(*) FROM taskfiles_entries) + (SELECT count(*) FROM taskfiles_leases) "
                "+ (SELECT count(*) FROM taskfiles_events) + (SELECT count(*) FROM taskfiles_logs) "
                "+ (SELECT count(*) FROM taskfiles_rollups)",
            )
            if int(held):
                raise RegistryError(f"{self.location} already holds a registry; copy into an empty database")
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO taskfiles_entries (slug, state, lease, host, row) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    [
                        (check_slug(slug), row["state"], row["lease"], row.get("host"), Jsonb(dict(row)))
                        for slug, row in dump.entries.items()
                    ],
                )
                highs = {**dump.leases}
                for slug, row in dump.entries.items():
                    highs[slug] = max(highs.get(slug, 0), int(row["lease"]))
                cur.executemany(
                    "INSERT INTO taskfiles_leases (slug, high) VALUES (%s, %s)", list(highs.items())
                )
                cur.executemany(
                    "INSERT INTO taskfiles_events "
                    "(seq, time, type, slug, lease, actor, details, change, removed) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [_event_row(e.seq, e) for e in dump.events],
                )
                cur.executemany(
                    "INSERT INTO taskfiles_logs (slug, attempt, position, record, fields) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    [
                        (slug, attempt, position, *_log_columns(record))
                        for (slug, attempt), records in dump.logs.items()
                        for position, record in enumerate(records, 1)
                    ],
                )
            try:
                _insert_rollups(conn, rollup.Rollup.from_dict(dump.rollup))
            except ValueError as exc:
                raise RegistryError(f"the registry copied holds a malformed rollup: {exc}") from None
            top = max([dump.seq, *(e.seq for e in dump.events)])
            if top > 0:
                conn.execute("SELECT setval('taskfiles_txn', %s, true)", (top,))

        self._run(body)

    def repair(self) -> RepairReport:
        """Nothing to rebuild: the database keeps its own consistency (a transaction is all or nothing)."""
        self._connect()
        return RepairReport(needed=False, registry=self.location)


# -- helpers -----------------------------------------------------------------------------------


class _Locked(Mapping[str, RegistryEntry]):
    """The entries a write transaction looks at, each locked (through its lease row) on first
    use; ``leases`` reads the lease highs those locks returned."""

    def __init__(
        self, conn: psycopg.Connection[tuple[Any, ...]], store: PgRegistry, *, share: bool = False
    ) -> None:
        self.conn, self.store, self.share = conn, store, share
        self.read: dict[str, RegistryEntry | None] = {}
        self.high: dict[str, int] = {}
        self.leases = _Leases(self)

    def load(self, slug: str) -> None:
        """Lock ``slug`` and read its entry and lease high (once per transaction).

        The entry is read by a statement of its own once the lock is held: under READ
        COMMITTED a statement that waited for a lock sees the locked row's new version but
        other tables as they were when it began, so a joined read would be stale.
        """
        if slug in self.read:
            return
        mode = "SHARE" if self.share else "UPDATE"
        query = f"SELECT high FROM taskfiles_leases WHERE slug = %s FOR {mode}"
        with self.conn.pipeline():  # one round trip; the read runs once the lock is held
            if not self.share:
                self.conn.execute(
                    "INSERT INTO taskfiles_leases (slug) VALUES (%s) ON CONFLICT DO NOTHING", (slug,)
                )
            lock = self.conn.execute(query, (slug,))
            read = self.conn.execute("SELECT row FROM taskfiles_entries WHERE slug = %s", (slug,))
        row = lock.fetchone()
        self.high[slug] = int(row[0]) if row else 0
        found = read.fetchone()
        self.read[slug] = self.store._entry(slug, found[0]) if found is not None else None

    def _read_entries(self, slugs: list[str]) -> None:
        found = dict(
            self.conn.execute(
                "SELECT slug, row FROM taskfiles_entries WHERE slug = ANY(%s)", (slugs,)
            ).fetchall()
        )
        for slug in slugs:
            row = found.get(slug)
            self.read[slug] = self.store._entry(slug, row) if row is not None else None

    def lock_next(self, slugs: list[str]) -> str | None:
        """Lock the first of ``slugs`` (in their order) not looked at yet, not held by another
        transaction and not visibly live; None when there is none. Its entry is read by a
        statement of its own once the lock is held (the lifecycle decides on it)."""
        row = self.conn.execute(
            "SELECT l.slug, l.high FROM taskfiles_leases l "
            "LEFT JOIN taskfiles_entries e ON e.slug = l.slug "
            "WHERE l.slug = ANY(%s) AND NOT l.slug = ANY(%s) "
            "AND coalesce(e.state, 'released') NOT IN ('claimed', 'running') "
            "ORDER BY array_position(%s, l.slug) LIMIT 1 FOR UPDATE OF l SKIP LOCKED",
            (slugs, list(self.read), slugs),
        ).fetchone()
        if row is None:
            return None
        slug = str(row[0])
        self.high[slug] = int(row[1])
        self._read_entries([slug])
        return slug

    def __getitem__(self, slug: str) -> RegistryEntry:
        self.load(check_slug(slug))
        entry = self.read[slug]
        if entry is None:
            raise KeyError(slug)
        return entry

    def __iter__(self) -> Iterator[str]:  # mutations look slugs up; only a whole read iterates
        slugs = [row[0] for row in self.conn.execute("SELECT slug FROM taskfiles_entries ORDER BY slug")]
        return iter([slug for slug in slugs if slug in self])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, slug: object) -> bool:
        if not isinstance(slug, str):
            return False
        self.load(check_slug(slug))
        return self.read[slug] is not None


class _Leases(Mapping[str, int]):
    """The lease highs of the slugs a transaction locked (locking them on first use)."""

    def __init__(self, rows: _Locked) -> None:
        self.rows = rows

    def __getitem__(self, slug: str) -> int:
        self.rows.load(slug)
        return self.rows.high[slug]

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows.high)

    def __len__(self) -> int:
        return len(self.rows.high)


class _Rows(Mapping[str, RegistryEntry]):
    """Entries read in one go as JSON text, each parsed and made a RegistryEntry on first use."""

    def __init__(self, rows: dict[str, str], store: PgRegistry) -> None:
        self._rows, self._store = rows, store
        self._made: dict[str, RegistryEntry] = {}

    def __getitem__(self, slug: str) -> RegistryEntry:
        entry = self._made.get(slug)
        if entry is None:
            entry = self._made[slug] = self._store._entry(slug, orjson.loads(self._rows[slug]))
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, slug: object) -> bool:
        return slug in self._rows


class _IdEvent:
    """An event and its row id (the feed's position)."""

    def __init__(self, id: int, event: Event) -> None:
        self.id, self.event = id, event


def _event(row: tuple[Any, ...]) -> _IdEvent:
    ident, seq, stamp, kind, slug, lease, actor, details, change, removed = row
    event = Event(
        time=stamp,
        type=kind,
        slug=slug,
        lease=lease,
        actor=Actor.from_dict(actor or {}),
        details=details or {},
        seq=int(seq),
        change=change,
        removed=bool(removed),
    )
    return _IdEvent(int(ident), event)


class _Position:
    """How far a reader of an id-ordered table got. An id is taken when a row is inserted,
    but transactions commit in any order: an id below the highest one read may still
    appear (its transaction was slower). Those ids are kept as gaps and read again until
    they appear, or for ``GAP_WAIT`` seconds (an insert that was rolled back never does)."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.gaps: dict[int, float] = {}  # id -> when it was first found missing

    @classmethod
    def at(cls, last: int, present: Sequence[int]) -> _Position:
        """After ``last``, waiting for the ids of the ``LOOKBACK`` below it that are not
        ``present`` (transactions still running when the reader started)."""
        position, now, known = cls(last), time.monotonic(), set(present)
        lowest = max(last - LOOKBACK, 0) + 1
        position.gaps = {ident: now for ident in range(lowest, last + 1) if ident not in known}
        return position

    def floor(self) -> int:
        """Read the ids above this one."""
        return min(self.gaps) - 1 if self.gaps else self.last

    def admit(self, ids: Sequence[int]) -> set[int]:
        """The ids among ``ids`` not admitted before; remember the ones skipped over."""
        now = time.monotonic()
        fresh = set()
        for ident in sorted(ids):
            if ident > self.last:
                if ident - self.last <= MAX_GAPS:
                    self.gaps.update(dict.fromkeys(range(self.last + 1, ident), now))
                self.last = ident
                fresh.add(ident)
            elif self.gaps.pop(ident, None) is not None:
                fresh.add(ident)
        self.gaps = {ident: t for ident, t in self.gaps.items() if now - t < GAP_WAIT}
        return fresh


class _Seen:
    """Where the live feed is: the events and log lines it reported, and the newest cycle."""

    def __init__(self, store: PgRegistry) -> None:
        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[_Position, str]:
            top = int(_one(conn, "SELECT coalesce(max(id), 0) FROM taskfiles_logs"))
            recent = conn.execute("SELECT id FROM taskfiles_logs WHERE id > %s", (top - LOOKBACK,))
            newest = str(_one(conn, "SELECT coalesce(max(generated_at), '') FROM taskfiles_cycles"))
            return _Position.at(top, [int(row[0]) for row in recent]), newest

        self.events = store._event_position(None)
        self.logs, self.cycle = store._run(body)

    def changes(self, store: PgRegistry) -> Iterator[RegistryChange]:
        """One batch: what was recorded since the last one (possibly nothing)."""
        found = store._events_after(self.events.floor(), None, None)
        fresh = self.events.admit([f.id for f in found])
        events = [f for f in found if f.id in fresh]

        def body(conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[list[tuple[int, str]], str]:
            lines = conn.execute("SELECT id, slug FROM taskfiles_logs WHERE id > %s", (self.logs.floor(),))
            newest = str(_one(conn, "SELECT coalesce(max(generated_at), '') FROM taskfiles_cycles"))
            return [(int(n), str(slug)) for n, slug in lines], newest

        lines, newest = store._run(body)
        logged = self.logs.admit([n for n, _ in lines])
        scopes: set[str] = set()
        slugs: set[str] = set()
        if events:
            scopes.add("registry")
            slugs.update(e.event.slug for e in events if e.event.slug)
        if logged:
            scopes.add("logs")
            slugs.update(slug for n, slug in lines if n in logged)
        if newest != self.cycle:
            scopes.add("cycle")
            self.cycle = newest
        yield RegistryChange(frozenset(scopes), frozenset(slugs), tuple(e.event for e in events))


def _event_row(seq: int, event: Event) -> tuple[Any, ...]:
    from psycopg.types.json import Jsonb

    return (
        seq,
        event.time,
        event.type,
        event.slug,
        event.lease,
        Jsonb(event.actor.to_dict()),
        Jsonb(dict(event.details)),
        Jsonb(dict(event.change)) if event.change is not None else None,
        event.removed,
    )


def _insert_rollups(conn: psycopg.Connection[tuple[Any, ...]], rolled: rollup.Rollup) -> int:
    """Add ``rolled``'s records (those already there stay as they are); how many were new."""
    rows = [(r.key, kind, r.time, json.dumps(r.to_dict())) for kind, r in rolled.records()]
    if not rows:
        return 0
    keys, kinds, times, records = (list(column) for column in zip(*rows, strict=True))
    return int(
        conn.execute(
            "INSERT INTO taskfiles_rollups (key, kind, time, record) "
            "SELECT k, kd, t, r::jsonb FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
            "AS u(k, kd, t, r) ON CONFLICT (key) DO NOTHING",
            (keys, kinds, times, records),
        ).rowcount
    )


def _read_rollups(conn: psycopg.Connection[tuple[Any, ...]]) -> rollup.Rollup:
    rows = conn.execute("SELECT kind, record FROM taskfiles_rollups ORDER BY time, key").fetchall()
    try:
        return rollup.Rollup.from_records((str(kind), record) for kind, record in rows)
    except ValueError as exc:
        raise RegistryError(f"taskfiles_rollups holds a row that cannot be read: {exc}") from None


def _log_columns(record: LogRecord) -> tuple[Any, Any]:
    """The ``record`` and ``fields`` columns of a log line (fields NULL when it has none)."""
    from psycopg.types.json import Jsonb

    data = record.to_dict()
    fields = data.pop("fields", None)
    return Jsonb(data), Jsonb(fields) if fields else None


def _log_object(record: Mapping[str, Any], fields: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A log line's JSON form from its two columns."""
    return {**record, "fields": fields} if fields else record


def _one(conn: psycopg.Connection[tuple[Any, ...]], query: str, args: Sequence[Any] = ()) -> Any:
    row = conn.execute(query, args).fetchone()
    assert row is not None
    return row[0]


def _last_seq(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    last, called = conn.execute("SELECT last_value, is_called FROM taskfiles_txn").fetchone() or (0, False)
    return int(last) if called else 0


def _notify(conn: psycopg.Connection[tuple[Any, ...]], payload: Mapping[str, Any]) -> None:
    text = json.dumps(payload, separators=(",", ":"))
    if len(text) > 7000:  # NOTIFY payloads are capped at 8,000 bytes: ids only, and fewer of them
        text = json.dumps({k: v for k, v in payload.items() if k != "slugs"})
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, text))
