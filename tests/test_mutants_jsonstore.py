"""The JSON store's behaviours that mutation testing (issue 16) found untested.

Real files in tmp_path; the clock is the only fake. A log follower's waits are
bounded by count, not by seconds: ``Waits`` is the poll interval, and a follower
that waits more often than the attempt's end allows fails at once instead of
hanging the suite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import pytest

from taskfiles.registry.jsonstore import JsonRegistry

from .conftest import TEST_ACTOR, ManualClock


@pytest.fixture
def reg(tmp_path: Path, clock: ManualClock) -> JsonRegistry:
    return JsonRegistry(tmp_path / "registry", clock=clock, actor=TEST_ACTOR)


def running(reg: JsonRegistry, slug: str = "fix-login") -> int:
    lease = reg.claim(slug, worker="w1").lease
    reg.start(slug, lease, pid=os.getpid(), worktree=f".worktrees/{slug}", branch=f"task/{slug}")
    return lease


class Waits:
    """A poll interval of 0 s that counts the follower's waits (``time.sleep`` reads it
    through ``__index__``) and fails the test on the wait past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def __index__(self) -> int:
        self.count += 1
        if self.count > self.limit:
            raise AssertionError(f"the follower waited past its limit of {self.limit}: it should have ended")
        return 0

    @property
    def poll(self) -> float:
        return cast(float, self)


def test_a_follower_ends_within_one_wait_of_the_attempts_end(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "one", lease=lease)
    waits = Waits(limit=1)
    follower = reg.follow_logs("fix-login", poll=waits.poll)
    assert next(follower).message == "one"  # already written: no wait
    reg.log("fix-login", "two", lease=lease)
    reg.finish("fix-login", lease, 0)
    assert [r.message for r in follower] == ["two"]  # one wait, then the end is seen
    assert waits.count == 1


def test_a_follower_of_an_attempt_that_is_over_reads_once_and_never_waits(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "only", lease=lease)
    reg.finish("fix-login", lease, 1)
    waits = Waits(limit=0)
    assert [r.message for r in reg.follow_logs("fix-login", poll=waits.poll)] == ["only"]
    assert waits.count == 0
