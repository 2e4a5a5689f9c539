"""The suite's per-test timeout (pytest-timeout, [tool.pytest.ini_options] in pyproject.toml):
a test that hangs fails naming itself, and the run goes on to the next test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

HANGS = """\
import time

import pytest


@pytest.mark.timeout(1)
def test_waits_for_ever():
    time.sleep(10**6)


def test_after_it():
    pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_hanging_test_fails_with_its_name_and_the_run_goes_on(tmp_path: Path, workers: list[str]) -> None:
    (tmp_path / "test_hangs.py").write_text(HANGS, encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "-c", str(PYPROJECT), "--rootdir", str(tmp_path)]
    done = subprocess.run(
        [*command, "-p", "no:cacheprovider", *workers, str(tmp_path / "test_hangs.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,  # the inner timeout is 1 s: this only keeps a broken setup from hanging here
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "FAILED test_hangs.py::test_waits_for_ever - Failed: Timeout" in out, out
    assert "1 failed, 1 passed" in out, out
