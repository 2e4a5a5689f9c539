"""Crash-safe file primitives: a sibling lock, atomic replace, a hard-linked backup, appends.

These raise OSError; the store that calls them translates it once, at its edge,
because only the store knows what to tell the user (which registry, which setting).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from . import portable

# link() can be refused by file systems without hard links; a copy does the same job.
_NO_LINK = frozenset({errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP})


@contextlib.contextmanager
def locked(lock_path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold a lock on ``lock_path`` (created if needed) for the block (``portable.lock``).

    Lock a sibling file, never the data file: the data file is replaced on every
    write, and a lock on the replaced inode would no longer exclude anyone.
    The kernel drops the lock when the process dies, so a killed writer never
    leaves the registry locked.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | portable.FILE_FLAGS, 0o644)
    try:
        portable.lock(fd, shared=shared)
        try:
            yield
        finally:
            portable.unlock(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write(
    path: Path, data: bytes, *, tmp: Path | None = None, sync_dir: bool = True, mode: int | None = None
) -> None:
    """Replace ``path`` with ``data``: a reader sees the old file or the new one, never a mix.

    The temporary file lives in the same folder (a rename across file systems is not
    atomic) and is fsynced before the rename. ``tmp`` names it when the caller holds
    a lock that makes a fixed name safe (a killed writer's leftover is then reused,
    not accumulated); ``sync_dir=False`` leaves the folder fsync to a caller that
    renames several files. ``mode`` sets the new file's permission bits exactly
    (default: 0o644 less the umask).
    """
    # os.urandom is what secrets.token_hex reads; secrets imports hashlib and random (~2 ms)
    tmp = tmp or path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | portable.FILE_FLAGS, 0o644)
    try:
        if mode is not None:
            portable.set_mode(fd, tmp, mode)
        _write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    portable.replace(tmp, path)
    if sync_dir:
        portable.fsync_dir(path.parent)


def keep_backup(path: Path, backup: Path) -> None:
    """Make ``backup`` hold what ``path`` holds now, atomically.

    A hard link costs no copy: the current file's inode simply gets a second name
    before the next write replaces the first one. Where links are refused, the file
    is copied instead. The caller fsyncs the folder.
    """
    tmp = backup.with_name(f"{backup.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(path, tmp)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        atomic_write(backup, path.read_bytes(), tmp=tmp, sync_dir=False)
        return
    portable.replace(tmp, backup)


def append(path: Path, data: bytes) -> None:
    """Append ``data`` (whole lines) to ``path`` with one O_APPEND write.

    If a crash left the file without a final newline, one is written first, so a
    torn line never swallows the next one.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | portable.FILE_FLAGS, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and portable.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        _write_all(fd, data)
    finally:
        os.close(fd)
