"""Moving a registry between stores (``task registry copy``): a folder to a database and back.

A ``dump.Dump`` is everything a registry knows: the entries, the lease history (so no
lease is ever reused in the new store), every event with its transaction number,
and every attempt's log. Each store reads one out (``Registry.dump``) and fills an
empty store from one (``Registry.load``): a store that already holds anything is
refused, so a copy never mixes two histories.
"""

from __future__ import annotations

from dataclasses import dataclass

from .interface import Registry


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
