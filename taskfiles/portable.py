"""What POSIX and Windows do differently, for the code that runs on both: the planning layer
(task files) and the registry commands an agent runs. Dispatch needs process sessions and
runs on POSIX only (``process.require_sessions``).

- **Opening files.** ``os.open`` on Windows opens in text mode, translating newlines, unless
  given ``O_BINARY``; POSIX's ``O_CLOEXEC`` is Windows' ``O_NOINHERIT``. ``FILE_FLAGS``
  holds both, for every ``os.open`` of a file.
- **Locks.** ``flock`` on POSIX, shared or exclusive. On Windows, msvcrt's lock of one
  byte far past the end of the file (Windows' byte locks are mandatory: a lock on the
  content would stop others reading what the holder wrote there); it has no shared form,
  so a shared request is served exclusively (readers wait for one another: only time).
- **Positional reads and writes.** ``os.pread``/``os.pwrite`` where they exist, else a seek
  and a read or write (the descriptors here are never shared between threads).
- **Folder fsync.** POSIX needs it to make a rename durable. Windows cannot open a folder,
  and NTFS journals its own metadata.
- **Replacing a file.** Windows refuses while another process has the target open (a
  reader, a virus scanner); the replace is tried again for a moment.
- **Names.** The login name and the host's node name.

Each is decided by what the interpreter offers, not by ``sys.platform``, so the tests'
simulated Windows (``tests/oslike``) takes the Windows branches; the replace retry, which
only Windows' sharing rules can show, is the exception.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl

    HAS_FLOCK = True
except ImportError:  # Windows
    HAS_FLOCK = False

FILE_FLAGS = getattr(os, "O_BINARY", 0) | (getattr(os, "O_CLOEXEC", 0) or getattr(os, "O_NOINHERIT", 0))
CAN_SYNC_FOLDERS = hasattr(os, "O_DIRECTORY")
# Windows reports a sharing violation as PermissionError; it clears when the other process
# closes the file. 50 tries, 1 ms growing to 20 ms apart: about a second in all.
_REPLACE_TRIES = 50 if os.name == "nt" else 1
_REPLACE_WAIT = (0.001, 0.02)  # the first and the longest pause between tries of a replace
_LOCK_WAIT = (0.001, 0.05)  # the first and the longest pause between tries of a Windows lock
_LOCK_BYTE = 1 << 30  # the byte a Windows lock holds: past any lock file's content


def lock(fd: int, *, shared: bool) -> None:
    """Wait for and take a lock on the open file ``fd`` (shared where the platform can)."""
    if HAS_FLOCK:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        return
    # msvcrt's blocking form gives up after ten seconds; a lock here waits as long as flock does.
    for pause in pauses(*_LOCK_WAIT):
        if try_lock(fd):
            return
        time.sleep(pause)


def pauses(first: float, longest: float) -> Iterator[float]:
    """The waits between tries: ``first``, twice that, and so on up to ``longest``, then ``longest``."""
    pause = first
    while True:
        yield pause
        pause = min(pause * 2, longest)


def try_lock(fd: int) -> bool:
    """Take an exclusive lock on the open file ``fd`` if no one holds one; False if someone does."""
    if HAS_FLOCK:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt

    os.lseek(fd, _LOCK_BYTE, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except PermissionError:  # EACCES: another handle holds the byte
        return False
    return True


def unlock(fd: int) -> None:
    """Release the lock ``lock`` took on ``fd`` (closing ``fd`` releases it too on POSIX)."""
    if HAS_FLOCK:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return
    import msvcrt

    os.lseek(fd, _LOCK_BYTE, os.SEEK_SET)
    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]


def pread(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes of ``fd`` from ``offset``."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
    """Write ``data`` to ``fd`` at ``offset``; return how many bytes were written."""
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.write(fd, data)


def fsync_dir(folder: Path) -> None:
    """Make renames and new names in ``folder`` durable (nothing to do where folders cannot be opened)."""
    if not CAN_SYNC_FOLDERS:
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | FILE_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_mode(fd: int, path: Path, mode: int) -> None:
    """Give the file open as ``fd`` at ``path`` the permission bits ``mode``."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:
        os.chmod(path, mode)  # Windows keeps only the read-only bit


def replace(source: Path | str, target: Path | str) -> None:
    """``os.replace``, tried again for a moment while Windows says another process has ``target`` open."""
    waits = pauses(*_REPLACE_WAIT)
    for attempt in range(_REPLACE_TRIES):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt + 1 == _REPLACE_TRIES:
                raise
            time.sleep(next(waits))


def user_name() -> str:
    """The login name; ``uid-N`` or ``unknown`` when the system has none for this user."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no passwd entry (containers); no pwd module (Windows)
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def node_name() -> str:
    """This host's network name."""
    if hasattr(os, "uname"):
        # uname's node name is what gethostname(2) returns on Linux and the BSDs; the socket
        # module (~2 ms of imports) would be loaded by every command that records an actor.
        return os.uname().nodename
    if name := os.environ.get("COMPUTERNAME"):
        return name
    import socket

    return socket.gethostname()
