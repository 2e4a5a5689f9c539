"""Shared fixtures: real git repositories in tmp_path."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .harness import Site

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.invalid",
}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's registry override or actor name; git works without config."""
    for name in ("TASKFILES_REGISTRY", "TASKFILES_ACTOR", "TASKFILES_REPO"):
        monkeypatch.delenv(name, raising=False)
    for name, value in GIT_IDENTITY.items():
        monkeypatch.setenv(name, value)
    yield


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its stdout; fail the test on error."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ}
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository on branch main with a tasks/ folder."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "tasks").mkdir()
    return root


def write_task(root: Path, rel: str, text: str) -> Path:
    """Write ``tasks/<rel>`` (creating folders) and return its path."""
    path = root / "tasks" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def commit_all(root: Path, message: str = "tasks") -> str:
    """Commit everything in ``root`` and return the commit id."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A repository set up for dispatch (tests/harness.py); its workers are killed afterwards."""
    from .harness import make_site  # harness imports this module's helpers

    made = make_site(tmp_path)
    yield made
    made.kill_all()


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
