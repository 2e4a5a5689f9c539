"""Files that belong to this host's dispatcher, not to the registry.

Prompts (``prompts/<slug>/<attempt>.md``), the worker wrappers' own output
(``workers/<slug>/<attempt>.out``), the per-task and per-worktree worker locks and
the cycle lock are host-local: a worker reads its prompt from this disk and a lock
guards processes on this machine. They sit in the registry folder by default
(``registry_dir``), next to the JSON store, but the store never reads them and a
store on a database has them all the same: nothing below the registry interface
knows these paths.

A lock is an ``flock`` on its file, taken without waiting. Its holder writes its pid
(and, for a worktree, its task) into the file once it holds it, so there is a moment
when the file is empty or still names an earlier holder. A refused process therefore
asks the kernel who holds the lock (``/proc/locks``), and reads the file only for
what the kernel does not know, waiting briefly for the holder to write it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from .. import atomic, folders, portable, process
from ..config import Config
from ..errors import ConflictError, RegistryError
from ..registry import GcReport, Registry

CYCLE_LOCK = "heartbeat.lock"
WORKTREE_LOCKS = "locks/worktrees"  # <root>/locks/worktrees/<hash of the resolved path>.lock
PER_TASK_FOLDERS = ("prompts", "workers")  # <root>/<kind>/<slug>/, removed by gc
PROC_LOCKS = Path("/proc/locks")
HOLDER_WAIT_S = 0.5  # how long a refused process waits for the holder to write what it holds


@dataclass(frozen=True)
class Holder:
    """The process holding a lock: its pid (0 when it cannot be known) and the task it
    wrote into the lock ("" when none or not written yet)."""

    pid: int
    task: str = ""


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
        with exclusive(path, "worker lock", slug) as holder:
            if holder is not None:
                raise ConflictError(
                    f"another worker for '{slug}' is running (pid {holder.pid or 'unknown'}); one worker "
                    f"per task, stop it with 'task stop {slug}' first"
                )
            yield

    @contextlib.contextmanager
    def worktree_lock(self, worktree: Path, slug: str) -> Iterator[None]:
        """Hold the lock of one worktree for the worker of ``slug``; ConflictError naming the
        task whose worker holds it: one live worker per worktree, whatever its task."""
        place = worktree.resolve()
        key = hashlib.sha256(os.fsencode(place)).hexdigest()[:24]
        with exclusive(self.root / WORKTREE_LOCKS / f"{key}.lock", "worktree lock", slug) as holder:
            if holder is not None:
                who = f"the worker of '{holder.task}'" if holder.task else "another worker"
                stop = f"'task stop {holder.task}'" if holder.task else "'task stop'"
                raise ConflictError(
                    f"worktree {place} is in use by {who} (pid {holder.pid or 'unknown'}); one worker per "
                    f"worktree: run '{slug}' in a worktree of its own (--worktree), or stop that one "
                    f"with {stop} first"
                )
            yield

    @contextlib.contextmanager
    def cycle_lock(self) -> Iterator[int | None]:
        """Hold the cycle lock for the block, yielding None; or, when another process holds
        it, yield that process's pid (0 only when neither the kernel nor the file can tell)
        without waiting for the lock."""
        with exclusive(self.root / CYCLE_LOCK, "cycle lock") as holder:
            yield None if holder is None else holder.pid

    def prune(self, slugs: set[str], keep: set[str], cutoff: datetime) -> tuple[list[str], int]:
        """Remove the prompts and worker output of ``slugs``, and of slugs not in ``keep``
        untouched since ``cutoff``; return the folders removed and their bytes."""
        return folders.prune(self.root, PER_TASK_FOLDERS, slugs, keep, cutoff)


def gc(
    registry: Registry, host: HostFiles, older_than_days: float = 30.0, *, log_retention_days: float = 0.0
) -> GcReport:
    """The registry's gc (attempt logs past ``log_retention_days`` too, 0: none), then this
    host's prompts and worker output of the same tasks."""
    report = registry.gc(older_than_days, log_retention_days=log_retention_days)
    cutoff = registry.clock() - timedelta(days=older_than_days)
    keep = set(registry.entries())
    removed, size = host.prune(set(report.entries_removed), keep, cutoff)
    return replace(
        report,
        logs_removed=tuple(sorted((*report.logs_removed, *removed))),
        log_bytes_removed=report.log_bytes_removed + size,
    )


@contextlib.contextmanager
def exclusive(path: Path, what: str, task: str = "") -> Iterator[Holder | None]:
    """Hold an exclusive lock on ``path`` with "<pid> <task>" in it, yielding None; or, when
    another process holds it, yield that ``Holder`` without waiting for the lock."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | portable.FILE_FLAGS, 0o644)
    except OSError as exc:
        raise RegistryError(f"cannot open the {what} {path.as_posix()}: {exc.strerror}") from None
    try:
        if not portable.try_lock(fd):
            yield _holder(fd)
            return
        text = f"{os.getpid()} {task}".rstrip() + "\n"
        portable.pwrite(fd, text.encode(), 0)  # one write, then trim: never an empty file once written
        os.ftruncate(fd, len(text.encode()))
        try:
            yield None
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # the next holder's readers must not take this pid for its own
    finally:
        os.close(fd)


def _holder(fd: int) -> Holder:
    """Who holds the lock on ``fd``: the pid from the kernel, the task from the file.

    The file is trusted only once it names the kernel's holder (without /proc/locks: a
    live process), which it does as soon as the holder has written it.
    """
    owner = flock_owner(fd)
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        pid, task = _written(fd)
        if pid and (pid == owner if owner else process.is_alive(pid)):
            return Holder(pid, task)
        if time.monotonic() >= deadline:
            return Holder(owner or 0)
        time.sleep(0.01)


def _written(fd: int) -> tuple[int, str]:
    """The pid and task written in a lock file (0, "" when not written)."""
    try:
        text = portable.pread(fd, 512, 0).decode("utf-8", "replace")
    except OSError:
        return 0, ""
    pid, _, task = text.strip().partition(" ")
    return (int(pid), task.strip()) if pid.isdigit() else (0, "")


def flock_owner(fd: int, locks: Path = PROC_LOCKS) -> int | None:
    """The pid of the process holding an flock on ``fd``'s file, from the kernel's lock
    table; None where there is none (not Linux) or it does not say (another pid namespace)."""
    try:
        st = os.fstat(fd)
        table = locks.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146325 0 EOF"; a waiter's line has "->"
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode and fields[4].isdigit():
            pid = int(fields[4])
            return pid or None
    return None
