"""Facts about local processes: which host this is, is a worker's pid still the process we
started? And stopping it.

A pid means something only on the host that issued it. Every dispatch host names itself
with its host identity (``host_identity``: ``TASKFILES_HOST``, else the host name), and a
worker is one process start on one host: host identity + pid + start time. A pid
recorded on another host is never probed or signalled here: that worker's heartbeat age
is all this host can judge it by.

A pid alone is not an identity: after the worker dies the kernel may hand its number to
another process. Its start time is fixed for its life, so pid + start time is. The kernel
says it through psutil, on Linux, macOS and the BSDs alike; the start time is kept as
centiseconds since boot (``pid_start_time``), which on Linux is the clock-tick count of
``/proc/<pid>/stat`` field 22 that registries written before psutil hold, so their live
workers keep their identity across the upgrade. ``same_start`` says how close two start
times must be to name one process.

A process that has exited but that its parent has not reaped yet is a zombie: it keeps
its pid and still answers ``kill(pid, 0)``, but it runs no code. It counts as dead here.
Where psutil cannot read the process table (no proc folder, access denied), what stays
known is whether the pid exists: start times are unknown then, and nothing is signalled
on the strength of a pid alone.

The dispatcher starts each worker wrapper in a new session, and the wrapper runs the
agent in a process group of its own inside that session, so "stop the worker" means:
kill every process of the wrapper's session. Windows has no sessions, process groups or
SIGKILL: the dispatcher and the wrapper stop there at once (``require_sessions``), while
the rest of this module (host identity, start times, liveness) works on it too. psutil
is imported on first use: every registry command imports this module for
``host_identity``.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys

from . import portable
from .errors import UsageError

HOST_ENV = "TASKFILES_HOST"
# What a process can report: an exit status 0..255, or -N when signal N killed it (as
# Python's returncode says; signal numbers stay far below 255).
EXIT_CODES = range(-255, 256)
# How far apart two start times (centiseconds) may be and still name one process: see same_start.
START_TOLERANCE = 0 if sys.platform.startswith("linux") else 100
# What the dispatcher needs of the system to start a worker in a session and kill it there.
SESSION_CALLS = ("setsid", "setpgid", "getsid", "killpg")


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
    return os.environ.get(HOST_ENV, "").strip() or portable.node_name()


def require_sessions(command: str) -> None:
    """Return when this system can start and kill process sessions; a UsageError naming
    ``command`` otherwise (Windows: no ``setsid``, ``killpg`` or SIGKILL)."""
    missing = [f"os.{name}" for name in SESSION_CALLS if not hasattr(os, name)]
    missing += [] if hasattr(signal, "SIGKILL") else ["signal.SIGKILL"]
    if missing:
        raise UsageError(
            f"{command} cannot run on this system: it stops a worker by killing the worker's "
            f"process session, and this system has no process sessions ({', '.join(missing)} "
            "missing, as on Windows); run the dispatcher on Linux, macOS or WSL. The registry "
            "commands an agent uses (claim, start, heartbeat, note, finish, ...) work here."
        )


def probe(host: str | None, pid: int | None, start_time: int | None, here: str | None = None) -> bool | None:
    """Is the worker process (``host``, ``pid``, ``start_time``) alive? None when this host
    cannot tell: no pid was recorded, or it runs on another host than ``here`` (default:
    ``host_identity()``), whose pids mean nothing here."""
    if pid is None or host != (here if here is not None else host_identity()):
        return None
    return is_alive(pid, start_time)


def same_start(recorded: int, actual: int) -> bool:
    """Do two start times (centiseconds since boot) name the same process?

    On Linux, to the tick: the kernel counts the start in ticks since boot, and that count
    never moves. Elsewhere within a second (``START_TOLERANCE``): macOS and the BSDs report
    a start as a wall-clock time, and psutil turns it into time since boot with a boot time
    that moves when the clock is stepped, so one process's start time can drift by a
    little. A reused pid within that second would need the pid counter to wrap around in
    the second the worker started; and a dead worker taken for alive is still caught by its
    heartbeat age, the safe direction.
    """
    return abs(recorded - actual) <= START_TOLERANCE


class _Seen(enum.Enum):
    RUNNING = "running"
    ZOMBIE = "zombie"  # exited, not reaped yet (or dead, being removed)
    GONE = "gone"
    UNKNOWN = "unknown"  # psutil cannot read the process table here


def _look(pid: int) -> tuple[_Seen, int | None]:
    """What the kernel says of ``pid``: running, zombie or gone, with its start time
    (centiseconds since boot; None when gone or unknown)."""
    import psutil  # ~15 ms of imports, for the commands that look at a process only

    try:
        # First: without a process table to read (no proc folder), psutil takes every pid for gone.
        boot = psutil.boot_time()
        proc = psutil.Process(pid)
        with proc.oneshot():
            status = proc.status()
            start = round((proc.create_time() - boot) * 100)
    except psutil.ZombieProcess:  # macOS: some facts of a zombie cannot be read
        return _Seen.ZOMBIE, None
    except psutil.NoSuchProcess:
        return _Seen.GONE, None
    except (psutil.Error, OSError):
        return _Seen.UNKNOWN, None
    dead = status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    return (_Seen.ZOMBIE if dead else _Seen.RUNNING), start


def _exists(pid: int) -> bool:
    """Whether any process has ``pid``, for when psutil cannot read the process table: ``kill(pid,
    0)`` on POSIX (a zombie too), never ``os.kill`` on Windows, where it terminates the process."""
    import psutil

    try:
        return bool(psutil.pid_exists(pid))  # bool(): typed only where types-psutil is installed
    except (psutil.Error, OSError):  # the pid answered kill(pid, 0); no table to check it in
        return True


def pid_start_time(pid: int) -> int | None:
    """The start time of process ``pid`` in centiseconds since boot (on Linux: clock ticks,
    ``/proc/<pid>/stat`` field 22); None if it is gone or unknowable."""
    return _look(pid)[1] if pid > 0 else None


def is_zombie(pid: int) -> bool:
    """True when ``pid`` has exited and waits to be reaped by its parent."""
    return pid > 0 and _look(pid)[0] is _Seen.ZOMBIE


def is_alive(pid: int, start_time: int | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if ``start_time`` is given, is the same process as then.

    Where psutil cannot tell, whether the pid exists is all that is known."""
    if pid <= 0:
        return False
    seen, start = _look(pid)
    if seen is _Seen.UNKNOWN:
        return _exists(pid)
    if seen is not _Seen.RUNNING:
        return False
    return start_time is None or (start is not None and same_start(start_time, start))


def leads_session(pid: int) -> bool:
    """True when ``pid`` runs and leads its own session (its session id is its pid). POSIX only."""
    try:
        return os.getsid(pid) == pid
    except OSError:
        return False


def session_members(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (the leader included). POSIX only."""
    import psutil

    try:
        pids = psutil.pids()
    except (psutil.Error, OSError):
        return []
    members = []
    for pid in pids:
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to ask
            if os.getsid(pid) == sid and _look(pid)[0] is not _Seen.ZOMBIE:
                members.append(pid)
    return members


def kill_session(pid: int, start_time: int | None, sig: int | None = None) -> int:
    """Send ``sig`` (default SIGKILL) to every process of the session that ``pid`` leads;
    return how many were signalled. POSIX only.

    When ``pid`` still exists but is not the process that was recorded (its start time
    differs, or cannot be read), the number may have been reused: nothing is signalled.
    When it is gone, its session's leftover members (an agent the dead wrapper started)
    still are.
    """
    if pid <= 1:
        return 0
    seen, start = _look(pid)
    if (
        start_time is not None
        and seen is not _Seen.GONE
        and (start is None or not same_start(start_time, start))
    ):
        return 0
    count = 0
    for member in session_members(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL if sig is None else sig)
            count += 1
    return count


def kill_group(pgid: int, sig: int | None = None) -> bool:
    """Send ``sig`` (default SIGKILL) to process group ``pgid``; False when the group is gone. POSIX only."""
    if pgid <= 1:
        return False
    try:
        os.killpg(pgid, signal.SIGKILL if sig is None else sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
