"""Make this interpreter look like Windows to taskfiles, for the tests of what cannot run here.

Python loads this module at start-up when a test puts this folder first on PYTHONPATH
(``conftest.windows_env``) and sets ``TASKFILES_TEST_PLATFORM=windows``. What is simulated
is the operating system, never taskfiles:

- the POSIX-only modules (``fcntl``, ``termios``, ``pwd``, ``grp``, ``resource``) do not
  import;
- ``os``, ``signal`` and ``time`` lose what they do not have on Windows (``O_CLOEXEC``,
  ``O_DIRECTORY``, ``pread``, ``fchmod``, ``getuid``, ``uname``, ``killpg``, ``setsid``,
  ``SIGKILL``, ``tzset``, ...), and ``os.supports_dir_fd`` is empty;
- ``msvcrt`` exists with its byte-lock call, ``locking(fd, mode, nbytes)``, built on a real
  ``flock`` taken before ``fcntl`` was hidden: the lock the Windows branch takes really
  excludes other processes, as Windows' does (both belong to the open file, not the
  process), and an unlock must name the region its lock took;
- psutil, when installed, looks for a proc folder that does not exist, so no process fact
  can be read (the case of a platform where the kernel will not say).

A sitecustomize later on the path (``make mutate``'s tools/mutate_site) still runs, first.

What stays POSIX: ``os.sep``, and ``subprocess`` and ``getpass``, which are imported before
``msvcrt`` appears (they take an importable ``msvcrt`` for Windows).
"""

from __future__ import annotations

import errno
import importlib.abc
import importlib.util
import os
import signal
import sys
import time
import types


def _run_the_one_shadowed() -> None:
    """Run the sitecustomize this one hides by coming first on PYTHONPATH (``make mutate``'s
    tools/mutate_site), before anything is hidden from it."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        folder = os.path.abspath(entry or os.curdir)
        found = os.path.join(folder, "sitecustomize.py")
        if folder != here and os.path.isfile(found):
            spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", found)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_run_the_one_shadowed()

# On Windows itself (the CI workflow's Windows job) there is nothing to simulate.
if os.environ.get("TASKFILES_TEST_PLATFORM") == "windows" and os.name == "posix":
    import fcntl as _fcntl

    # These decide "Windows" by whether msvcrt imports: they are loaded first, as POSIX.
    import getpass  # noqa: F401
    import subprocess  # noqa: F401

    try:  # psutil reads its constants from os.sysconf at import, before it is taken away
        import psutil as _psutil
    except ImportError:
        _psutil = None

    HIDDEN_MODULES = frozenset({"fcntl", "termios", "pwd", "grp", "resource", "posix_ipc"})
    HIDDEN_OS = [
        "O_CLOEXEC",
        "O_DIRECTORY",
        "O_NOFOLLOW",
        "O_NOCTTY",
        "O_NONBLOCK",
        "O_SYNC",
        "O_DSYNC",
        "pread",
        "pwrite",
        "preadv",
        "pwritev",
        "fchmod",
        "fchown",
        "chown",
        "lchown",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "getgroups",
        "setuid",
        "setgid",
        "uname",
        "getsid",
        "setsid",
        "getpgid",
        "setpgid",
        "getpgrp",
        "killpg",
        "fork",
        "forkpty",
        "getloadavg",
        "statvfs",
        "fstatvfs",
        "sysconf",
        "confstr",
        "pathconf",
        "fpathconf",
        "mkfifo",
        "mknod",
        "nice",
        "sync",
    ]
    HIDDEN_SIGNAL = [
        "SIGKILL",
        "SIGHUP",
        "SIGQUIT",
        "SIGALRM",
        "SIGUSR1",
        "SIGUSR2",
        "SIGCHLD",
        "SIGPIPE",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGWINCH",
        "alarm",
        "pause",
        "setitimer",
        "getitimer",
        "siginterrupt",
        "pthread_kill",
        "sigwait",
    ]

    class _Hidden(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name in HIDDEN_MODULES:
                raise ModuleNotFoundError(f"No module named {name!r} (simulated Windows)", name=name)
            return None

    for _name in HIDDEN_MODULES:
        sys.modules.pop(_name, None)
    sys.meta_path.insert(0, _Hidden())
    for _name in HIDDEN_OS:
        if hasattr(os, _name):
            delattr(os, _name)
    os.supports_dir_fd = set()
    for _name in HIDDEN_SIGNAL:
        if hasattr(signal, _name):
            delattr(signal, _name)
    if hasattr(time, "tzset"):
        del time.tzset

    _held: dict[int, tuple[int, int]] = {}  # fd -> the (offset, length) it holds

    def _locking(fd: int, mode: int, nbytes: int) -> None:
        """msvcrt.locking: lock or unlock ``nbytes`` from the file's position. The lock itself
        covers the whole file; the region is checked as Windows checks it: an unlock must name
        exactly the region its handle locked."""
        if not all(isinstance(arg, int) for arg in (fd, mode, nbytes)) or mode not in range(5):
            raise TypeError(f"locking({fd!r}, {mode!r}, {nbytes!r}): fd, mode (0..4) and nbytes are ints")
        region = (os.lseek(fd, 0, os.SEEK_CUR), nbytes)
        if mode == 0:  # LK_UNLCK
            if _held.get(fd) != region:
                raise PermissionError(errno.EACCES, f"region {region} of fd {fd} is not locked")
            del _held[fd]
            _fcntl.flock(fd, _fcntl.LOCK_UN)
            return
        if fd in _held:  # Windows refuses a lock over a region the same handle holds
            raise PermissionError(errno.EACCES, f"fd {fd} already holds {_held[fd]}")
        tries = 10 if mode in (1, 3) else 1  # LK_LOCK/LK_RLCK retry once a second, ten times
        for attempt in range(tries):
            try:
                _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
                _held[fd] = region
                return
            except BlockingIOError:
                if attempt + 1 < tries:
                    time.sleep(1)
        raise OSError(errno.EDEADLK if tries > 1 else errno.EACCES, "Resource deadlock avoided")

    msvcrt = types.ModuleType("msvcrt", "Windows' C runtime calls, as far as taskfiles uses them.")
    msvcrt.LK_UNLCK, msvcrt.LK_LOCK, msvcrt.LK_NBLCK, msvcrt.LK_RLCK, msvcrt.LK_NBRLCK = 0, 1, 2, 3, 4  # type: ignore[attr-defined]
    msvcrt.locking = _locking  # type: ignore[attr-defined]
    sys.modules["msvcrt"] = msvcrt

    if _psutil is not None:
        _psutil.PROCFS_PATH = "/nonexistent-proc"
