"""``events.jsonl``: the journal read as the audit trail, and its archives.

Each line is one registry transaction (see ``journal``); its changes that carry a
``type`` are the events (see ``records.Event``), each with what it changed in
its entry::

    {"time":"...","type":"task.claimed","slug":"fix-login","lease":4,
     "actor":{"who":"agent-7","host":"ci-1","pid":4242},"details":{"worker":"w1"},
     "seq":17,"change":{"set":{"state":"claimed","lease":4,...}}}

Types: ``task.claimed``, ``task.started``, ``task.heartbeat`` (only the first of
an attempt and those with a note: the rest would drown the trail; the journal
keeps the others as silent writes, which readers skip and gc drops),
``task.exited``, ``task.failed`` (no exit record: worker gone, stalled),
``task.released``, ``task.stopped``, ``task.retry_scheduled``, ``task.parked``,
``task.unparked``, the runtime facts ``task.note``, ``task.progress``,
``task.blocker``, ``task.evidence``, ``task.artifact``, and ``task.pruned`` (gc)
and ``registry.repaired``. Log lines are not events; they live in ``logs/``.

The journal line is the commit: the trail shows every change that happened and
none that did not. Lines from before the journal (one event each, with the
whole ``entry``) are read alike. ``gc`` moves old lines into
``events-YYYYMMDD.jsonl.gz`` (gzip members appended per run).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import atomic
from . import journal, jsonl
from .records import Event, parse_time

ARCHIVE_GLOB = "events-*.jsonl.gz"


def decode(lines: jsonl.Lines) -> tuple[list[Event], list[str]]:
    """The events among parsed lines, and a warning (file:line) for each line skipped."""
    events, problems = [], []
    for number, obj in lines.items:
        found = _events(obj)
        if found is None:
            problems.append((number, "not an event or a transaction (needs 'time' and 'type' or 'changes')"))
        else:
            events += found
    return events, lines.warnings(problems)


def _events(obj: dict[str, Any]) -> list[Event] | None:
    try:
        return journal.events_of(obj)
    except (TypeError, ValueError, AttributeError, KeyError):
        return None


def _complete(path: Path) -> jsonl.Lines:
    """The complete lines of ``path`` (an unterminated tail is a write not yet committed)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return jsonl.Lines(path.as_posix(), (), ())
    return jsonl.parse(journal.complete(data), path.as_posix())


def read(path: Path) -> tuple[list[Event], list[str]]:
    """Every event in ``path``, and warnings for the lines skipped."""
    return decode(_complete(path))


def history_lines(root: Path, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The parsed lines of the archives (oldest first) and then of ``path``, each once (a gc
    cut short leaves lines in both places): what repair replays."""
    found: list[dict[str, Any]] = []
    warnings: list[str] = []
    for lines in [*_archives(root, warnings), _complete(path)]:
        found += [obj for _, obj in lines.items]
        warnings += lines.warnings()
    return _unique(found), warnings


def _unique(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each line once: a transaction by its number, an older event line by all it says."""
    seen: set[Any] = set()
    kept = []
    for obj in objs:
        key = _seq(obj) if journal.is_transaction(obj) else json.dumps(obj, sort_keys=True)
        if key not in seen:
            seen.add(key)
            kept.append(obj)
    return kept


def events_in(lines: list[dict[str, Any]]) -> list[Event]:
    """The events the parsed lines record, in order (silent writes and bad lines have none)."""
    return [event for obj in lines for event in _events(obj) or ()]


def _archives(root: Path, warnings: list[str]) -> list[jsonl.Lines]:
    parsed = []
    for archive in sorted(root.glob(ARCHIVE_GLOB)):
        try:
            data, problem = _members(archive.read_bytes())
        except OSError as exc:
            warnings.append(f"{archive}: unreadable archive ({exc.strerror}); skipped")
            continue
        if problem:
            warnings.append(f"{archive}: {problem}; the members before it are read")
        parsed.append(jsonl.parse(data, str(archive)))
    return parsed


def _members(data: bytes) -> tuple[bytes, str | None]:
    """The text of each whole gzip member of ``data`` (gc appends one a run), and what stopped
    the reading early: a member cut short by a crash costs that member, not the file."""
    out: list[bytes] = []
    while data:
        member = zlib.decompressobj(wbits=31)
        try:
            text = member.decompress(data)
        except zlib.error as exc:
            return b"".join(out), f"a damaged member ({exc})"
        if not member.eof:
            return b"".join(out), "a member cut short"
        out.append(text)
        data = member.unused_data
    return b"".join(out), None


def follow(path: Path, *, from_start: bool, poll: float) -> Iterator[Event]:
    """Events as they are appended to ``path`` (from this call on), each once even across a gc rewrite."""
    return _poll(Tail(path, from_start=from_start), poll)


def _poll(tail: Tail, poll: float) -> Iterator[Event]:
    while True:
        yield from tail.read()
        time.sleep(poll)


class Tail:
    """The events appended to ``path`` since the last read (complete lines only), each once:
    after a rewrite (gc) only those newer than the last one seen; after the last line read
    was cut back and written over, that line's number again."""

    def __init__(self, path: Path, *, from_start: bool = False) -> None:
        self.lines = jsonl.Tail(path, from_start)
        self.last_seq = _seq(self.lines.last) if self.lines.last else 0
        self.before_last = self.last_seq  # the newest seq seen before the last line's
        self.generation, self.skip_upto = 0, -1

    def read(self) -> list[Event]:
        """The new events, oldest first."""
        return [event for obj in self.lines.read_new() for event in self._admit(obj)]

    def _admit(self, obj: dict[str, Any]) -> list[Event]:
        if self.lines.generation != self.generation:  # rewritten: its first lines were seen already
            self.generation = self.lines.generation
            self.skip_upto = self.before_last if self.lines.replaced_last else self.last_seq
        seq = _seq(obj)
        if seq <= self.skip_upto:
            return []
        self.before_last, self.last_seq = self.last_seq, max(self.last_seq, seq)
        return _events(obj) or []


def _seq(obj: dict[str, Any]) -> int:
    seq = obj.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def archive(root: Path, path: Path, cutoff: datetime, now: datetime) -> tuple[int, Path | None, list[str]]:
    """Move events older than ``cutoff`` from ``path`` into today's gzip archive (and drop
    silent writes, which the snapshot covers: the caller wrote one first); the count is
    of events.

    The archive is fsynced before ``path`` is replaced without those lines; a crash
    in between leaves them in both places, never in neither. Lines that cannot be
    read stay where they are (and are reported).
    """
    try:
        data = journal.complete(path.read_bytes())
    except FileNotFoundError:
        return 0, None, []
    old, kept, warnings = _split(data.split(b"\n"), cutoff, path.as_posix())
    if not old:
        if len(kept) < data.count(b"\n"):  # silent writes dropped
            atomic.atomic_write(path, b"".join(line + b"\n" for line in kept))
        return 0, None, warnings
    target = root / f"events-{now:%Y%m%d}.jsonl.gz"
    member = zlib.compress(b"".join(line + b"\n" for line in old), wbits=31)  # one gzip member
    with open(target, "ab") as raw:
        size = raw.tell()
        try:
            raw.write(member)
            raw.flush()
            os.fsync(raw.fileno())
        except OSError:
            raw.truncate(size)  # a member cut short would hide the ones after it
            raise
    atomic.atomic_write(path, b"".join(line + b"\n" for line in kept))
    return sum(len(_events(_object(line) or {}) or ()) for line in old), target, warnings


def _split(lines: list[bytes], cutoff: datetime, name: str) -> tuple[list[bytes], list[bytes], list[str]]:
    old, kept, warnings = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        obj = _object(line)
        moment = _time_of(obj)
        if obj is None or moment is None:
            warnings.append(f"{name}:{number}: unreadable line kept in place")
            kept.append(line)
        elif _events(obj) == []:
            continue  # a silent write the snapshot covers: nothing to keep it for
        elif moment < cutoff:
            old.append(line)
        else:
            kept.append(line)
    return old, kept, warnings


def _object(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _time_of(obj: dict[str, Any] | None) -> datetime | None:
    try:
        return parse_time(obj["time"]) if obj is not None else None
    except (ValueError, KeyError, TypeError):
        return None
