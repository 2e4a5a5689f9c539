"""Rebuild the registry from the last good backup and the event log.

Every event carries the entry as it left it and the number (``seq``) of the
registry write that made it. Starting from the backup (or from nothing), the
events of later writes are replayed in order; the last one for a slug wins.
What cannot come back is said, not guessed: writes that left no event (plain
heartbeats) show up as gaps in the write numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RegistryError
from .document import Document, Rows
from .records import LIVE_STATES, Event, RegistryEntry


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


def rebuild(base: Document | None, events: Sequence[Event]) -> Rebuilt:
    """Replay ``events`` written after ``base`` (None: from nothing) into a new document."""
    rows = dict(base.rows) if base else {}
    leases = dict(base.leases) if base else {}
    start = base.seq if base else 0
    unrecovered: list[str] = []
    seqs: set[int] = set()
    for event in sorted(events, key=lambda e: e.seq):  # stable: file order within a write
        if event.seq <= start or not event.slug:
            continue
        seqs.add(event.seq)
        _replay(event, rows, leases, unrecovered)
    top = max(seqs, default=start)
    unrecovered += _gaps(start, top, seqs, rows)
    for slug, row in rows.items():
        leases[slug] = max(leases.get(slug, 0), int(row["lease"]))
    return Rebuilt(Document(seq=top, rows=Rows(rows), leases=leases), len(seqs), tuple(unrecovered))


def _replay(
    event: Event, rows: dict[str, dict[str, Any]], leases: dict[str, int], unrecovered: list[str]
) -> None:
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


def _gaps(start: int, top: int, seqs: set[int], rows: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    missing = (top - start) - len(seqs)
    if missing > 0:
        notes.append(
            f"{missing} write(s) between the backup (write {start}) and the last event (write {top}) "
            "left no event (heartbeats without a note): heartbeat_at, heartbeats and cost_usd may be behind"
        )
    live = sorted(slug for slug, row in rows.items() if row.get("state") in LIVE_STATES)
    if live:
        notes.append(
            "heartbeats after the last event are not recorded anywhere: the live entries "
            f"({', '.join(live[:10])}{', ...' if len(live) > 10 else ''}) show an older heartbeat "
            "until their workers' next one"
        )
    return notes
