"""The planning layer and the agent's registry commands as on Windows (tests/oslike): the real
``task`` command in a real repository, run by an interpreter without fcntl, termios, pwd,
os.pread, os.uname, signal.SIGKILL and the other POSIX-only pieces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from taskfiles.plan import scaffold

from .conftest import commit_all, git, write_task

pytestmark = pytest.mark.planning

TASK = Path(sys.executable).with_name("task")
NAME_VARS = ("LOGNAME", "USER", "LNAME", "USERNAME", "TASKFILES_ACTOR", "COMPUTERNAME", "TASKFILES_HOST")


def task(root: Path, env: dict[str, str], *args: str, code: int = 0) -> str:
    """Run ``task`` in ``root`` with ``env``; check its exit code and that it printed no traceback."""
    done = subprocess.run([TASK, *args], cwd=root, env=env, capture_output=True, text=True, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, f"task {' '.join(args)}: exit {done.returncode}: {done.stderr}"
    return done.stdout


def as_json(root: Path, env: dict[str, str], *args: str) -> Any:
    return json.loads(task(root, env, *args))


@pytest.fixture
def win(windows_env: dict[str, str]) -> dict[str, str]:
    """The simulated Windows with a known user and host name, as Windows' environment gives them."""
    env = {k: v for k, v in windows_env.items() if k not in NAME_VARS}
    return {**env, "USERNAME": "alice", "COMPUTERNAME": "WINBOX"}


def test_the_simulation_hides_what_windows_lacks(win: dict[str, str]) -> None:
    probe = (
        "import msvcrt, os, signal\n"
        "print(callable(msvcrt.locking))\n"
        "for name in ('fcntl', 'termios', 'pwd'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError:\n"
        "        print(name, 'hidden')\n"
        "print([hasattr(os, n) for n in ('pread', 'uname', 'getuid', 'O_CLOEXEC', 'killpg')])\n"
        "print(hasattr(signal, 'SIGKILL'), os.supports_dir_fd)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=win, capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:6] == [
        "True",
        "fcntl hidden",
        "termios hidden",
        "pwd hidden",
        "[False, False, False, False, False]",
        "False set()",
    ]


def test_planning_commands_run_as_on_windows(repo: Path, win: dict[str, str]) -> None:
    assert task(repo, win, "new", "Write the parser", "--workstream", "core", "--owner", "core") == (
        "tasks/core/write-the-parser.md\n"
    )
    task(repo, win, "new", "Ship it", "--workstream", "core", "--depends-on", "write-the-parser")
    task(repo, win, "ready", "write-the-parser")
    task(repo, win, "set", "ship-it", "--add-label", "release", "priority=p1")
    task(repo, win, "assign", "ship-it", "core")
    listed = as_json(repo, win, "list", "--json")
    assert [(row["slug"], row["path"], row["status"]) for row in listed] == [
        ("ship-it", "tasks/core/ship-it.md", "not_started"),
        ("write-the-parser", "tasks/core/write-the-parser.md", "ready"),
    ]
    assert as_json(repo, win, "show", "ship-it", "--json")["labels"] == ["release"]
    assert as_json(repo, win, "next", "--json")["slug"] == "write-the-parser"
    commit_all(repo, "plan")

    task(repo, win, "complete", "write-the-parser", "--pr", "#7")
    text = (repo / "tasks/core/write-the-parser.md").read_text()
    assert "status: completed" in text and "completed_by: alice" in text  # USERNAME: no pwd module
    task(repo, win, "cancel", "ship-it")
    assert "status: cancelled" in (repo / "tasks/core/ship-it.md").read_text()
    assert as_json(repo, win, "validate", "--json")["ok"] is True
    # The pre-commit hook's entry, with the file names it passes.
    assert as_json(repo, win, "validate", "--json", "tasks/core/ship-it.md")["ok"] is True
    task(repo, win, "migrate")
    commit_all(repo, "done")
    changes = as_json(repo, win, "changes", "HEAD~1..HEAD", "--json")
    assert (changes["counts"]["completed"], changes["counts"]["cancelled"]) == (1, 1)
    assert sorted(row["path"] for row in changes["edited"]) == [
        "tasks/core/ship-it.md",
        "tasks/core/write-the-parser.md",
    ]


def test_read_commands_print_the_same_bytes_as_on_posix(repo: Path, win: dict[str, str]) -> None:
    for index in range(30):
        folder = ("core/", "web/api/", "")[index % 3]
        status = ("not_started", "ready", "completed\ncompleted_at: 2026-11-30")[index % 3]
        text = f"---\ntitle: Task {index}\nstatus: {status}\npriority: p{index % 4}\n---\nBody.\n"
        write_task(repo, f"{folder}t{index:02d}.md", text)
    commit_all(repo)
    posix = {k: v for k, v in win.items() if k not in ("PYTHONPATH", "TASKFILES_TEST_PLATFORM")}
    for args in (["list", "--json"], ["list"], ["validate", "--json"], ["next", "--json"]):
        assert task(repo, win, *args) == task(repo, posix, *args), args
    status = [as_json(repo, env, "status", "--json") for env in (win, posix)]
    for report in status:
        report.pop("generated_at")
    assert status[0] == status[1]


def test_the_agents_registry_commands_run_as_on_windows(repo: Path, win: dict[str, str]) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\nDo A.\n")
    commit_all(repo)
    lease = str(as_json(repo, win, "claim", "a", "--json")["lease"])
    task(repo, win, "start", "a", "--lease", lease, "--pid", str(os.getpid()))
    task(repo, win, "heartbeat", "a", "--lease", lease, "--note", "parsing")
    task(repo, win, "note", "a", "halfway there")
    task(repo, win, "progress", "a", "50")
    task(repo, win, "log", "a", "a line of log")
    task(repo, win, "finish", "a", "--lease", lease, "--exit-code", "0")
    task(repo, win, "release", "a")
    events = as_json(repo, win, "events", "--json")
    assert [event["type"] for event in events][:2] == ["task.claimed", "task.started"]
    assert {(event["actor"]["who"], event["actor"]["host"]) for event in events} == {("alice", "WINBOX")}
    assert "a line of log" in task(repo, win, "logs", "a")
    collected = task(repo, win, "gc", "--older-than", "0")
    assert collected.startswith("removed 1 released entries") and " events to registry/events-" in collected
    assert task(repo, win, "registry", "repair") == "registry/registry.json is readable; nothing to repair\n"
    # Nothing the registry did touched a tracked file.
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


def test_without_any_user_name_the_actor_is_unknown(repo: Path, win: dict[str, str]) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    commit_all(repo)
    nameless = {k: v for k, v in win.items() if k != "USERNAME"}
    claim = as_json(repo, nameless, "claim", "a", "--json")
    assert claim["worker"] == "unknown@WINBOX"


def test_concurrent_claims_and_notes_exclude_each_other_through_msvcrt_locks(
    repo: Path, win: dict[str, str]
) -> None:
    """Windows' lock (msvcrt's byte lock; the simulation backs it with a real flock) keeps the
    registry whole: one claim of twelve wins, and no note of twenty-four is lost."""
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    commit_all(repo)

    def claim(worker: int) -> int:
        argv = [TASK, "claim", "a", "--worker", f"w{worker}", "--json"]
        return subprocess.run(argv, cwd=repo, env=win, capture_output=True, check=False).returncode

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(claim, range(12)))
    assert codes.count(0) == 1, codes

    def note(index: int) -> int:
        argv = [TASK, "note", "a", f"note {index}"]
        return subprocess.run(argv, cwd=repo, env=win, capture_output=True, check=False).returncode

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(note, range(24))) == {0}
    events = as_json(repo, win, "events", "--json")
    noted = sorted(event["details"]["text"] for event in events if event["type"] == "task.note")
    assert noted == sorted(f"note {index}" for index in range(24))


def test_the_merge_driver_merges_as_on_windows(repo: Path, win: dict[str, str]) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: not_started\npriority: p2\nowner: core\n---\nBody.\n")
    commit_all(repo, "base")
    task(repo, win, "merge-driver", "install")
    commit_all(repo, "the merge driver for task files")  # its .gitattributes line
    git(repo, "checkout", "-q", "-b", "theirs")
    task(repo, win, "set", "a", "priority=p1")
    commit_all(repo, "theirs")
    git(repo, "checkout", "-q", "main")
    task(repo, win, "assign", "a", "agents")
    commit_all(repo, "ours")
    done = subprocess.run(
        ["git", "merge", "-q", "--no-edit", "theirs"], cwd=repo, env=win, capture_output=True, text=True
    )
    text = (repo / "tasks/a.md").read_text()
    assert done.returncode == 0, done.stdout + done.stderr + text
    assert "priority: p1" in text and "owner: agents" in text


COUNTER = """
import sys
from pathlib import Path
from taskfiles import atomic

folder = Path(sys.argv[1])
for _ in range(200):
    with atomic.locked(folder / "lock"):
        counter = folder / "counter"
        counter.write_text(str(int(counter.read_text()) + 1))
"""


@pytest.mark.parametrize("system", ["windows", "posix"])
def test_the_lock_keeps_a_read_and_write_whole(tmp_path: Path, win: dict[str, str], system: str) -> None:
    """Four processes each add 1 to a file 200 times under ``atomic.locked`` (msvcrt's lock as
    on Windows, flock on POSIX): without exclusion an update is lost (a read between another's
    read and write); with it the file says 800."""
    (tmp_path / "counter").write_text("0")
    env = win if system == "windows" else {k: v for k, v in win.items() if k != "TASKFILES_TEST_PLATFORM"}
    children = [
        subprocess.Popen([sys.executable, "-c", COUNTER, str(tmp_path)], env=env, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for child in children:
        _, err = child.communicate()
        assert child.returncode == 0, err
    assert (tmp_path / "counter").read_text() == "800"


def test_a_symlink_checked_out_as_a_text_file_is_followed(tmp_path: Path) -> None:
    """Git without symlinks (Windows' default) writes taskfiles/data/SKILL.md as a file
    holding "../../SKILL.md"; task init must still write the guide, not that path."""
    (tmp_path / "pkg" / "data").mkdir(parents=True)
    (tmp_path / "SKILL.md").write_text("# The guide\n")
    placeholder = tmp_path / "pkg" / "data" / "SKILL.md"
    placeholder.write_text("../../SKILL.md")
    assert scaffold.linked_text(placeholder) == "# The guide\n"
    placeholder.write_text("# A guide that mentions ../../SKILL.md\n")
    assert scaffold.linked_text(placeholder) == "# A guide that mentions ../../SKILL.md\n"
    assert scaffold.skill_text() == (Path(__file__).parent.parent / "SKILL.md").read_text()


def test_output_is_utf8_through_a_pipe_whose_default_is_a_code_page(repo: Path, win: dict[str, str]) -> None:
    """Windows gives a pipe its ANSI code page (cp1252: no arrows, no CJK); taskfiles writes UTF-8."""
    cp1252 = {**win, "PYTHONIOENCODING": "cp1252"}
    write_task(repo, "a.md", "---\ntitle: Pfeil → 漢字\nstatus: not_started\n---\n")
    commit_all(repo)
    write_task(repo, "a.md", "---\ntitle: Pfeil → 漢字\nstatus: ready\n---\n")
    commit_all(repo)
    for args in (["list"], ["show", "a"], ["changes", "HEAD~1..HEAD", "--markdown"]):
        done = subprocess.run([TASK, *args], cwd=repo, env=cp1252, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
        assert "Pfeil → 漢字" in done.stdout.decode("utf-8"), args


def test_instructions_on_stdin_are_read_as_utf8_whatever_the_pipes_default(
    repo: Path, win: dict[str, str]
) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    commit_all(repo)
    lease = str(as_json(repo, win, "claim", "a", "--json")["lease"])
    task(repo, win, "finish", "a", "--lease", lease, "--exit-code", "1")
    done = subprocess.run(
        [TASK, "retry", "a", "--instructions-file", "-"],
        cwd=repo,
        env={**win, "PYTHONIOENCODING": "cp1252"},
        input="fix the ü → 日本\r\nthen rerun\r\n".encode(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    shown = as_json(repo, win, "show", "a", "--json")["entry"]["instructions"]
    assert shown["text"] == "fix the ü → 日本\nthen rerun"
