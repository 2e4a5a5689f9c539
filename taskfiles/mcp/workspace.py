"""The workspace a request acts in: one worktree of one repository, and its registry.

A task file is edited in the worktree the agent works in, and runtime state goes to the
registry every worktree of the repository shares (the configuration finds it through the
git common dir). The server's own folder (``-C/--repo``, else where it was started) is
the default; a client that names a root (MCP ``roots/list``, a ``file://`` URI) works in
that root instead, unless the server was pinned with ``--repo``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..config import Config
from ..config import load as load_config
from ..errors import UsageError
from ..registry import Registry, open_registry

_local = threading.local()  # each thread's open registries: a Registry is meant for one thread


@dataclass(frozen=True)
class Workspace:
    """One worktree's configuration; its registry is the repository's."""

    config: Config

    @classmethod
    def at(cls, folder: Path) -> Workspace:
        """The workspace of the repository around ``folder``."""
        return cls(load_config(folder))

    @property
    def root(self) -> Path:
        """The top of this worktree."""
        return self.config.root

    def registry(self) -> Registry:
        """The registry, opened once per thread and store (stores keep caches that only their
        thread may use; tool calls run in worker threads)."""
        key = self.config.registry_url or str(self.config.registry_dir)
        opened: dict[str, Registry] = _local.__dict__.setdefault("registries", {})
        if key not in opened:
            opened[key] = open_registry(self.config)
        return opened[key]

    def of_task(self, worktree: str | None) -> Workspace:
        """The workspace of a task's own worktree (as its registry entry records it) when that
        folder is there, else this one: a completion belongs in the task's branch."""
        if worktree and Path(worktree).is_dir():
            return Workspace.at(Path(worktree))
        return self


def root_folder(uri: str) -> Path | None:
    """The folder a client's root names (a ``file://`` URI), or None for any other kind."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parts.path))


def choose(default: Workspace, roots: list[str]) -> Workspace:
    """The workspace of the client's first ``file://`` root that is a folder; ``default``
    when it names none. UsageError for a root that names no folder: editing elsewhere would
    put task files in the wrong worktree."""
    for uri in roots:
        folder = root_folder(uri)
        if folder is None:
            continue
        if not folder.is_dir():
            raise UsageError(f"the client's root {uri} is not a folder; open the repository's worktree")
        return Workspace.at(folder)
    return default
