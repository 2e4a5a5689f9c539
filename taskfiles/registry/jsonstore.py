"""The embedded registry store: JSON files in one folder.

    registry/registry.json      entries and lease history (see ``document``)
    registry/registry.json.bak  the previous good registry.json (a hard link)
    registry/registry.lock      the lock every write takes (never the data file)
    registry/events.jsonl       the audit trail (see ``eventlog``)
    registry/rollups.json       what gc folded for metrics before archiving (see ``rollup``)
    registry/logs/<slug>/<attempt>.log   attempt logs (see ``runlog``)

Every change goes through ``_commit``: under an exclusive flock on the lock file,
load, run a pure mutation, validate, keep the loaded file as the backup, replace
registry.json atomically, then append the events. Log lines take the lock shared,
so many workers log at once while no claim can slip between a lease check and
the append. Readers take no lock: a rename is atomic, so they see a whole file.

A registry.json that does not parse is never overwritten: every operation fails
naming it, its backup and ``task registry repair``.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .. import atomic, folders
from ..errors import RegistryError, TaskfilesError, UsageError, described
from ..slugs import check_slug
from . import eventlog, journal, jsonl, lifecycle
from .document import Codec, Document, DocumentError, Rows
from .interface import Clock, EventPage, GcReport, Registry, RegistryChange, keeps_log
from .records import Actor, Event, LogRecord, RegistryEntry, format_time, parse_time
from .transaction import Change, EventOnly, Mutation, Snapshot, apply

if TYPE_CHECKING:
    # Imported where used: logs, gc's rollup and repair are ~3 ms that a fact's write does not need.
    from . import rollup
    from .cyclerecord import CycleRecord
    from .dump import Dump
    from .repair import RepairReport
    from .runlog import LogLine, LogStats

T = TypeVar("T")
# A snapshot is written once the journal after it outgrows half the snapshot (at least
# this many bytes): a write costs one line, a reader at most 1.5 snapshots.
COMPACT_AFTER = 256 * 1024
_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


class JsonRegistry(Registry):
    """The registry as files in ``root`` (created on the first write)."""

    def __init__(self, root: Path, *, clock: Clock | None = None, actor: Actor | None = None) -> None:
        super().__init__(clock=clock, actor=actor)
        self.root = Path(root)
        self.data = self.root / "registry.json"
        self.backup = self.root / "registry.json.bak"
        self.lock = self.root / "registry.lock"
        self.events_path = self.root / "events.jsonl"
        self.rollups_path = self.root / "rollups.json"
        self._codec = Codec()
        self._known: _Known | None = None  # what this process last read (see ``_current``)
        self._mutex = threading.Lock()  # one process may use the store from several threads
        self._codec_lock = threading.Lock()  # the codec remembers the last file it saw

    @property
    def location(self) -> str:
        """The registry folder."""
        return str(self.root)

    # -- loading -----------------------------------------------------------------------------

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._read_error(path, exc) from None

    def _read_error(self, path: Path, exc: OSError) -> RegistryError:
        return RegistryError(
            f"cannot read {path.as_posix()}: {exc.strerror}; check the folder, "
            "or set TASKFILES_REGISTRY or registry_dir"
        )

    def _current(self) -> _Known:
        """The registry as of the journal's last complete line: what this process knew,
        brought up to date with the lines written since (a re-read when the snapshot was
        replaced or the journal rewritten)."""
        with self._mutex:
            known = self._known
            if known is not None and known.snapshot == _identity(self.data):
                caught_up = self._catch_up(known)
                if caught_up is not None:
                    self._known = caught_up
                    return caught_up
            self._known = self._reload()
            return self._known

    def _catch_up(self, known: _Known) -> _Known | None:
        """``known`` with the journal lines after it; None when the journal is not the one it
        read (rewritten, or its last line read is gone) or a transaction is missing."""
        tail = self._journal_from(known.offset, known.mark)
        if tail is None or tail.inode != known.inode:
            return None
        later = journal.consecutive(tail.transactions, known.doc.seq)
        if later is None:
            return None
        if tail.end == known.offset:
            return known
        return replace(known, doc=known.doc.replayed(later), offset=tail.end, mark=tail.mark or known.mark)

    def _journal_from(self, offset: int, mark: jsonl.Mark | None) -> _Tail | None:
        """The journal from ``offset``; None when ``offset`` does not end the line ``mark``
        names (without a mark: when the byte before it is not a newline)."""
        start = mark.start if mark else max(offset - 1, 0)
        try:
            inode, data = journal.read_from(self.events_path, start)
        except OSError as exc:
            raise self._read_error(self.events_path, exc) from None
        skip = offset - start
        if mark is not None and not mark.holds(data, offset):
            return None
        if mark is None and data[:skip] != b"\n" * skip:
            return None
        transactions, end, last = journal.scan(data[skip:], offset)
        return _Tail(inode, transactions, end, last)

    def _reload(self) -> _Known:
        for _ in range(3):  # gc may rewrite the journal between reading the snapshot and it
            known = self._read_all()
            if known is not None:
                return known
        raise RegistryError(
            f"{self.events_path} does not continue {self.data}: transactions after it are missing; "
            "run 'task registry repair'"
        )

    def _read_all(self) -> _Known | None:
        identity = _identity(self.data)
        data = self._read(self.data)
        if data is None:
            self._refuse_missing()
            doc = Document()
        else:
            try:
                with self._codec_lock:
                    doc = self._codec.parse(data)
            except DocumentError as exc:
                raise self._corrupt(str(exc)) from None
        found = self._journal_after(doc, doc.journal) if doc.journal else None
        if found is None:
            found = self._journal_after(doc, 0)
        if found is None:
            return None
        tail, later = found
        return _Known(
            doc.replayed(later),
            identity,
            size=len(data) if data is not None else 0,
            covered=doc.journal or 0,
            current=data is not None and doc.journal is not None,
            inode=tail.inode,
            offset=tail.end,
            mark=tail.mark,
        )

    def _journal_after(self, doc: Document, offset: int) -> tuple[_Tail, list[journal.Transaction]] | None:
        """The journal's transactions after ``doc`` read from ``offset``; None when the bytes
        there do not continue ``doc`` (not a line boundary, or a transaction is missing)."""
        tail = self._journal_from(offset, None)
        later = journal.consecutive(tail.transactions, doc.seq) if tail else None
        return (tail, later) if tail is not None and later is not None else None

    def _refuse_missing(self) -> None:
        # Starting over would restart every lease at 1 and let a stale worker write again;
        # a journal of transactions from the first one on is complete without a snapshot.
        kept = [p.name for p in (self.backup, *sorted(self.root.glob(eventlog.ARCHIVE_GLOB))) if p.exists()]
        if kept:
            raise RegistryError(
                f"{self.data} is missing but {', '.join(kept)} exists; "
                "run 'task registry repair' to rebuild it (starting empty would reuse leases)"
            )
        data = self._read(self.events_path) or b""
        first = next((line for line in journal.lines(data) if line.strip()), None)
        if first is not None and not first.startswith(b'{"seq":1,'):
            raise RegistryError(
                f"{self.data} is missing but {self.events_path.name} holds history; "
                "run 'task registry repair' to rebuild it (starting empty would reuse leases)"
            )

    def _corrupt(self, problem: str) -> RegistryError:
        try:
            saved = format_time(datetime.fromtimestamp(self.backup.stat().st_mtime).astimezone())
            backup = f"the last good copy is {self.backup} (saved {saved})"
        except OSError:
            backup = f"there is no backup ({self.backup} is missing)"
        return RegistryError(
            f"{self.data}: {problem}. The file was left untouched; {backup}; run "
            "'task registry repair' to rebuild the registry from it and events.jsonl"
        )

    def _snapshot(self, doc: Document) -> Snapshot:
        entries = _LazyEntries(doc.rows, self)
        return Snapshot(entries, doc.leases, self.clock(), self.actor, doc.seq)

    def snapshot(self) -> Snapshot:
        """Every entry and lease as last written."""
        return self._snapshot(self._current().doc)

    def unreleased(self) -> dict[str, RegistryEntry]:
        """Every entry but the released ones; a released entry's line is passed over unread."""
        rows = self._current().doc.rows
        entries = _LazyEntries(rows, self)
        return {slug: entries[slug] for slug in rows.unreleased()}

    # -- writing -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self, *, shared: bool = False) -> Iterator[None]:
        """Hold the registry lock; OSError inside becomes a RegistryError naming the folder."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with atomic.locked(self.lock, shared=shared):
                yield
        except OSError as exc:
            raise self._write_error(exc) from exc

    def _write_error(self, exc: OSError) -> RegistryError:
        if exc.errno in _READ_ONLY:
            why = f"read-only or not permitted ({exc.strerror})"
        elif exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            why = f"no space left ({exc.strerror})"
        else:
            why = described(exc)
        return RegistryError(
            f"cannot write registry at {self.root.as_posix()}: {why}; free space or set "
            "TASKFILES_REGISTRY or registry_dir to a writable folder"
        )

    def transact(self, fn: Mutation[T]) -> T:
        """Run ``fn`` under the lock and write its plan (see ``Registry.transact``)."""
        with self._writing():
            known = self._current()
            snap = self._snapshot(known.doc)
            plan = fn(snap)
            if plan.changes:
                self._commit(known, snap, plan.changes)
            return plan.result

    def _commit(self, known: _Known, snap: Snapshot, changes: Sequence[Change | EventOnly]) -> _Known:
        """The one place a transaction is written (lock held): its line in the journal."""
        seq = known.doc.seq + 1
        applied = apply(snap, changes, seq)
        line = journal.encode(seq, snap.stamp, snap.actor, applied.changes)
        return self._committed(known, line, known.doc.applied(applied, seq, snap.stamp))

    def _committed(self, known: _Known, line: bytes, doc: Document) -> _Known:
        end, inode = journal.commit(self.events_path, known.offset, line)
        mark = jsonl.Mark.of(known.offset, line)
        with self._mutex:
            self._known = replace(known, doc=doc, offset=end, inode=inode, mark=mark)
        # A snapshot in the older format is replaced at once: older versions refuse the new
        # one, and must not go on reading a registry.json that no longer has every write.
        if not known.current or end - known.covered > max(COMPACT_AFTER, known.size // 2):
            self._compact_quietly()
        return self._known

    def _compact_quietly(self) -> None:
        # The transaction is committed in the journal already: a snapshot that cannot be
        # written now is written by a later transaction, and readers read the longer tail.
        with contextlib.suppress(OSError):
            self._compact()

    def checkpoint(self) -> None:
        """Write registry.json now, covering every committed transaction (writes do this
        on their own once the journal after the snapshot has grown)."""
        with self._writing():
            self._current()
            self._compact()

    def _compact(self) -> None:
        """Write the snapshot of everything committed (lock held), keeping the last as the backup."""
        known = self._known
        assert known is not None
        with self._codec_lock:
            rendered = self._codec.render(replace(known.doc, journal=known.offset))
            fresh = self._codec.parse(rendered)  # the rendered rows, not an overlay that keeps growing
        if known.snapshot is not None:
            atomic.keep_backup(self.data, self.backup)
        atomic.atomic_write(self.data, rendered, tmp=self.root / "registry.json.tmp")
        with self._mutex:
            self._known = replace(
                known,
                doc=fresh,
                snapshot=_identity(self.data),
                size=len(rendered),
                covered=known.offset,
                current=True,
            )

    # -- events ------------------------------------------------------------------------------

    def events(self, slug: str | None = None, since: datetime | None = None) -> EventPage:
        """Recorded events for ``slug`` (None: all) from ``since`` on, oldest first."""
        try:
            found, warnings = eventlog.read(self.events_path)
        except OSError as exc:
            raise RegistryError(f"cannot read {self.events_path}: {exc.strerror}") from None
        kept = tuple(e for e in found if _wanted(e, slug, since))
        return EventPage(kept, tuple(warnings))

    def follow_events(
        self, slug: str | None = None, since: datetime | None = None, *, poll: float = 0.5
    ) -> Iterator[Event]:
        """Events as they are recorded (those from ``since`` first; None: only new ones)."""
        events = eventlog.follow(self.events_path, from_start=since is not None, poll=poll)
        return (event for event in events if _wanted(event, slug, since))

    def watch(self, stop: threading.Event) -> Iterator[RegistryChange]:
        """Changes to this folder's files as they happen (inotify through watchfiles), with the
        events appended to ``events.jsonl`` since this call; the folder is waited for until
        it exists."""
        return self._watch(stop, eventlog.Tail(self.events_path))

    def _watch(self, stop: threading.Event, tail: eventlog.Tail) -> Iterator[RegistryChange]:
        from watchfiles import watch as watch_files  # only live views pay for it

        # Until a watch is in place, writes raise no inotify event: the first batch of each
        # watch (a timeout at the latest) also reads what was appended before it began.
        appeared = False
        while not stop.is_set():
            if not self.root.is_dir():  # nothing written yet: look 5 times a second
                appeared = appeared or not stop.wait(0.2)
                continue
            try:
                batches = watch_files(
                    self.root,
                    watch_filter=lambda _change, path: _scope(self.root, path) is not None,
                    stop_event=stop,
                    debounce=250,
                    step=30,
                    rust_timeout=1000,
                    yield_on_timeout=True,
                    raise_interrupt=False,
                )
                first = True
                for batch in batches:
                    change = self._change({path for _, path in batch}, tail, appeared, first)
                    if change.scopes:
                        yield change
                    appeared = first = False
                    if not self.root.is_dir():
                        break
            except (OSError, RuntimeError):  # the folder vanished mid-watch, inotify limits
                stop.wait(0.5)

    def _change(self, paths: set[str], tail: eventlog.Tail, appeared: bool, first: bool) -> RegistryChange:
        scopes: set[str] = {"registry"} if appeared else set()
        slugs: set[str] = set()
        for path in paths:
            scope = _scope(self.root, path)
            if scope is None:
                continue
            scopes.add(scope[0])
            if scope[1]:
                slugs.add(scope[1])
        events = tuple(tail.read()) if "registry" in scopes or first else ()
        if events:
            scopes.add("registry")
        slugs.update(e.slug for e in events if e.slug)
        return RegistryChange(frozenset(scopes), frozenset(slugs), events)

    # -- logs --------------------------------------------------------------------------------

    def _append_log(self, slug: str, lease: int | None, records: Sequence[LogRecord]) -> int:
        from . import runlog

        check_slug(slug)
        with self._writing(shared=True):
            snap = self.snapshot()
            entry = snap.get(slug) if lease is None else lifecycle.fenced(snap, slug, lease)
            path = runlog.log_path(self.root, slug, entry.attempt)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.append(path, runlog.encode(records))
            return entry.attempt

    def _logged_attempts(self, slug: str) -> list[int]:
        from . import runlog

        return runlog.attempts(self.root, check_slug(slug))

    def _read_log(self, slug: str, attempt: int, after: int) -> tuple[list[LogLine], int, list[str]]:
        from . import runlog

        try:
            return runlog.read_after(runlog.log_path(self.root, slug, attempt), after)
        except OSError as exc:
            raise RegistryError(f"cannot read the log of '{slug}': {exc.strerror}") from None

    def log_stats(self, slug: str, *, attempt: int | None = None) -> LogStats:
        """One attempt's stats from its file; ``bytes`` is the file's size."""
        from . import runlog

        number = self._log_attempt(slug, attempt)
        lines, _, _ = self._read_log(slug, number, 0)
        path = runlog.log_path(self.root, slug, number)
        size = path.stat().st_size if path.is_file() else 0
        return runlog.stats(slug, number, (line.record for line in lines), size)

    def _follow_log(self, slug: str, attempt: int, poll: float) -> Iterator[LogRecord]:
        """The file's lines as they come (``jsonl.follow``: only new bytes are read)."""
        from . import runlog

        path = runlog.log_path(self.root, slug, attempt)

        def over() -> bool:
            return self._attempt_over(slug, attempt)

        lines = jsonl.follow(path, from_start=True, poll=poll, done=over)
        records = (runlog.decode(obj)[0] for _, obj in lines)
        return (record for record in records if record is not None)

    # -- retention and repair ----------------------------------------------------------------

    def gc(self, older_than_days: float = 30.0, *, log_retention_days: float = 0.0) -> GcReport:
        """Remove released entries (and their logs) and archive events older than the cutoff,
        and attempt logs past ``log_retention_days`` (see ``Registry.gc``); the removed
        folders and files are listed in ``logs_removed``. Journal lines the snapshot covers
        and that record no event (plain heartbeats) are dropped."""
        if older_than_days < 0:
            raise UsageError(f"older_than_days must not be negative, not {older_than_days}")
        if log_retention_days < 0:
            raise UsageError(f"log_retention_days must not be negative, not {log_retention_days}")
        with self._writing():
            known = self._current()
            snap = self._snapshot(known.doc)
            cutoff = snap.now - timedelta(days=older_than_days)
            stale = _released_before(known.doc.rows, cutoff)
            reason = {"reason": f"released before {format_time(cutoff)}"}
            folded = self._fold(snap, stale, cutoff)  # before anything it folds goes away
            if stale:
                known = self._commit(known, snap, [Change(s, None, "task.pruned", reason) for s in stale])
            self._compact()  # the snapshot covers every line: the journal may be rewritten
            removed, size = folders.prune(
                self.root, ("logs",), set(stale), set(known.doc.rows) - set(stale), cutoff
            )
            if log_retention_days:
                expired, freed = self._expire_logs(
                    self._snapshot(known.doc).entries, snap.now - timedelta(days=log_retention_days)
                )
                removed, size = [*removed, *expired], size + freed
            count, target, warnings = eventlog.archive(self.root, self.events_path, cutoff, snap.now)
            with self._mutex:
                self._known = None  # the journal was rewritten: read it again
            self._current()
            self._compact()  # the snapshot names the rewritten journal's length
        return GcReport(
            tuple(stale),
            tuple(removed),
            size,
            count,
            str(target) if target else None,
            tuple(warnings),
            rolled_up=folded,
        )

    def _expire_logs(self, entries: Mapping[str, RegistryEntry], cutoff: datetime) -> tuple[list[str], int]:
        """Remove the attempt logs whose last line is older than ``cutoff`` (lock held: no line
        is appended meanwhile), but what ``keeps_log`` keeps; return them and their bytes. A
        log without a readable line is as old as its file."""
        from . import runlog

        removed, size, stamp = [], 0, format_time(cutoff)
        folder = self.root / "logs"
        for slug in sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else ():
            for attempt in runlog.attempts(self.root, slug):
                path = runlog.log_path(self.root, slug, attempt)
                if keeps_log(entries.get(slug), attempt) or not _older(path, stamp, cutoff):
                    continue
                size += path.stat().st_size
                path.unlink()
                removed.append(path.relative_to(self.root).as_posix())
            with contextlib.suppress(OSError):  # a folder with logs left (or gone) stays as it is
                (folder / slug).rmdir()
        return removed, size

    def _fold(self, snap: Snapshot, stale: Sequence[str], cutoff: datetime) -> int:
        """Write the rollup with the runs and retries of the events older than ``cutoff`` and
        the costs of the entries in ``stale`` (lock held); return how many records are new.

        Written before the journal is cut: a crash after it leaves those records in both
        places, and their keys make them one. The first fold also reads the archives of
        a gc that ran before rollups existed.
        """
        from . import rollup

        have, first = self.rollups(), not self.rollups_path.exists()
        if first:  # the archives and the live journal, each line once
            events = eventlog.events_in(eventlog.history_lines(self.root, self.events_path)[0])
        else:
            events = list(self.events().events)
        stamp = format_time(snap.now)
        gone = [snap.entries[slug] for slug in stale]
        removed = tuple(rollup.Removed(e.slug, e.lease, stamp, e.total_cost_usd) for e in gone)
        old = rollup.fold(e for e in events if _before(e, cutoff))
        merged = have.merged(old).merged(rollup.Rollup(removed=removed))
        if first or len(merged) > len(have):
            self._write_rollups(merged)
        return len(merged) - len(have)

    def _write_rollups(self, rolled: rollup.Rollup) -> None:
        data = json.dumps(rolled.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        atomic.atomic_write(self.rollups_path, data)

    def rollups(self) -> rollup.Rollup:
        """``rollups.json`` (empty before the first gc); RegistryError when it cannot be read."""
        from . import rollup

        raw = self._read(self.rollups_path)
        if raw is None:
            return rollup.Rollup()
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return rollup.Rollup.from_dict(data)
        except ValueError as exc:
            raise RegistryError(
                f"{self.rollups_path} cannot be read ({exc}); it holds the run history gc "
                "folded for 'task metrics': restore it from a backup, or move it aside to start "
                "that history over"
            ) from None

    def write_cycle(self, record: CycleRecord, *, elapsed: Callable[[], float] | None = None) -> None:
        """Replace ``snapshot.json``; readers see the old or the new file, never half of one."""
        data = record.to_json(elapsed)
        with self._writing(shared=True):
            atomic.atomic_write(self.root / "snapshot.json", data)

    def read_cycle(self, *, rows: bool = True) -> CycleRecord | None:
        """``snapshot.json`` as written by the last cycle; None when absent or unreadable
        (the next cycle rewrites it)."""
        from .cyclerecord import CycleRecord

        raw = self._read(self.root / "snapshot.json")
        return CycleRecord.from_json(raw, rows=rows) if raw is not None else None

    def dump(self) -> Dump:
        """Entries, lease history, every event (archives included) and every attempt's log."""
        from . import runlog
        from .dump import Dump

        snap = self.snapshot()
        lines, _ = eventlog.history_lines(self.root, self.events_path)
        leases = dict(snap.leases)
        for slug, entry in snap.entries.items():
            leases[slug] = max(leases.get(slug, 0), entry.lease)
        logs: dict[tuple[str, int], tuple[LogRecord, ...]] = {}
        folder = self.root / "logs"
        for slug in sorted(p.name for p in folder.iterdir()) if folder.is_dir() else ():
            for attempt in runlog.attempts(self.root, slug):
                records, _ = runlog.read(runlog.log_path(self.root, slug, attempt), None, None)
                logs[(slug, attempt)] = tuple(records)
        return Dump(
            {slug: entry.to_dict() for slug, entry in snap.entries.items()},
            leases,
            tuple(eventlog.events_in(lines)),
            logs,
            snap.seq,
            self.rollups().to_dict(),
        )

    def load(self, dump: Dump) -> None:
        """Write ``dump`` into this empty folder: the journal (each transaction's events on
        one line), a snapshot covering it, and the logs."""
        from . import runlog

        with self._writing():
            held = [
                p.name
                for p in (self.data, self.events_path, self.root / "logs", self.rollups_path)
                if p.exists()
            ]
            if held:
                raise RegistryError(
                    f"{self.root.as_posix()} already holds a registry ({', '.join(held)}); "
                    "copy into an empty folder"
                )
            carried = _carried(dump)  # refused before anything is written
            data = b"".join(_transaction_lines(dump.events))
            atomic.atomic_write(self.events_path, data)
            seq = max([dump.seq, *(e.seq for e in dump.events)])
            rows = {slug: dict(row) for slug, row in dump.entries.items()}
            doc = Document(seq, format_time(self.clock()), dict(dump.leases), Rows(rows), journal=len(data))
            atomic.atomic_write(self.data, Codec().render(doc))
            if len(carried):
                self._write_rollups(carried)
            for (slug, attempt), records in dump.logs.items():
                path = runlog.log_path(self.root, check_slug(slug), attempt)
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic.atomic_write(path, runlog.encode(records))
            self._known = None

    def repair(self) -> RepairReport:
        """Rebuild registry.json from the backup and the journal when it cannot be read."""
        from .repair import RepairReport

        if not self.root.exists():  # nothing was ever written: nothing to repair, nothing to create
            return RepairReport(needed=False, registry=str(self.data))
        with self._writing():
            problem = self._problem()
            if problem is None:
                return RepairReport(needed=False, registry=str(self.data))
            return self._rebuild(problem)

    def _problem(self) -> str | None:
        with self._mutex:
            self._known = None
        try:
            known = self._current()
            for row in known.doc.rows.values():
                RegistryEntry.from_dict(row)
        except (RegistryError, DocumentError) as exc:
            return str(exc)
        return None

    def _rebuild(self, problem: str) -> RepairReport:
        from .repair import RepairReport, rebuild

        base, notes = self._backup_document()
        lines, warnings = eventlog.history_lines(self.root, self.events_path)
        result = rebuild(base, lines, also=self._readable_snapshot())
        stamp = format_time(self.clock())
        aside = None
        if self.data.exists():
            aside = self.root / f"registry.json.corrupt-{stamp.replace(':', '')}"
            self.data.replace(aside)
        doc, seq = result.document, result.document.seq + 1
        details = {"problem": problem, "from_backup": base is not None, "replayed": result.replayed}
        repaired = {"slug": None, "type": "registry.repaired", "lease": None, "details": details}
        line = journal.encode(seq, stamp, self.actor, [repaired])
        offset = len(journal.complete(self._read(self.events_path) or b""))
        # Not current: the commit writes the snapshot at once (and sets the journal's inode).
        start = _Known(doc, None, 0, 0, False, None, offset)
        self._committed(start, line, replace(doc, seq=seq, updated_at=stamp))
        if not self.data.exists():  # the quiet compaction failed: this time say why
            self._compact()
        return RepairReport(
            needed=True,
            registry=str(self.data),
            problem=problem,
            from_backup=base is not None,
            entries=len(doc.rows),
            events_replayed=result.replayed,
            moved_aside=str(aside) if aside else None,
            unrecovered=(*notes, *result.unrecovered),
            warnings=tuple(warnings),
        )

    def _readable_snapshot(self) -> Document | None:
        """registry.json, when it parses (its leases and seq must not go back in a repair)."""
        try:
            data = self._read(self.data)
            return Codec().parse(data) if data is not None else None
        except (DocumentError, RegistryError):
            return None

    def _backup_document(self) -> tuple[Document | None, list[str]]:
        data = self._read(self.backup)
        if data is None:
            return None, [f"no backup ({self.backup.name} is missing): rebuilt from the event log alone"]
        try:
            return Codec().parse(data), []
        except DocumentError as exc:
            return None, [f"{self.backup.name} is unreadable too ({exc}): rebuilt from the event log alone"]


@dataclass(frozen=True)
class _Known:
    """The registry as this process last read it: the document with the journal replayed."""

    doc: Document
    snapshot: tuple[int, int, int] | None  # registry.json as read (inode, size, mtime); None: absent
    size: int  # of registry.json
    covered: int  # the journal bytes registry.json covers
    current: bool  # registry.json is in this version's format (it names the journal it covers)
    inode: int | None  # the journal's (None: there is none yet)
    offset: int  # the end of the last complete journal line replayed
    mark: jsonl.Mark | None = None  # that line, to prove it is still there


class _Tail(NamedTuple):
    """Journal lines read from an offset."""

    inode: int | None
    transactions: list[journal.Transaction]
    end: int
    mark: jsonl.Mark | None


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:  # absent, or unreadable: reading it says which
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class _LazyEntries(Mapping[str, RegistryEntry]):
    """Entries read from their rows on first use: a write touches a few of 1,000."""

    def __init__(self, rows: Mapping[str, dict[str, Any]], store: JsonRegistry) -> None:
        self._rows = rows
        self._store = store
        self._made: dict[str, RegistryEntry] = {}

    def __getitem__(self, slug: str) -> RegistryEntry:
        entry = self._made.get(slug)
        if entry is None:
            try:
                entry = RegistryEntry.from_dict(self._rows[slug])
            except (TaskfilesError, DocumentError) as exc:
                raise self._store._corrupt(str(exc)) from None
            self._made[slug] = entry
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, slug: object) -> bool:
        return slug in self._rows


def _transaction_lines(events: Sequence[Event]) -> list[bytes]:
    """Journal lines for ``events``: those of one transaction (one ``seq``) on one line."""
    lines = []
    for seq, group in itertools.groupby(events, key=lambda e: e.seq):
        batch = list(group)
        changes = [_change(e) for e in batch]
        lines.append(journal.encode(seq, batch[0].time, batch[0].actor, changes))
    return lines


def _change(event: Event) -> dict[str, Any]:
    change: dict[str, Any] = {"slug": event.slug, "type": event.type, "lease": event.lease}
    if event.details:
        change["details"] = dict(event.details)
    change.update(event.change or {})
    if event.removed:
        change["removed"] = True
    return change


def _wanted(event: Event, slug: str | None, since: datetime | None) -> bool:
    if slug is not None and event.slug != slug:
        return False
    if since is None:
        return True
    if since.tzinfo is None:  # registry times are UTC; a naive time is read as UTC too
        since = since.replace(tzinfo=UTC)
    try:
        return parse_time(event.time) >= since
    except ValueError:
        return False


def _carried(dump: Dump) -> rollup.Rollup:
    """The dump's rollup, read (RegistryError when it is not one) before anything is written."""
    from . import rollup

    try:
        return rollup.Rollup.from_dict(dump.rollup)
    except ValueError as exc:
        raise RegistryError(f"the registry copied holds a malformed rollup: {exc}") from None


def _before(event: Event, cutoff: datetime) -> bool:
    try:
        return parse_time(event.time) < cutoff
    except ValueError:
        return False  # an unreadable time: archive keeps its line in place, so no fold either


def _older(path: Path, stamp: str, cutoff: datetime) -> bool:
    """Whether the log at ``path`` last logged before ``stamp`` (``cutoff`` formatted)."""
    from . import runlog

    last = runlog.last_time(path)
    if last is not None:
        return last < stamp  # registry times are one format: they sort as text
    return datetime.fromtimestamp(path.stat().st_mtime, UTC) < cutoff


def _released_before(rows: Mapping[str, dict[str, Any]], cutoff: datetime) -> list[str]:
    stale = []
    for slug, row in rows.items():
        stamp = row.get("updated_at")
        if row.get("state") == "released" and isinstance(stamp, str) and parse_time(stamp) < cutoff:
            stale.append(slug)
    return sorted(stale)


_OWN_FILES = {"registry.json": "registry", "events.jsonl": "registry", "snapshot.json": "cycle"}


def _scope(root: Path, path: str) -> tuple[str, str | None] | None:
    """What a changed path under ``root`` touches, and for which slug; None: not the store's."""
    parts = Path(path).relative_to(root).parts if Path(path).is_relative_to(root) else ()
    if not parts:
        return None
    if parts[0] == "logs":  # logs/ alone: a new folder whose contents inotify may have missed
        name = parts[-1]
        if name.endswith((".tmp", ".lock")) or name.startswith(".#"):
            return None
        return "logs", parts[1] if len(parts) > 1 else None
    scope = _OWN_FILES.get(parts[0]) if len(parts) == 1 else None
    return (scope, None) if scope else None
