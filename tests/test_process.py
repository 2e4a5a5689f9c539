"""process.py with real processes: identity by pid + start time, zombies, killing a session;
and, in an interpreter that looks like Windows, what still works and what stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

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
# A process that starts a child in its own process group (the agent and what it started).
PARENT = LEADER.replace("process_group=0", "")


def proc_field_22(pid: int) -> int:
    """The start time as the registries written before psutil hold it: ``/proc/<pid>/stat``
    field 22, in clock ticks since boot."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    # Field 2 (the command name) is in parentheses and may hold spaces or ')': split after the last ')'.
    return int(stat[stat.rfind(b")") + 2 :].split()[19])


def sleeping(new_session: bool = False) -> subprocess.Popen[bytes]:
    """A child that sleeps a minute; the caller stops it."""
    return subprocess.Popen(SLEEPER, start_new_session=new_session)


def stop(*children: subprocess.Popen[bytes]) -> None:
    for child in children:
        child.kill()
        child.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="/proc/<pid>/stat is Linux's")
def test_a_start_time_reads_alike_every_time_and_is_field_22_of_proc_stat() -> None:
    child = sleeping()
    try:
        start = process.pid_start_time(child.pid)
        assert start is not None and start == process.pid_start_time(child.pid)
        # What earlier versions recorded: a live worker keeps its identity across the upgrade.
        assert start == proc_field_22(child.pid)
        assert process.pid_start_time(os.getpid()) == proc_field_22(os.getpid())
    finally:
        stop(child)


def test_live_process_is_alive_with_its_start_time_only() -> None:
    child = sleeping()
    try:
        start = process.pid_start_time(child.pid)
        assert start is not None
        assert process.is_alive(child.pid) and process.is_alive(child.pid, start)
        assert not process.is_alive(child.pid, start + 500)  # same number, another process
    finally:
        stop(child)
    assert not process.is_alive(child.pid, start)
    assert not process.is_alive(0) and not process.is_alive(-5)


TOLERANCE = process.START_TOLERANCE


def test_start_times_are_exact_on_linux_and_within_a_second_elsewhere() -> None:
    exact_on_linux = 0 if sys.platform.startswith("linux") else 100
    assert exact_on_linux == TOLERANCE


@pytest.mark.parametrize(
    ("shift", "same"),
    [(0, True), (TOLERANCE, True), (-TOLERANCE, True), (TOLERANCE + 1, False), (-TOLERANCE - 1, False)],
)
def test_start_times_within_the_tolerance_name_one_process(shift: int, same: bool) -> None:
    child = sleeping()
    try:
        start = process.pid_start_time(child.pid)
        assert start is not None
        assert process.same_start(start + shift, start) is same
        assert process.is_alive(child.pid, start + shift) is same
    finally:
        stop(child)


def test_an_exited_and_reaped_child_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process.pid_start_time(child.pid)
    child.wait()
    assert process.pid_start_time(child.pid) is None
    assert not process.is_alive(child.pid) and not process.is_alive(child.pid, start)
    assert not process.is_zombie(child.pid)


def test_a_sigkilled_child_not_yet_reaped_is_a_zombie_and_counts_as_dead() -> None:
    child = sleeping()
    start = process.pid_start_time(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    wait_until(lambda: process.is_zombie(child.pid), 30, "the child to become a zombie")
    os.kill(child.pid, 0)  # the zombie still answers kill(pid, 0) ...
    assert not process.is_alive(child.pid, start)  # ... but is not alive
    assert not process.is_alive(child.pid)
    child.wait()
    assert not process.is_zombie(child.pid)  # reaped: gone


def test_kill_session_kills_the_leader_and_the_agent_in_its_own_group() -> None:
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert leader.stdout is not None
    agent = int(leader.stdout.readline())
    assert set(process.session_members(leader.pid)) == {leader.pid, agent}
    assert process.kill_session(leader.pid, process.pid_start_time(leader.pid)) == 2
    leader.wait()
    wait_until(lambda: not process.session_members(leader.pid), 30, "the agent to die")
    assert not process.is_alive(agent)
    assert not process.kill_group(leader.pid)


def test_kill_session_with_another_start_time_signals_nothing() -> None:
    """The pid was reused: the process there now is not the worker that was recorded."""
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert leader.stdout is not None
    agent = int(leader.stdout.readline())
    start = process.pid_start_time(leader.pid)
    assert start is not None
    try:
        assert process.kill_session(leader.pid, start + 500) == 0
        assert process.kill_session(leader.pid, start - 500, signal.SIGTERM) == 0
        assert process.is_alive(leader.pid, start) and process.is_alive(agent)
    finally:
        assert process.kill_session(leader.pid, start) == 2
        leader.wait()


def test_kill_group_kills_a_process_and_the_child_in_its_group() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert os.getpgid(child) == parent.pid
    assert process.kill_group(parent.pid)  # SIGKILL by default
    assert parent.wait() == -signal.SIGKILL
    wait_until(lambda: not process.is_alive(child), 30, "the child in the group to die")
    assert not process.kill_group(1) and not process.kill_group(0)  # never init, never our own group


def test_leads_session_only_for_a_session_leader() -> None:
    leader = sleeping(new_session=True)
    member = sleeping()
    try:
        assert process.leads_session(leader.pid) and not process.leads_session(member.pid)
    finally:
        stop(leader, member)
    assert not process.leads_session(leader.pid)  # gone


def test_probe_judges_a_pid_only_on_the_host_that_recorded_it() -> None:
    child = sleeping()
    start = process.pid_start_time(child.pid)
    try:
        assert process.probe("a", child.pid, start, here="a") is True
        assert process.probe("b", child.pid, start, here="a") is None  # b's pid numbers are not ours
        assert process.probe(None, child.pid, start, here="a") is None  # no host recorded: not ours either
        assert process.probe("a", None, None, here="a") is None
    finally:
        stop(child)
    assert process.probe("a", child.pid, start, here="a") is False
    assert process.probe(process.host_identity(), child.pid, start) is False  # here: this host's identity


def test_this_system_has_process_sessions() -> None:
    process.require_sessions("task-manager-heartbeat")  # returns: Linux and macOS have them


# Run in an interpreter that looks like Windows: psutil finds no process table there.
WITHOUT_A_PROCESS_TABLE = """
import json, os, subprocess, sys
from taskfiles import process
sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
gone = subprocess.Popen([sys.executable, "-c", "pass"])
gone.wait()
facts = {
    "start": process.pid_start_time(sleeper.pid),
    "alive": process.is_alive(sleeper.pid),
    "alive_with_a_start": process.is_alive(sleeper.pid, 12345),
    "zombie": process.is_zombie(sleeper.pid),
    "gone_alive": process.is_alive(gone.pid),
    "killed": process.kill_session(sleeper.pid, 12345),
    "still_alive": process.is_alive(sleeper.pid),
}
sleeper.terminate()
sleeper.wait()
try:
    process.require_sessions("task worker run")
except process.UsageError as stopped:
    facts["stopped"] = str(stopped)
print(json.dumps(facts))
"""


def test_on_a_system_without_a_process_table_only_existence_is_known(windows_env: dict[str, str]) -> None:
    """The module imports without SIGKILL and sessions; with psutil unable to read the process
    table, a pid that exists counts as alive whatever its start time, and nothing is killed."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_A_PROCESS_TABLE],
        env=windows_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts.pop("stopped").startswith("task worker run cannot run on this system")
    assert facts == {
        "start": None,
        "alive": True,
        "alive_with_a_start": True,
        "zombie": False,
        "gone_alive": False,
        "killed": 0,
        "still_alive": True,
    }
