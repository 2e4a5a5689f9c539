"""The journal: ``events.jsonl`` as the registry's commit log.

A transaction is committed when its one line is in ``events.jsonl`` and fsynced::

    {"seq":18,"time":"...","actor":{"who":"agent-7","host":"ci-1","pid":4242},"changes":[
      {"slug":"fix-login","type":"task.claimed","lease":4,"details":{"worker":"w1"},
       "set":{"state":"claimed","lease":4,...},"unset":["exit_code"]},
      {"slug":"add-search","lease":2,"set":{"heartbeat_at":"...","heartbeats":7}}]}

Each change carries only what changed in its entry (``set``, ``unset``, and for
lists ``drop`` items from the front and ``append`` new ones), so a line costs what
the change costs, never the size of the registry or of the entry's history. A
change with a ``type`` is an event; one without is a silent write (a heartbeat
without news) that the journal keeps so the entry can be rebuilt, and that event
readers skip. ``removed`` drops the entry (its lease history stays). A change that
sets nothing (an event recorded for a task without an entry, ``transaction.EventOnly``)
changes no entry and makes none: replay passes over it, and event readers read it.

A line counts only once it ends with its newline. A writer that fails (a full
disk, an unwritable file) cuts the file back to where it began, and the next
writer cuts off any unterminated tail a crash left: a transaction is in the
journal whole or not at all. ``registry.json`` is a compacted snapshot of the
journal up to a ``seq``; readers read it and the journal lines after it.

Lines written before the journal (one event a line, with the whole ``entry``)
are still read: as events, and by repair.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .. import portable
from .jsonl import Mark
from .records import Actor, Event

Row = dict[str, Any]


# -- what changed in an entry ------------------------------------------------------------------


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The change that turns row ``old`` (None: no entry) into row ``new``."""
    before = old or {}
    changed: dict[str, Any] = {}
    appended: dict[str, list[Any]] = {}
    dropped: dict[str, int] = {}
    for key, value in new.items():
        previous = before.get(key)
        if key in before and type(previous) is type(value) and previous == value:
            continue  # (1 and 1.0 and True are equal, and not the same value)
        shift = _list_shift(previous, value)
        if shift is None:
            changed[key] = value
        else:
            if shift[0]:
                dropped[key] = shift[0]
            appended[key] = shift[1]
    change: dict[str, Any] = {"set": changed} if changed else {}
    gone = sorted(key for key in before if key not in new)
    if gone:
        change["unset"] = gone
    if dropped:
        change["drop"] = dropped
    if appended:
        change["append"] = appended
    return change


def _list_shift(old: Any, new: Any) -> tuple[int, list[Any]] | None:
    """``(drop, added)`` when list ``new`` is list ``old`` less ``drop`` items at the front
    plus ``added`` at the end (evidence, artifacts: a window that slides); else None."""
    if not isinstance(old, list) or not isinstance(new, list) or not old:
        return None
    for drop in range(len(old)):
        kept = len(old) - drop
        if kept <= len(new) and new[:kept] == old[drop:]:
            return drop, new[kept:]
    return None


def changes_entry(change: Mapping[str, Any]) -> bool:
    """Whether a journal change touches its entry: it removes it or carries a diff. One
    without (an event-only change) must not make an empty entry on replay."""
    return bool(change.get("removed")) or any(key in change for key in _DIFF_KEYS)


def patch(row: Mapping[str, Any] | None, change: Mapping[str, Any]) -> Row:
    """Row ``row`` with ``change`` (from ``diff``) applied; the inputs are not modified."""
    new = dict(row or {})
    for key in change.get("unset", ()):
        new.pop(key, None)
    new.update(change.get("set", {}))
    drops = change.get("drop", {})
    for key, added in change.get("append", {}).items():
        kept = new.get(key)
        new[key] = (list(kept)[drops.get(key, 0) :] if isinstance(kept, list) else []) + list(added)
    return new


# -- lines ---------------------------------------------------------------------------------------


def encode(seq: int, time: str, actor: Actor, changes: Sequence[Mapping[str, Any]]) -> bytes:
    """The one line that commits transaction ``seq``."""
    line = {"seq": seq, "time": time, "actor": actor.to_dict(), "changes": list(changes)}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def is_transaction(obj: Mapping[str, Any]) -> bool:
    """Whether a parsed line is a journal transaction (not an older one-event line)."""
    return isinstance(obj.get("changes"), list) and isinstance(obj.get("seq"), int)


def events_of(obj: Mapping[str, Any]) -> list[Event]:
    """The events a parsed line records: the typed changes of a transaction, or the one
    event of an older line. ValueError/TypeError when it is neither."""
    if not is_transaction(obj):
        return [Event.from_dict(obj)]
    actor = Actor.from_dict(obj.get("actor") or {})
    time, seq = obj["time"], obj["seq"]
    if not isinstance(time, str):
        raise ValueError("a transaction needs a 'time'")
    events = []
    for change in obj["changes"]:
        kind = change.get("type")
        if not isinstance(kind, str):
            continue  # a silent write
        events.append(
            Event(
                time=time,
                type=kind,
                slug=change.get("slug"),
                lease=change.get("lease"),
                actor=actor,
                details=change.get("details") or {},
                seq=seq,
                change={k: change[k] for k in _DIFF_KEYS if k in change} or None,
                removed=bool(change.get("removed", False)),
            )
        )
    return events


_DIFF_KEYS = ("set", "unset", "drop", "append")


class Transaction(NamedTuple):
    """One parsed journal line and where it ends in the file."""

    seq: int
    time: str | None
    changes: tuple[Mapping[str, Any], ...]
    end: int  # byte offset just past its newline


def scan(data: bytes, base: int = 0) -> tuple[list[Transaction], int, Mark | None]:
    """The transactions in ``data`` (the file's bytes from offset ``base``), the offset just
    past the last complete line, and that line's mark (None: no complete line). An
    unterminated tail is not read; lines that are not transactions (older events,
    unreadable lines) are passed over."""
    found: list[Transaction] = []
    pos, mark = 0, None
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            return found, base + pos, mark
        line = data[pos:end]
        mark = Mark.of(base + pos, data[pos : end + 1])
        pos = end + 1
        if b'"changes"' not in line:  # cheap: older event lines never carry it
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and is_transaction(obj):
            changes = tuple(c for c in obj["changes"] if isinstance(c, dict))
            time = obj.get("time") if isinstance(obj.get("time"), str) else None
            found.append(Transaction(obj["seq"], time, changes, base + pos))


def consecutive(transactions: Sequence[Transaction], after: int) -> list[Transaction] | None:
    """The transactions numbered after ``after``, when they follow it one by one; None when
    one is missing (the journal was rewritten under the reader: read again)."""
    later = [t for t in transactions if t.seq > after]
    if any(t.seq != after + n for n, t in enumerate(later, 1)):
        return None
    return later


def complete(data: bytes) -> bytes:
    """``data`` up to and including its last newline (an unterminated tail is a write in
    progress, or one that failed or died: never part of the journal)."""
    return data[: data.rfind(b"\n") + 1]


# -- the file ------------------------------------------------------------------------------------


def read_from(path: Path, offset: int) -> tuple[int | None, bytes]:
    """The file's inode and its bytes from ``offset`` (None, b"": there is no file)."""
    try:
        with open(path, "rb") as handle:
            inode = os.fstat(handle.fileno()).st_ino
            handle.seek(offset)
            return inode, handle.read()
    except FileNotFoundError:
        return None, b""


def commit(path: Path, offset: int, line: bytes) -> tuple[int, int]:
    """Write ``line`` at ``offset`` (the end of the last complete line; the caller holds the
    registry lock), fsync it, and return the new end and the file's inode.

    Whatever lies past ``offset`` is the unterminated tail of a write that failed or
    died, and is cut off first. If any step fails, the file is cut back to ``offset``
    before the error is raised, so a transaction is never half in the journal and never
    in it unacknowledged.
    """
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | portable.FILE_FLAGS, 0o644)
    try:
        if created:  # the name is durable before anything is written under it
            portable.fsync_dir(path.parent)
        inode = os.fstat(fd).st_ino
        try:
            if os.fstat(fd).st_size != offset:
                os.ftruncate(fd, offset)
            view = memoryview(line)
            at = offset
            while view:
                written = portable.pwrite(fd, view, at)
                view, at = view[written:], at + written
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, offset)
                os.fsync(fd)
            raise
    finally:
        os.close(fd)
    return offset + len(line), inode


def lines(data: bytes) -> Iterator[bytes]:
    """The complete lines of ``data``, without their newlines."""
    body = complete(data)
    yield from body.split(b"\n")[:-1] if body else ()
