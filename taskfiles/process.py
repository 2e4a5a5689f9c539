"""Facts about local processes: is a worker's pid still the process we started?

A pid alone is not an identity: after the worker dies the kernel may hand its
number to another process. The start time (``/proc/<pid>/stat`` field 22, in
clock ticks since boot) is fixed for a process's life, so pid + start time is.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_start_time(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot; None if it is gone or unknowable."""
    try:
        stat = (proc / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # Field 2 (the command name) is in parentheses and may hold spaces or ')': split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall; fields[0] here is field 3
    except (IndexError, ValueError):
        return None


def is_alive(pid: int, start_time: int | None = None) -> bool:
    """True when ``pid`` runs and, if ``start_time`` is given, is the same process as then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    if start_time is None:
        return True
    return pid_start_time(pid) == start_time
