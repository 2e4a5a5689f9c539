"""The registry's facts next to a task, for the planning views (``task list``, ``task show``,
the MCP task view): the entries read once, and each entry's runtime view.

Apart from ``status`` (the heartbeat's whole observation) so that a listing imports
neither the classification nor the settings it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import TaskfilesError
from . import existing_registry
from .records import parse_time

if TYPE_CHECKING:
    from ..config import Config
    from .interface import Registry
    from .records import RegistryEntry


class EntriesRead(NamedTuple):
    """Registry entries for a planning view, or why they could not be read."""

    entries: Mapping[str, RegistryEntry]
    warning: str | None = None


def read_entries(config: Config, registry: Registry | None = None) -> EntriesRead:
    """Every registry entry, read once, for views that must work without the registry.

    No registry folder means nothing ever ran: no entries, and no store is opened.
    An unreadable registry is a warning here, not an error: the plan is still shown.
    """
    registry = registry or existing_registry(config)
    if registry is None:
        return EntriesRead({})
    try:
        return EntriesRead(registry.entries())  # every entry checked here, not mid-listing
    except TaskfilesError as error:
        return EntriesRead({}, f"runtime state not shown: {error}")


def runtime_view(entry: RegistryEntry | None, now: datetime) -> dict[str, Any] | None:
    """The runtime facts ``task list``/``show`` print next to a task (None: no entry)."""
    if entry is None:
        return None
    return {
        "state": entry.state,
        "lease": entry.lease,
        "attempt": entry.attempt,
        "max_attempts": entry.max_attempts,
        "worker": entry.worker,
        "heartbeat_at": entry.heartbeat_at,
        "heartbeat_age_seconds": age_seconds(entry.heartbeat_at, now),
    }


def age_seconds(stamp: object, now: datetime) -> float | None:
    """How old ``stamp`` is, to a tenth of a second; None when it is not a readable time."""
    try:
        return round((now - parse_time(str(stamp))).total_seconds(), 1) if stamp else None
    except (TypeError, ValueError):
        return None
