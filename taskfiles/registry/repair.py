"""Rebuild the registry from the last good backup and the journal.

Every journal line is one transaction: what it changed in each entry, and its
number (``seq``). Starting from the backup (or from nothing), the transactions
after it are replayed in order, archived ones included. Lines written before
the journal (one event with the whole entry) replay too. What cannot come back
is said, not guessed: writes older versions left no line for show up as gaps
in the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RegistryError
from . import journal
from .document import Document, Rows
from .records import Event, RegistryEntry


@dataclass(frozen=True)
class RepairReport:
    """What ``repair`` found and did."""

    needed: bool  # False: the registry was readable, nothing was touched
    registry: str
    problem: str | None = None  # what was wrong
    from_backup: bool = False
    entries: int = 0  # entries in the rebuilt registry
    events_replayed: int = 0
    moved_aside: str | None = None  # where the unreadable file was kept
    unrecovered: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rebuilt:
    """The document ``rebuild`` made, and what it could not recover."""

    document: Document
    replayed: int
    unrecovered: tuple[str, ...]


def rebuild(
    base: Document | None, lines: Sequence[Mapping[str, Any]], *, also: Document | None = None
) -> Rebuilt:
    """Replay the journal ``lines`` (and older one-event lines) written after ``base``
    (None: from nothing) into a new document. A line found twice (a gc cut short leaves
    lines in its archive and the journal) counts once. ``also`` is a readable registry.json
    that is not to be trusted whole: its leases and its number never go back."""
    rows = dict(base.rows) if base else {}
    leases = dict(base.leases) if base else {}
    start = base.seq if base else 0
    unrecovered: list[str] = []
    seqs: set[int] = set()
    seen: set[Any] = set()
    ordered = sorted((line for line in lines if _seq(line) > start), key=_seq)  # stable: file order
    for line in ordered:
        if _identity(line) in seen:
            continue
        seen.add(_identity(line))
        seqs.add(_seq(line))
        if journal.is_transaction(line):
            _replay_transaction(line, rows, leases)
        else:
            _replay_event(line, rows, leases, unrecovered)
    top = max(seqs, default=start)
    unrecovered += _gaps(start, top, seqs)
    unrecovered += _incomplete(rows, leases)
    for slug, row in rows.items():
        leases[slug] = max(leases.get(slug, 0), row["lease"])
    if also is not None:
        for slug, lease in also.leases.items():
            leases[slug] = max(leases.get(slug, 0), lease)
        top = max(top, also.seq)
    return Rebuilt(Document(seq=top, rows=Rows(rows), leases=leases), len(seqs), tuple(unrecovered))


def _identity(line: Mapping[str, Any]) -> Any:
    """What makes a line the same line: a transaction's number; an older event's own fields."""
    if journal.is_transaction(line):
        return _seq(line)
    return (_seq(line), line.get("time"), line.get("type"), line.get("slug"))


def _incomplete(rows: dict[str, dict[str, Any]], leases: dict[str, int]) -> list[str]:
    """Drop rows the replay could not make whole (their first lines were lost), keeping their
    leases, and say so."""
    notes = []
    for slug in sorted(rows):
        try:
            entry = RegistryEntry.from_dict(rows[slug])
            if entry.slug != slug:
                raise RegistryError(f"it names '{entry.slug}'")
        except RegistryError as exc:
            lease = rows.pop(slug).get("lease")
            if isinstance(lease, int):
                leases[slug] = max(leases.get(slug, 0), lease)
            notes.append(f"'{slug}' could not be rebuilt (the lines that made it are lost: {exc}); left out")
    return notes


def _seq(line: Mapping[str, Any]) -> int:
    seq = line.get("seq")
    return seq if isinstance(seq, int) else 0


def _replay_transaction(
    line: Mapping[str, Any], rows: dict[str, dict[str, Any]], leases: dict[str, int]
) -> None:
    for change in line["changes"]:
        slug = change.get("slug") if isinstance(change, dict) else None
        if not isinstance(slug, str) or not journal.changes_entry(change):
            continue  # registry-wide events, and events recorded for a task without an entry
        lease = change.get("lease")
        if isinstance(lease, int):
            leases[slug] = max(leases.get(slug, 0), lease)
        if change.get("removed"):
            rows.pop(slug, None)
        else:
            rows[slug] = journal.patch(rows.get(slug), change)


def _replay_event(
    line: Mapping[str, Any], rows: dict[str, dict[str, Any]], leases: dict[str, int], unrecovered: list[str]
) -> None:
    try:
        event = Event.from_dict(line)
    except (TypeError, ValueError, AttributeError):
        return
    if not event.slug:
        return
    slug = str(event.slug)
    if isinstance(event.lease, int):
        leases[slug] = max(leases.get(slug, 0), event.lease)
    if event.removed:
        rows.pop(slug, None)
        return
    if event.entry is None:
        return
    try:
        entry = RegistryEntry.from_dict(event.entry)
    except RegistryError as exc:
        unrecovered.append(f"event {event.type} (write {event.seq}) for '{slug}' is unusable: {exc}")
        return
    if entry.slug != slug:
        unrecovered.append(f"event {event.type} (write {event.seq}) names '{entry.slug}', not '{slug}'")
        return
    rows[slug] = entry.to_dict()


def _gaps(start: int, top: int, seqs: set[int]) -> list[str]:
    missing = (top - start) - len(seqs)
    if missing <= 0:
        return []
    return [
        f"{missing} write(s) between the backup (write {start}) and the last journal line (write {top}) "
        "are not in the journal (older versions recorded no line for a plain heartbeat): "
        "heartbeat_at, heartbeats and cost_usd may be behind"
    ]
