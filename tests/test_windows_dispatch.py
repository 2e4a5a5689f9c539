"""The dispatcher as on Windows (tests/oslike): no process sessions to stop a worker with, so
``task-manager-heartbeat`` and ``task worker run`` stop at once with one clear error, while
the commands an agent uses go on working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import commit_all, write_task

BIN = Path(sys.executable).parent
STOPPED = [  # (the command the error names, a command line)
    ("task-manager-heartbeat", ["task-manager-heartbeat"]),
    ("task-manager-heartbeat", ["task-manager-heartbeat", "--loop", "1"]),
    ("task-manager-heartbeat", ["task-manager-heartbeat", "--dry-run", "--json"]),
    ("task heartbeat-cycle", ["task", "heartbeat-cycle", "--no-dispatch"]),
    ("task worker run", ["task", "worker", "run", "a", "--lease", "1"]),
]


def run(root: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=root, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(("name", "argv"), STOPPED, ids=[" ".join(argv) for _, argv in STOPPED])
def test_the_dispatcher_stops_with_one_error_and_touches_nothing(
    repo: Path, windows_env: dict[str, str], name: str, argv: list[str]
) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    commit_all(repo)
    claimed = run(repo, windows_env, "task", "claim", "a", "--json")  # an agent's command: works
    assert claimed.returncode == 0, claimed.stderr
    before = json.loads(run(repo, windows_env, "task", "show", "a", "--json").stdout)["entry"]
    done = run(repo, windows_env, *argv)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: {name} cannot run on this system")
    assert "run the dispatcher on Linux, macOS or WSL" in done.stderr
    assert "no process sessions" in done.stderr and "Traceback" not in done.stderr
    after = json.loads(run(repo, windows_env, "task", "show", "a", "--json").stdout)["entry"]
    assert after == before
    assert not (repo / "registry" / "snapshot.json").exists()  # no cycle recorded
