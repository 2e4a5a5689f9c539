"""git.py against real repositories: discovery, trees, and batched blob reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskfiles import git as tgit
from taskfiles.errors import GitError, NotFoundError

from .conftest import commit_all, git, write_task


def hash_object(root: Path, data: bytes) -> str:
    path = root / "_blob"
    path.write_bytes(data)
    blob = git(root, "hash-object", "-w", str(path)).strip()
    path.unlink()
    return blob


def git_children() -> list[str]:
    """Command lines of this process's child git processes that are still alive."""
    import psutil

    found = []
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and child.name().startswith("git"):
                found.append(" ".join(child.cmdline()))
        except psutil.Error:
            continue
    return found


@pytest.mark.planning
def test_discover_main_and_linked_worktree(repo: Path, tmp_path: Path) -> None:
    write_task(repo, "a.md", "x\n")
    commit_all(repo)
    main = tgit.discover(repo / "tasks")
    assert main == tgit.RepoPaths(repo.resolve(), repo.resolve() / ".git", repo.resolve() / ".git")
    other = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(other), "-b", "side")
    linked = tgit.discover(other)
    assert linked is not None and linked.root == other.resolve()
    assert linked.common_dir == repo.resolve() / ".git" and linked.git_dir != linked.common_dir
    assert linked.main_root == repo.resolve()
    assert tgit.discover(tmp_path) is None


@pytest.mark.planning
def test_read_blobs_returns_exact_bytes(repo: Path) -> None:
    contents = [
        b"",
        b"one line\n",
        b"no final newline",
        b"\n\n",
        b"\x00\xff binary\nwith\nnewlines\n",
        b"x" * 70_000,
    ]
    blobs = [hash_object(repo, data) for data in contents]
    found = tgit.read_blobs(repo, [*reversed(blobs), blobs[0]])
    assert found == dict(zip(blobs, contents, strict=True))


def test_read_blobs_many_in_one_process(repo: Path) -> None:
    # More ids and more output than a pipe buffer holds: the batch must not deadlock.
    for index in range(3000):
        write_task(repo, f"t{index}.md", f"task {index}\n" * 10)
    commit_all(repo)
    entries = tgit.ls_tree(repo, "main", "tasks")
    found = tgit.read_blobs(repo, [e.blob for e in entries])
    assert len(found) == 3000
    assert all(found[e.blob] == (f"task {e.path[7:-3]}\n" * 10).encode() for e in entries)
    assert git_children() == []  # every Repo was closed, its processes reaped


@pytest.mark.planning
def test_read_blobs_empty_and_missing(repo: Path) -> None:
    assert tgit.read_blobs(repo, []) == {}
    with pytest.raises(GitError, match="missing objects"):
        tgit.read_blobs(repo, ["0123456789012345678901234567890123456789"])


@pytest.mark.planning
def test_blob_sizes(repo: Path) -> None:
    small, big = hash_object(repo, b"abc"), hash_object(repo, b"y" * 5000)
    assert tgit.blob_sizes(repo, [small, big, small]) == {small: 3, big: 5000}
    assert tgit.blob_sizes(repo, []) == {}


def test_ls_tree_with_and_without_sizes(repo: Path) -> None:
    write_task(repo, "w/a.md", "hello\n")
    (repo / "tasks" / "link.md").symlink_to("w/a.md")
    write_task(repo, "../other.txt", "not under tasks\n")
    commit_all(repo)
    with_sizes = tgit.ls_tree(repo, "main", "tasks")
    assert [(e.path, e.mode, e.size) for e in with_sizes] == [
        ("tasks/link.md", "120000", 6),
        ("tasks/w/a.md", "100644", 6),
    ]
    without = tgit.ls_tree(repo, "main", "tasks", sizes=False)
    assert [(e.path, e.blob, e.size) for e in without] == [(e.path, e.blob, None) for e in with_sizes]
    assert tgit.read_blobs(repo, [with_sizes[1].blob]) == {with_sizes[1].blob: b"hello\n"}


@pytest.mark.planning
def test_resolve_commit_and_blob_at(repo: Path) -> None:
    write_task(repo, "a.md", "v1\n")
    commit = commit_all(repo)
    assert tgit.resolve_commit(repo, "main") == commit
    blob = tgit.blob_at(repo, "main", "tasks/a.md")
    assert blob is not None and tgit.read_blobs(repo, [blob]) == {blob: b"v1\n"}
    assert tgit.blob_at(repo, "main", "tasks/none.md") is None
    with pytest.raises(NotFoundError, match="does not exist"):
        tgit.resolve_commit(repo, "nope")


@pytest.mark.planning
def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not a git repository"):
        tgit.read_blobs(tmp_path, ["0123456789012345678901234567890123456789"])


def test_add_worktree_creates_reuses_and_starts_fresh(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\n---\n")
    base = commit_all(repo)
    path = repo / ".worktrees" / "a"
    assert tgit.add_worktree(repo, path, "task/a", "main") is True
    (path / "work.txt").write_text("work\n")
    git(path, "add", "work.txt")
    git(path, "commit", "-q", "-m", "work")
    assert tgit.add_worktree(repo, path, "task/a", "main") is False  # reused as it is
    assert (path / "work.txt").exists()
    assert tgit.add_worktree(repo, path, "task/a", "main", fresh=True) is True
    assert git(path, "rev-parse", "HEAD").strip() == base and not (path / "work.txt").exists()
    listed = {w.path: w.branch for w in tgit.worktrees(repo)}
    assert listed[path.resolve()] == "task/a" and listed[repo.resolve()] == "main"


def test_add_worktree_checks_out_an_existing_branch_and_refuses_strays(repo: Path) -> None:
    write_task(repo, "a.md", "x\n")
    commit_all(repo)
    git(repo, "branch", "task/b")
    path = repo / ".worktrees" / "b"
    assert tgit.add_worktree(repo, path, "task/b", "main")
    with pytest.raises(GitError, match="is a worktree on task/b, not task/c"):
        tgit.add_worktree(repo, path, "task/c", "main")
    stray = repo / ".worktrees" / "stray"
    stray.mkdir()
    with pytest.raises(GitError, match="exists but is not a git worktree"):
        tgit.add_worktree(repo, stray, "task/stray", "main")


def test_remove_worktree_keeps_the_branch_and_refuses_a_dirty_one(repo: Path) -> None:
    write_task(repo, "a.md", "x\n")
    commit_all(repo)
    path = repo / ".worktrees" / "a"
    tgit.add_worktree(repo, path, "task/a", "main")
    (path / "scratch.txt").write_text("uncommitted\n")
    with pytest.raises(GitError):
        tgit.remove_worktree(repo, path)
    assert path.exists()
    (path / "scratch.txt").unlink()
    assert tgit.remove_worktree(repo, path) is True
    assert not path.exists() and git(repo, "branch", "--list", "task/a").strip()
    assert tgit.remove_worktree(repo, path) is False


def test_ensure_excluded_writes_info_exclude_once(repo: Path) -> None:
    assert tgit.ensure_excluded(repo / ".git", "/.worktrees/") is True
    assert tgit.ensure_excluded(repo / ".git", "/.worktrees/") is False
    assert (repo / ".git" / "info" / "exclude").read_text().splitlines().count("/.worktrees/") == 1
    (repo / ".worktrees" / "x").mkdir(parents=True)
    (repo / ".worktrees" / "x" / "f").write_text("f")
    assert git(repo, "status", "--porcelain") == ""
