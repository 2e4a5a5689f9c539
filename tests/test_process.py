"""process.py with real processes: identity by pid + start time, zombies, killing a session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from taskfiles import process

from .conftest import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# A session leader that starts a child in a process group of its own, as the wrapper does.
LEADER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], process_group=0)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_live_process_is_alive_with_its_start_time_only() -> None:
    child = subprocess.Popen(SLEEPER)
    try:
        start = process.pid_start_time(child.pid)
        assert start is not None
        assert process.is_alive(child.pid) and process.is_alive(child.pid, start)
        assert not process.is_alive(child.pid, start + 1)  # same number, another process
    finally:
        child.kill()
        child.wait()
    assert not process.is_alive(child.pid, start)
    assert not process.is_alive(0) and not process.is_alive(-5)


def test_a_sigkilled_child_not_yet_reaped_is_a_zombie_and_counts_as_dead() -> None:
    child = subprocess.Popen(SLEEPER)
    start = process.pid_start_time(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    wait_until(lambda: process.is_zombie(child.pid), 30, "the child to become a zombie")
    os.kill(child.pid, 0)  # the zombie still answers kill(pid, 0) ...
    assert not process.is_alive(child.pid, start)  # ... but is not alive
    assert not process.is_alive(child.pid)
    child.wait()


def test_kill_session_kills_the_leader_and_the_agent_in_its_own_group() -> None:
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert leader.stdout is not None
    agent = int(leader.stdout.readline())
    assert set(process.session_members(leader.pid)) == {leader.pid, agent}
    assert process.kill_session(leader.pid, (process.pid_start_time(leader.pid) or 0) + 1) == 0  # not ours
    assert process.kill_session(leader.pid, process.pid_start_time(leader.pid)) == 2
    leader.wait()
    wait_until(lambda: not process.session_members(leader.pid), 30, "the agent to die")
    assert not process.kill_group(leader.pid)


def test_leads_session_only_for_a_session_leader() -> None:
    leader = subprocess.Popen(SLEEPER, start_new_session=True)
    member = subprocess.Popen(SLEEPER)
    try:
        assert process.leads_session(leader.pid) and not process.leads_session(member.pid)
    finally:
        for child in (leader, member):
            child.kill()
            child.wait()
    assert not process.leads_session(leader.pid)  # gone


def test_pid_start_time_tells_a_reused_pid_apart() -> None:
    mine = process.pid_start_time(os.getpid())
    assert isinstance(mine, int) and mine == process.pid_start_time(os.getpid())
    assert process.is_alive(os.getpid(), mine) and not process.is_alive(os.getpid(), mine + 1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process.pid_start_time(child.pid) is None and not process.is_alive(child.pid)


def test_pid_start_time_reads_a_command_name_with_spaces_and_parens(tmp_path: Path) -> None:
    fields = " ".join(str(n) for n in range(3, 53))
    (tmp_path / "99").mkdir()
    (tmp_path / "99" / "stat").write_text(f"99 (odd) name (x)) {fields}\n")
    assert process.pid_start_time(99, proc=tmp_path) == 22


def test_probe_judges_a_pid_only_on_the_host_that_recorded_it() -> None:
    child = subprocess.Popen(SLEEPER)
    start = process.pid_start_time(child.pid)
    try:
        assert process.probe("a", child.pid, start, here="a") is True
        assert process.probe("b", child.pid, start, here="a") is None  # b's pid numbers are not ours
        assert process.probe(None, child.pid, start, here="a") is None  # no host recorded: not ours either
        assert process.probe("a", None, None, here="a") is None
    finally:
        child.kill()
        child.wait()
    assert process.probe("a", child.pid, start, here="a") is False
    assert process.probe(process.host_identity(), child.pid, start) is False  # here: this host's identity
