"""portable's calls one by one, in this process: the POSIX branch as it runs here, and each
fallback a system without the call takes (the call removed from ``os`` for the test, as
Windows' ``os`` lacks it). tests/test_portable.py runs the commands as on Windows."""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import pwd
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskfiles import portable


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    """An open file holding b"0123456789"."""
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    opened = os.open(path, os.O_RDWR | portable.FILE_FLAGS)
    yield opened
    os.close(opened)


@pytest.mark.parametrize("system", ["posix", "without pread/pwrite"])
def test_positional_reads_and_writes(fd: int, system: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if system != "posix":
        monkeypatch.delattr(os, "pread")
        monkeypatch.delattr(os, "pwrite")
    assert portable.pread(fd, 3, 4) == b"456"
    assert portable.pwrite(fd, b"ab", 8) == 2
    assert portable.pread(fd, 100, 6) == b"67ab"
    if system == "posix":  # pread and pwrite leave the file's position where it was
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0


@pytest.mark.parametrize("system", ["posix", "without fchmod"])
def test_set_mode_sets_the_bits(tmp_path: Path, system: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    opened = os.open(path, os.O_RDONLY | portable.FILE_FLAGS)
    try:
        if system == "posix":
            path.unlink()  # fchmod reaches the open file even when its name is gone
            portable.set_mode(opened, path, 0o600)
            assert stat.S_IMODE(os.fstat(opened).st_mode) == 0o600
        else:
            monkeypatch.delattr(os, "fchmod")
            portable.set_mode(opened, path, 0o640)
            assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.close(opened)


def test_a_shared_lock_admits_other_readers_and_an_exclusive_one_does_not(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.touch()
    holder, other = (os.open(path, os.O_RDWR | portable.FILE_FLAGS) for _ in range(2))
    try:
        portable.lock(holder, shared=True)
        fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)  # raises if the holder's were exclusive
        fcntl.flock(other, fcntl.LOCK_UN)
        portable.unlock(holder)
        portable.lock(holder, shared=False)
        assert not portable.try_lock(other)
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
        portable.unlock(holder)
        assert portable.try_lock(other)
    finally:
        os.close(holder)
        os.close(other)


def test_the_pauses_double_up_to_the_longest() -> None:
    assert list(itertools.islice(portable.pauses(0.001, 0.02), 7)) == [
        0.001,
        0.002,
        0.004,
        0.008,
        0.016,
        0.02,
        0.02,
    ]


def test_a_replace_windows_refuses_for_a_moment_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows refuses a replace while another process has the target open (a sharing
    violation, PermissionError); here the refusals are played by the two first calls."""
    source, target = tmp_path / "new", tmp_path / "old"
    source.write_text("new")
    target.write_text("old")
    real, refusals, slept = os.replace, [2], []

    def sharing_violation(a: Path | str, b: Path | str) -> None:
        if refusals[0]:
            refusals[0] -= 1
            raise PermissionError(errno.EACCES, "The process cannot access the file", str(b))
        real(a, b)

    monkeypatch.setattr(os, "replace", sharing_violation)
    monkeypatch.setattr(portable.time, "sleep", slept.append)
    monkeypatch.setattr(portable, "_REPLACE_TRIES", 3)
    portable.replace(source, target)
    assert (target.read_text(), source.exists(), slept) == ("new", False, [0.001, 0.002])

    source.write_text("newer")
    refusals[0], slept[:] = 3, []
    with pytest.raises(PermissionError):
        portable.replace(source, target)
    assert (target.read_text(), slept) == ("new", [0.001, 0.002])


def test_on_posix_a_replace_is_tried_once() -> None:
    assert portable._REPLACE_TRIES == 1


def test_folder_fsync_opens_folders_only(tmp_path: Path) -> None:
    portable.fsync_dir(tmp_path)
    (tmp_path / "f").touch()
    with pytest.raises(NotADirectoryError):
        portable.fsync_dir(tmp_path / "f")


def test_a_user_without_a_passwd_entry_is_named_by_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    assert portable.user_name() == pwd.getpwuid(os.getuid()).pw_name

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")  # as in a container's bare /etc/passwd

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert portable.user_name() == f"uid-{os.getuid()}"


def test_the_host_is_unames_even_where_computername_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPUTERNAME", "WINBOX")
    assert portable.node_name() == os.uname().nodename
    monkeypatch.delattr(os, "uname")
    assert portable.node_name() == "WINBOX"
    monkeypatch.delenv("COMPUTERNAME")
    assert portable.node_name() == socket.gethostname()


def test_the_task_walk_lists_through_folder_descriptors_on_posix() -> None:
    """Each lstat relative to its folder's descriptor (~15% of a warm walk); by path only where
    folders cannot be opened (Windows; the simulated Windows of test_portable.py)."""
    from taskfiles.plan import source

    assert source._AT_FOLDER is (os.name == "posix")
