"""Every git call the package makes goes through this module.

Repository discovery reads ``.git`` files by hand: it runs on every command and
importing gitpython costs more than the rest of a warm ``task list``. Everything
that talks to git proper uses gitpython, imported lazily, with plumbing calls
(``ls-tree``, ``cat-file --batch``) where its object model would be slow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import GitError, NotFoundError

if TYPE_CHECKING:
    import git as gitpython


@dataclass(frozen=True)
class RepoPaths:
    """Where a worktree lives and where its shared git data lives."""

    root: Path  # top of this worktree
    git_dir: Path  # this worktree's private git dir
    common_dir: Path  # shared by all worktrees of the repository

    @property
    def main_root(self) -> Path:
        """The main worktree's top folder (the registry's default home)."""
        return self.common_dir.parent if self.common_dir.name == ".git" else self.common_dir


def discover(start: Path) -> RepoPaths | None:
    """Find the git worktree containing ``start``, or None outside any repository."""
    here = start.resolve()
    for folder in (here, *here.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return RepoPaths(folder, dot_git, dot_git)
        if dot_git.is_file():
            git_dir = _read_gitdir_file(dot_git)
            return RepoPaths(folder, git_dir, _common_dir(git_dir))
    return None


def _read_gitdir_file(dot_git: Path) -> Path:
    text = dot_git.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        raise GitError(f"{dot_git}: expected 'gitdir: <path>', found {text[:40]!r}")
    target = Path(text.removeprefix("gitdir:").strip())
    return (dot_git.parent / target).resolve()


def _common_dir(git_dir: Path) -> Path:
    pointer = git_dir / "commondir"
    if not pointer.is_file():
        return git_dir
    return (git_dir / pointer.read_text(encoding="utf-8").strip()).resolve()


@contextmanager
def open_repo(root: Path) -> Iterator[gitpython.Repo]:
    """A gitpython Repo that is always closed (its cat-file processes reaped)."""
    import git as gitpython

    try:
        repo = gitpython.Repo(root)
    except (gitpython.InvalidGitRepositoryError, gitpython.NoSuchPathError) as exc:
        raise GitError(f"{root} is not a git repository; run 'git init' first") from exc
    try:
        yield repo
    finally:
        repo.close()


def _run(repo: gitpython.Repo, *args: str) -> str:
    import git as gitpython

    try:
        return str(repo.git.execute(["git", *args]))
    except gitpython.GitCommandError as exc:
        stderr = (exc.stderr or "").strip().removeprefix("stderr: ").strip("'\n ")
        raise GitError(f"git {' '.join(args)} failed: {stderr}") from exc


def resolve_commit(root: Path, ref: str) -> str:
    """The commit id ``ref`` names; NotFoundError with a hint when it names nothing."""
    with open_repo(root) as repo:
        try:
            return _run(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except GitError:
            raise NotFoundError(
                f"git ref {ref!r} does not exist; check 'git branch -a' or run 'git fetch'"
            ) from None


@dataclass(frozen=True)
class TreeEntry:
    """One file of a tree listing."""

    path: str  # relative to the repository root, posix separators
    blob: str
    mode: str
    size: int


def ls_tree(root: Path, ref: str, folder: str) -> list[TreeEntry]:
    """Every file under ``folder`` at ``ref``, with blob ids and sizes."""
    commit = resolve_commit(root, ref)
    with open_repo(root) as repo:
        out = _run(repo, "ls-tree", "-r", "-z", "--long", "--full-tree", commit, "--", folder)
    entries = []
    for record in out.split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        mode, kind, blob, size = meta.split()
        if kind == "blob":
            entries.append(TreeEntry(path, blob, mode, int(size) if size != "-" else 0))
    return entries


def read_blobs(root: Path, blobs: Iterable[str]) -> dict[str, bytes]:
    """The contents of many blobs, read through one ``cat-file --batch`` process."""
    wanted = list(dict.fromkeys(blobs))
    if not wanted:
        return {}
    with open_repo(root) as repo:
        return {blob: repo.git.get_object_data(blob)[3] for blob in wanted}


def blob_at(root: Path, ref: str, path: str) -> str | None:
    """The blob id of ``path`` at ``ref``, or None when the file is not there."""
    with open_repo(root) as repo:
        out = _run(repo, "ls-tree", "-z", ref, "--", path)
    if not out:
        return None
    return out.split("\t", 1)[0].split()[2]


def env_without_git_vars() -> dict[str, str]:
    """The environment minus GIT_DIR and friends, for subprocesses in other worktrees."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
