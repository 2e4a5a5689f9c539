"""``events.jsonl``: the append-only audit trail, its readers and its archives.

One JSON object a line (see ``records.Event``)::

    {"time":"...","type":"task.claimed","slug":"fix-login","lease":4,
     "actor":{"who":"agent-7","host":"ci-1","pid":4242},"details":{"worker":"w1"},
     "seq":17,"entry":{...the entry as this event left it...}}

Types: ``task.claimed``, ``task.started``, ``task.heartbeat`` (only the first of
an attempt and those with a note: the rest would drown the trail, and the entry's
``heartbeat_at`` says all they say), ``task.exited``, ``task.failed`` (no exit
record: worker gone, stalled), ``task.released``, ``task.stopped``,
``task.retry_scheduled``, ``task.parked``, ``task.unparked``, the runtime facts
``task.note``, ``task.progress``, ``task.blocker``, ``task.evidence``,
``task.artifact``, and ``task.pruned`` (gc) and ``registry.repaired``. Log lines
are not events; they live in ``logs/``.

Events are appended under the registry lock, after the registry write they
record, so the trail never shows a change that did not happen (a crash between
the two loses the event, never the change). ``gc`` moves old
lines into ``events-YYYYMMDD.jsonl.gz`` (gzip members appended per run).
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import atomic
from . import jsonl
from .records import Event, parse_time

ARCHIVE_GLOB = "events-*.jsonl.gz"


def encode(events: tuple[Event, ...] | list[Event]) -> bytes:
    """The lines that record ``events``."""
    return b"".join(json.dumps(e.to_dict(), separators=(",", ":")).encode() + b"\n" for e in events)


def decode(lines: jsonl.Lines) -> tuple[list[Event], list[str]]:
    """The events among parsed lines, and a warning (file:line) for each line skipped."""
    events, problems = [], []
    for number, obj in lines.items:
        event = _event(obj)
        if event is None:
            problems.append((number, "not an event (needs 'time' and 'type')"))
        else:
            events.append(event)
    return events, lines.warnings(problems)


def _event(obj: dict[str, Any]) -> Event | None:
    try:
        return Event.from_dict(obj)
    except (TypeError, ValueError, AttributeError):
        return None


def read(path: Path) -> tuple[list[Event], list[str]]:
    """Every event in ``path``, and warnings for the lines skipped."""
    return decode(jsonl.read(path))


def history(root: Path, path: Path) -> tuple[list[Event], list[str]]:
    """The archived events (oldest archive first) followed by those in ``path``."""
    events: list[Event] = []
    warnings: list[str] = []
    for archive in sorted(root.glob(ARCHIVE_GLOB)):
        try:
            data = gzip.decompress(archive.read_bytes())
        except (OSError, EOFError) as exc:
            warnings.append(f"{archive}: unreadable archive ({exc}); skipped")
            continue
        found, problems = decode(jsonl.parse(data, str(archive)))
        events += found
        warnings += problems
    found, problems = read(path)
    return events + found, warnings + problems


def follow(path: Path, *, from_start: bool, poll: float) -> Iterator[Event]:
    """Events as they are appended to ``path`` (from this call on), each once even across a gc rewrite."""
    return _poll(Tail(path, from_start=from_start), poll)


def _poll(tail: Tail, poll: float) -> Iterator[Event]:
    while True:
        yield from tail.read()
        time.sleep(poll)


class Tail:
    """The events appended to ``path`` since the last read (complete lines only), each once:
    after a rewrite (gc) only those newer than the last one seen."""

    def __init__(self, path: Path, *, from_start: bool = False) -> None:
        self.lines = jsonl.Tail(path, from_start)
        self.generation, self.last_seq, self.skip_upto = 0, 0, -1

    def read(self) -> list[Event]:
        """The new events, oldest first."""
        return [event for event in map(self._admit, self.lines.read_new()) if event is not None]

    def _admit(self, obj: dict[str, Any]) -> Event | None:
        if self.lines.generation != self.generation:  # rewritten: its first lines were seen already
            self.generation, self.skip_upto = self.lines.generation, self.last_seq
        event = _event(obj)
        if event is None or event.seq <= self.skip_upto:
            return None
        self.last_seq = max(self.last_seq, event.seq)
        return event


def archive(root: Path, path: Path, cutoff: datetime, now: datetime) -> tuple[int, Path | None, list[str]]:
    """Move events older than ``cutoff`` from ``path`` into today's gzip archive.

    The archive is fsynced before ``path`` is replaced without those lines; a crash
    in between leaves them in both places, never in neither. Lines that cannot be
    read stay where they are (and are reported).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0, None, []
    old, kept, warnings = _split(data.split(b"\n"), cutoff, str(path))
    if not old:
        return 0, None, warnings
    target = root / f"events-{now:%Y%m%d}.jsonl.gz"
    with open(target, "ab") as raw:
        with gzip.GzipFile(fileobj=raw, mode="ab") as gz:
            gz.write(b"".join(line + b"\n" for line in old))
        raw.flush()
        os.fsync(raw.fileno())
    atomic.atomic_write(path, b"".join(line + b"\n" for line in kept))
    return len(old), target, warnings


def _split(lines: list[bytes], cutoff: datetime, name: str) -> tuple[list[bytes], list[bytes], list[str]]:
    old, kept, warnings = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        moment = _time_of(line)
        if moment is None:
            warnings.append(f"{name}:{number}: unreadable line kept in place")
            kept.append(line)
        elif moment < cutoff:
            old.append(line)
        else:
            kept.append(line)
    return old, kept, warnings


def _time_of(line: bytes) -> datetime | None:
    try:
        return parse_time(json.loads(line)["time"])
    except (ValueError, KeyError, TypeError):
        return None
