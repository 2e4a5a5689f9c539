"""Facts about local processes: which host this is, is a worker's pid still the process we
started? And stopping it.

A pid means something only on the host that issued it. Every dispatch host names itself
with its host identity (``host_identity``: ``TASKFILES_HOST``, else the host name), and a
worker is one process start on one host: host identity + pid + start time. A pid
recorded on another host is never probed or signalled here: that worker's heartbeat age
is all this host can judge it by.

A pid alone is not an identity: after the worker dies the kernel may hand its
number to another process. The start time (``/proc/<pid>/stat`` field 22, in
clock ticks since boot) is fixed for a process's life, so pid + start time is.

A process that has exited but that its parent has not reaped yet is a zombie:
it keeps its pid and still answers ``kill(pid, 0)``, but it runs no code. It
counts as dead here.

The dispatcher starts each worker wrapper in a new session, and the wrapper runs
the agent in a process group of its own inside that session, so "stop the worker"
means: kill every process of the wrapper's session.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from .errors import UsageError

PROC = Path("/proc")
HOST_ENV = "TASKFILES_HOST"
_DEAD_STATES = frozenset({b"Z", b"X", b"x"})  # zombie, dead
# What a process can report: an exit status 0..255, or -N when signal N killed it (as
# Python's returncode says; signal numbers stay far below 255).
EXIT_CODES = range(-255, 256)


def exit_code(value: int, name: str = "--exit-code") -> int:
    """``value`` when it is an exit code a process can have; UsageError naming ``name`` otherwise."""
    if value not in EXIT_CODES:
        raise UsageError(
            f"{name} {value} is not an exit code; use 0..255 (0: success), "
            "or -1..-255 for a process killed by that signal"
        )
    return value


def host_identity() -> str:
    """This host's name in the registry: ``TASKFILES_HOST`` when set (containers that share a
    host name, tests that play several hosts), else the host name."""
    # uname's node name is what gethostname(2) returns on Linux and the BSDs; the socket
    # module (~2 ms of imports) would be loaded by every command that records an actor.
    return os.environ.get(HOST_ENV, "").strip() or os.uname().nodename


def probe(host: str | None, pid: int | None, start_time: int | None, here: str | None = None) -> bool | None:
    """Is the worker process (``host``, ``pid``, ``start_time``) alive? None when this host
    cannot tell: no pid was recorded, or it runs on another host than ``here`` (default:
    ``host_identity()``), whose pids mean nothing here."""
    if pid is None or host != (here if here is not None else host_identity()):
        return None
    return is_alive(pid, start_time)


def _stat_fields(pid: int, proc: Path = PROC) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` from field 3 (the state) on; None if gone."""
    try:
        stat = (proc / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # Field 2 (the command name) is in parentheses and may hold spaces or ')': split after the last ')'.
    return stat[stat.rfind(b")") + 2 :].split()


def pid_start_time(pid: int, proc: Path = PROC) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot; None if it is gone or unknowable."""
    fields = _stat_fields(pid, proc)
    try:
        return int(fields[19]) if fields else None  # field 22 overall; fields[0] here is field 3
    except (IndexError, ValueError):
        return None


def is_zombie(pid: int, proc: Path = PROC) -> bool:
    """True when ``pid`` has exited and waits to be reaped by its parent."""
    fields = _stat_fields(pid, proc)
    return fields is not None and bool(fields) and fields[0] in _DEAD_STATES


def is_alive(pid: int, start_time: int | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if ``start_time`` is given, is the same process as then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:
        return not PROC.is_dir()  # no /proc to ask (not Linux): kill() is all we know
    if fields[0] in _DEAD_STATES:
        return False
    if start_time is None:
        return True
    try:
        return int(fields[19]) == start_time
    except (IndexError, ValueError):
        return False


def leads_session(pid: int) -> bool:
    """True when ``pid`` runs and leads its own session (its session id is its pid)."""
    try:
        return os.getsid(pid) == pid
    except (ProcessLookupError, PermissionError):
        return False


def session_members(sid: int, proc: Path = PROC) -> list[int]:
    """Every live process whose session id is ``sid`` (the leader included)."""
    members = []
    for name in os.listdir(proc) if proc.is_dir() else ():
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name), proc)
        # fields[3] is field 6, the session id.
        if fields and len(fields) > 3 and fields[3] == str(sid).encode() and fields[0] not in _DEAD_STATES:
            members.append(int(name))
    return members


def kill_session(pid: int, start_time: int | None, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to every process of the session that ``pid`` leads; return how many were signalled.

    When ``pid`` still runs but is not the process that was recorded (its start
    time differs), the number was reused: nothing is signalled. When it is gone,
    its session's leftover members (an agent the dead wrapper started) still are.
    """
    if pid <= 1:
        return 0
    if is_alive(pid) and start_time is not None and pid_start_time(pid) != start_time:
        return 0
    count = 0
    for member in session_members(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, sig)
            count += 1
    return count


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group is gone."""
    if pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
