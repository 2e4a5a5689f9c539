"""Fetch the base ref before a cycle reads it, so a completion merged on the server is seen
by every dispatch host, not only by the one whose clone it was merged from.

Off unless ``[heartbeat] fetch`` names a remote. The base ref must then be that remote's
branch (``origin/main``): a fetch moves remote-tracking refs, never a local branch. A
fetch that fails or runs past ``fetch_timeout_seconds`` is a warning, and the cycle goes
on with the ref as it was: a host that cannot reach the server still reconciles and
still dispatches what it knows to be ready.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .. import git
from ..config import Config
from ..errors import ConfigError, GitError


@dataclass(frozen=True)
class Fetched:
    """One fetch of the base ref's branch: from where, how long, and why it failed (if it did)."""

    remote: str
    branch: str
    base_ref: str
    error: str | None = None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the base ref is as the remote has it now."""
        return self.error is None

    @property
    def warning(self) -> str | None:
        """What a failed fetch means for the cycle; None when it worked."""
        if self.error is None:
            return None
        return f"fetch failed: {self.error}; this cycle reads {self.base_ref} as it was before"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: remote, branch, ok, error, duration_ms."""
        return {
            "remote": self.remote,
            "branch": self.branch,
            "ok": self.ok,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


def tracked_branch(base_ref: str, remote: str) -> str:
    """The branch of ``remote`` that ``base_ref`` names (``origin/main`` -> ``main``);
    ConfigError when it names none, since fetching could then never change what is read."""
    for prefix in (f"refs/remotes/{remote}/", f"remotes/{remote}/", f"{remote}/"):
        branch = base_ref.removeprefix(prefix)
        if branch != base_ref and branch:
            return branch
    raise ConfigError(
        f"[heartbeat] fetch = {remote!r} fetches {remote}'s branches, but base_ref {base_ref!r} is not "
        f"one of them, so a fetch would never change what the cycle reads; set base_ref = "
        f"'{remote}/<branch>' (e.g. '{remote}/main'), or fetch = false"
    )


def fetch_base(config: Config, *, dry_run: bool = False) -> Fetched | None:
    """Fetch the base ref's branch when ``[heartbeat] fetch`` asks for it (not in a dry run,
    which changes nothing); None when there was nothing to fetch."""
    settings = config.heartbeat
    if settings.fetch is None:
        return None
    branch = tracked_branch(config.base_ref, settings.fetch)
    if dry_run:
        return None
    started = time.perf_counter()
    error = None
    try:
        git.fetch(config.root, settings.fetch, branch, timeout=settings.fetch_timeout_seconds)
    except GitError as exc:
        error = str(exc)
    took = round((time.perf_counter() - started) * 1000, 1)
    return Fetched(settings.fetch, branch, config.base_ref, error, took)
