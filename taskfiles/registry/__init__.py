"""The runtime layer: everything that happens while work runs, behind one interface.

Owns the interface and its front door ``open_registry`` (``interface``), the
records (``records``), the pure transitions every store shares (``lifecycle``,
``transaction``), the JSON store and its document codec (``jsonstore``,
``document``), the event log and run logs (``eventlog``, ``runlog``, ``jsonl``),
repair (``repair``) and what planning views print of an entry (``runtimeview``).

May import the low floor (``errors``, ``atomic``, ``slugs``, ``folders``) and never ``plan``:
the registry knows nothing about task files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # re-exported: module __getattr__ below loads them at run time
    from ..config import Config
    from .cyclerecord import CycleRecord
    from .interface import Clock, EventPage, GcReport, Registry, RegistryChange
    from .records import LIVE_STATES, STATES, Actor, Event, Evidence, LogRecord, RegistryEntry
    from .runlog import LogLine, LogPage, LogStats, LogTail
    from .transaction import Change, Plan, Snapshot

# Where each re-exported name lives. Loaded when first asked for: 'from ..registry import
# open_registry' then costs nothing, and a store imports only the modules it runs on.
EXPORTS = {
    **dict.fromkeys(("Clock", "EventPage", "GcReport", "Registry", "RegistryChange"), "interface"),
    **dict.fromkeys(
        ("LIVE_STATES", "STATES", "Actor", "Event", "Evidence", "LogRecord", "RegistryEntry"), "records"
    ),
    "CycleRecord": "cyclerecord",
    **dict.fromkeys(("LogLine", "LogPage", "LogStats", "LogTail"), "runlog"),
    **dict.fromkeys(("Change", "Plan", "Snapshot"), "transaction"),
}


def __getattr__(name: str) -> Any:
    if name in EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LIVE_STATES",
    "STATES",
    "Actor",
    "Change",
    "Clock",
    "CycleRecord",
    "Event",
    "EventPage",
    "Evidence",
    "GcReport",
    "LogLine",
    "LogPage",
    "LogRecord",
    "LogStats",
    "LogTail",
    "Plan",
    "Registry",
    "RegistryChange",
    "RegistryEntry",
    "Snapshot",
    "existing_registry",
    "open_location",
    "open_registry",
]


def open_registry(config: Config, *, clock: Clock | None = None, actor: Actor | None = None) -> Registry:
    """The registry for ``config``: PostgreSQL at ``config.registry_url`` when one is set,
    else the JSON store at ``config.registry_dir``."""
    if config.registry_url:
        from .pgstore import PgRegistry  # psycopg is imported only for a PostgreSQL registry

        return PgRegistry(config.registry_url, clock=clock, actor=actor)
    from .jsonstore import JsonRegistry  # a store is loaded only when a registry is opened

    return JsonRegistry(config.registry_dir, clock=clock, actor=actor)


def open_location(where: str, config: Config) -> Registry:
    """The registry at ``where``: a postgresql:// URL, or a folder (relative to the repository)."""
    if where.startswith(("postgresql://", "postgres://")):
        from .pgstore import PgRegistry

        return PgRegistry(where)
    from pathlib import Path

    from .jsonstore import JsonRegistry

    folder = Path(where).expanduser()
    return JsonRegistry(folder if folder.is_absolute() else (config.root / folder).resolve())


def existing_registry(config: Config) -> Registry | None:
    """The registry for ``config``, or None when nothing was ever recorded there.

    For read-only views that must cost nothing (and create nothing) in a repository
    where no task ever ran.
    """
    if not config.has_registry:
        return None
    return open_registry(config)
