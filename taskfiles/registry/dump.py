"""A whole registry, store-independent: what ``Registry.dump`` reads out and ``Registry.load``
fills an empty store from (``task registry copy``, see ``copy``).

Apart from ``records`` so that a command that reads or writes entries does not build it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
