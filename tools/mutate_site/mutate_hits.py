"""A pytest plugin for `make mutate` (tools/mutate.py loads it with -p): after each test, while
mutmut collects its stats, the functions that test's child processes reached (written by
sitecustomize.py beside this file) count as reached by the test, so mutmut runs that test on
their mutants."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)  # before mutmut's own teardown hook files the test's hits
def pytest_runtest_teardown(item: pytest.Item) -> None:
    hits = os.environ.get("TASKFILES_MUTATE_HITS")
    if os.environ.get("MUTANT_UNDER_TEST") != "stats" or not hits:
        return
    path = Path(hits)
    try:
        names = path.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return
    path.unlink()
    from mutmut.state import state

    state()._stats.update(names)
