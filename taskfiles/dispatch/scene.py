"""What every step of a heartbeat cycle works with, and how its claims are told apart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from ..config import Config
from ..registry import Registry, RegistryEntry
from ..registry.records import format_time
from .hostfiles import HostFiles

# The ``worker`` of a claim the dispatcher made; only such workers run in a session of their own.
DISPATCHER_WORKER = "heartbeat@"


def dispatcher_worker(host: str) -> str:
    """The ``worker`` the dispatcher claims with on ``host``."""
    return DISPATCHER_WORKER + host


def started_by_dispatcher(entry: RegistryEntry) -> bool:
    """True when the dispatcher claimed this entry, so its pid leads a session it created."""
    return (entry.worker or "").startswith(DISPATCHER_WORKER)


@dataclass(frozen=True)
class Scene:
    """Settings, the registry, this host's files, the time and this host's name."""

    config: Config
    registry: Registry
    now: datetime
    host: str
    dry_run: bool = False

    @property
    def stamp(self) -> str:
        """``now`` as a registry time string."""
        return format_time(self.now)

    @property
    def main_root(self) -> Path:
        """The main worktree, home of ``.worktrees/``."""
        repo = self.config.repo
        return repo.main_root if repo else self.config.root

    @cached_property
    def host_files(self) -> HostFiles:
        """Where this host keeps prompts, worker output and locks."""
        return HostFiles.of(self.config)
