"""Moving a registry between stores (``task registry copy``): a folder to a database and back.

A ``Dump`` is everything a registry knows: the entries, the lease history (so no
lease is ever reused in the new store), every event with its transaction number,
and every attempt's log. Each store reads one out (``Registry.dump``) and fills an
empty store from one (``Registry.load``): a store that already holds anything is
refused, so a copy never mixes two histories.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .interface import Registry

if TYPE_CHECKING:
    from .records import Event, LogRecord


@dataclass(frozen=True)
class Dump:
    """A whole registry, store-independent."""

    entries: Mapping[str, Mapping[str, Any]]  # slug -> the entry's JSON form
    leases: Mapping[str, int]  # slug -> the highest lease ever issued
    events: tuple[Event, ...]  # oldest first, archived ones included
    logs: Mapping[tuple[str, int], tuple[LogRecord, ...]] = field(default_factory=dict)  # (slug, attempt)
    seq: int = 0  # the last transaction number
    rollup: Mapping[str, Any] = field(default_factory=dict)  # what gc folded (rollup.Rollup's JSON form)

    @property
    def log_lines(self) -> int:
        """How many log lines the dump holds."""
        return sum(len(records) for records in self.logs.values())


@dataclass(frozen=True)
class CopyReport:
    """What ``copy`` moved."""

    source: str
    target: str
    entries: int
    leases: int
    events: int
    log_lines: int


def copy(source: Registry, target: Registry) -> CopyReport:
    """Copy everything in ``source`` into the empty ``target``; RegistryError when it is not empty."""
    dump = source.dump()
    target.load(dump)
    return CopyReport(
        source.location,
        target.location,
        len(dump.entries),
        len(dump.leases),
        len(dump.events),
        dump.log_lines,
    )
