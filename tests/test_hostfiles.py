"""This host's dispatcher files (``taskfiles.dispatch.hostfiles``): prompts, worker output,
locks, and ``hostfiles.gc``, which adds them to the registry's gc.

The registry comes from conftest's ``store_factory`` (every store); the host files
live in their own folder, as they would beside a store on a database. Real files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from taskfiles.config import Config
from taskfiles.dispatch import hostfiles
from taskfiles.dispatch.hostfiles import HostFiles
from taskfiles.errors import ConflictError, RegistryError, UsageError
from taskfiles.registry import Registry

from .conftest import TEST_ACTOR, ManualClock, StoreFactory, git, take

BIN = Path(sys.executable).parent


@pytest.fixture
def reg(store_factory: StoreFactory, clock: ManualClock) -> Registry:
    return store_factory(clock=clock, actor=TEST_ACTOR)


@pytest.fixture
def host(tmp_path: Path) -> HostFiles:
    return HostFiles(tmp_path / "host")


def running(reg: Registry, slug: str) -> int:
    lease = reg.claim(slug, worker="w1").lease
    reg.start(slug, lease, pid=os.getpid())
    return lease


def test_gc_removes_the_prompts_and_worker_output_of_what_the_registry_removed(
    reg: Registry, host: HostFiles, clock: ManualClock
) -> None:
    old = running(reg, "old")
    reg.log("old", "old output", lease=old)
    host.write_prompt("old", 1, "Do old.")
    host.worker_output("old", 1).write_text("wrapper said")
    with host.worker_lock("old"):
        pass
    reg.finish("old", old, 0)
    reg.release("old")
    live = running(reg, "live")
    reg.log("live", "live output", lease=live)
    host.write_prompt("live", 1, "Do live.")
    follower = reg.follow_events(since=clock.now - timedelta(days=1), poll=0.01)
    seen = [e.type for e in take(follower, 6)]
    clock.advance(days=31)
    reg.note("live", "recent")
    assert take(follower)[0].type == "task.note"
    report = hostfiles.gc(reg, host, older_than_days=30)
    assert report.entries_removed == ("old",)
    assert report.logs_removed == ("logs/old", "prompts/old", "workers/old")
    assert report.log_bytes_removed > len("Do old.wrapper said") and report.events_archived == 6
    assert report.archive and report.warnings == ()
    assert not any((host.root / kind / "old").exists() for kind in ("prompts", "workers"))
    assert host.prompt("live", 1).read_text() == "Do live."
    assert [r.message for r in reg.logs("live").records] == ["live output"]
    assert [e.type for e in reg.events().events] == ["task.note", "task.pruned"]
    assert seen[0] == "task.claimed"
    assert take(follower)[0].type == "task.pruned"  # the note it saw before gc is not replayed
    reg.note("live", "after gc")
    assert take(follower)[0].details == {"text": "after gc"}
    with pytest.raises(UsageError):
        hostfiles.gc(reg, host, older_than_days=-1)


def test_gc_removes_host_files_of_tasks_without_an_entry_only_once_untouched_since_the_cutoff(
    reg: Registry, host: HostFiles, clock: ManualClock
) -> None:
    reg.claim("kept", worker="w")
    for slug in ("kept", "stale", "recent"):
        host.write_prompt(slug, 1, f"Do {slug}.")
    clock.advance(days=31)
    long_ago = (clock.now - timedelta(days=40)).timestamp()
    for path in (host.prompt("kept", 1), host.prompt("stale", 1)):
        os.utime(path, (long_ago, long_ago))
    report = hostfiles.gc(reg, host, older_than_days=30)
    assert (report.entries_removed, report.logs_removed) == ((), ("prompts/stale",))
    assert sorted(p.name for p in (host.root / "prompts").iterdir()) == ["kept", "recent"]


def test_prompts_and_worker_output_have_one_file_per_attempt(host: HostFiles) -> None:
    path = host.write_prompt("fix-login", 2, "Fix the login.\n")
    assert path == host.prompt("fix-login", 2) == host.root / "prompts" / "fix-login" / "2.md"
    assert path.read_text() == "Fix the login.\n"
    host.write_prompt("fix-login", 2, "Fix it again.\n")
    assert path.read_text() == "Fix it again.\n" and len(list(path.parent.iterdir())) == 1
    out = host.worker_output("fix-login", 2)
    assert out == host.root / "workers" / "fix-login" / "2.out" and out.parent.is_dir()


def test_a_prompt_that_cannot_be_written_says_where(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RegistryError, match=r"cannot write the prompt file .*a-file/prompts/a/1\.md"):
        HostFiles(blocker).write_prompt("a", 1, "x")


def test_one_worker_lock_per_task_and_one_cycle_lock(host: HostFiles) -> None:
    with host.worker_lock("a"):
        busy = f"another worker for 'a' is running \\(pid {os.getpid()}\\); one worker per task"
        with pytest.raises(ConflictError, match=busy), host.worker_lock("a"):
            pass
        with host.worker_lock("b"):  # another task: its own lock
            pass
    with host.worker_lock("a"):  # released with the block
        pass
    with host.cycle_lock() as holder:
        assert holder is None
        with host.cycle_lock() as other:
            assert other == os.getpid()  # held: the holder's pid, without waiting
    with host.cycle_lock() as holder:
        assert holder is None


def test_host_files_live_in_the_registry_folder_by_default(repo: Path) -> None:
    from taskfiles import config as config_module

    config: Config = config_module.load(repo)
    assert HostFiles.of(config).root == config.registry_dir


def test_one_worker_per_worktree_whatever_its_task(host: HostFiles, tmp_path: Path) -> None:
    shared, own = tmp_path / "wt", tmp_path / "own"
    shared.mkdir()
    own.mkdir()
    (tmp_path / "link").symlink_to(shared)
    with host.worktree_lock(shared, "other"):
        busy = (
            f"worktree {shared} is in use by the worker of 'other' \\(pid {os.getpid()}\\); one worker per "
            "worktree: run 'third' in a worktree of its own \\(--worktree\\), or stop that one with "
            "'task stop other' first"
        )
        with pytest.raises(ConflictError, match=busy), host.worktree_lock(shared, "third"):
            pass
        same_folder = pytest.raises(ConflictError, match="in use by the worker of 'other'")
        with same_folder, host.worktree_lock(tmp_path / "link", "third"):  # a symlink to it
            pass
        with host.worktree_lock(own, "third"):  # another worktree: its own lock
            pass
    with host.worktree_lock(shared, "third"):  # released with the block
        pass


# A process that takes a lock file's flock and writes nothing into it: the moment between
# a holder's flock and its write, held open. STALE is left in the file by an earlier holder.
HOLD_RAW = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, sys.argv[2].encode(), 0)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("written", ["", "999999\n"], ids=["nothing-written-yet", "an-earlier-holders-pid"])
def test_a_refused_cycle_names_the_lock_holder_whatever_its_file_says(tmp_path: Path, written: str) -> None:
    host = HostFiles(tmp_path / "host")
    path = host.root / "heartbeat.lock"
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RAW, str(path), written],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with host.cycle_lock() as other:
            # Only the kernel's lock table (Linux's /proc/locks) can name a holder that has not
            # written its pid; elsewhere (macOS) the holder is unknown, never the stale pid.
            assert other == (holder.pid if hostfiles.PROC_LOCKS.exists() else 0)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_skipped_heartbeat_names_the_cycle_holding_the_lock(repo: Path) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "start")
    lock = repo / "registry" / "heartbeat.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RAW, str(lock), ""],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        skipped = subprocess.run(
            [BIN / "task-manager-heartbeat", "--no-dispatch"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout == f"another cycle is running (pid {holder.pid}); skipped\n"


def test_a_released_lock_leaves_no_pid_behind(host: HostFiles) -> None:
    with host.cycle_lock() as holder:
        assert holder is None
        assert (host.root / "heartbeat.lock").read_text() == f"{os.getpid()}\n"
    assert (host.root / "heartbeat.lock").read_text() == ""
    with host.worktree_lock(host.root, "a"):
        (written,) = (host.root / "locks" / "worktrees").iterdir()
        assert written.read_text() == f"{os.getpid()} a\n"
    assert written.read_text() == ""
