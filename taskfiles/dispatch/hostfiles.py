"""Files that belong to this host's dispatcher, not to the registry.

Prompts (``prompts/<slug>/<attempt>.md``), the worker wrappers' own output
(``workers/<slug>/<attempt>.out``), the per-task worker lock and the cycle lock are
host-local: a worker reads its prompt from this disk and a lock guards processes
on this machine. They sit in the registry folder by default (``registry_dir``),
next to the JSON store, but the store never reads them and a store on a database
has them all the same: nothing below the registry interface knows these paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from .. import atomic, folders, process
from ..config import Config
from ..errors import ConflictError, RegistryError
from ..registry import GcReport, Registry

CYCLE_LOCK = "heartbeat.lock"
PER_TASK_FOLDERS = ("prompts", "workers")  # <root>/<kind>/<slug>/, removed by gc


@dataclass(frozen=True)
class HostFiles:
    """Where this host keeps prompts, worker output and locks."""

    root: Path

    @classmethod
    def of(cls, config: Config) -> HostFiles:
        """The host files for ``config``: in its registry folder."""
        return cls(config.registry_dir)

    def prompt(self, slug: str, attempt: int) -> Path:
        """Where attempt ``attempt`` of ``slug`` finds its prompt."""
        return self.root / "prompts" / slug / f"{attempt}.md"

    def write_prompt(self, slug: str, attempt: int, text: str) -> Path:
        """Write the prompt file atomically and return its path."""
        path = self.prompt(slug, attempt)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.atomic_write(path, text.encode("utf-8"), sync_dir=False)
        except OSError as exc:
            raise RegistryError(f"cannot write the prompt file {path}: {exc.strerror}") from None
        return path

    def worker_output(self, slug: str, attempt: int) -> Path:
        """The file the wrapper of this attempt writes its own output to (folder created)."""
        path = self.root / "workers" / slug / f"{attempt}.out"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def worker_lock(self, slug: str) -> Iterator[None]:
        """Hold the per-task worker lock; ConflictError when another wrapper holds it."""
        path = self.root / "workers" / slug / "worker.lock"
        with process.pid_lock(path, "worker lock") as holder:
            if holder is not None:
                raise ConflictError(
                    f"another worker for '{slug}' is running (pid {holder or 'unknown'}); one worker per "
                    f"task, stop it with 'task stop {slug}' first"
                )
            yield

    @contextlib.contextmanager
    def cycle_lock(self) -> Iterator[int | None]:
        """Hold the cycle lock for the block, yielding None; or, when another process holds
        it, yield that process's pid (0 when it has not written it yet) without waiting."""
        with process.pid_lock(self.root / CYCLE_LOCK, "cycle lock") as holder:
            yield holder

    def prune(self, slugs: set[str], keep: set[str], cutoff: datetime) -> tuple[list[str], int]:
        """Remove the prompts and worker output of ``slugs``, and of slugs not in ``keep``
        untouched since ``cutoff``; return the folders removed and their bytes."""
        return folders.prune(self.root, PER_TASK_FOLDERS, slugs, keep, cutoff)


def gc(registry: Registry, host: HostFiles, older_than_days: float = 30.0) -> GcReport:
    """The registry's gc, then this host's prompts and worker output of the same tasks."""
    report = registry.gc(older_than_days)
    cutoff = registry.clock() - timedelta(days=older_than_days)
    keep = set(registry.entries())
    removed, size = host.prune(set(report.entries_removed), keep, cutoff)
    return GcReport(
        report.entries_removed,
        tuple(sorted((*report.logs_removed, *removed))),
        report.log_bytes_removed + size,
        report.events_archived,
        report.archive,
        report.warnings,
    )
