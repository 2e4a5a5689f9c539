"""Slugs across branches: which slugs the base ref and every branch hold, read at once.

Two branches can each add ``fix-login.md`` without either seeing the other; the merge
then holds two tasks with one slug. ``task new`` passes over every slug taken on the
base ref or on any local or remote-tracking branch (``edits.create``), and ``task validate``
reports a file added here whose slug the base ref got at another path (``collisions``).
Both read names and object ids only, never a task file's content: a few git processes
however many branches there are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

from .. import git
from ..config import Config
from ..slugs import candidates, slug_of
from .source import TaskSet
from .taskfile import Problem

BRANCHES = ("refs/heads", "refs/remotes")


@dataclass(frozen=True)
class Place:
    """Where a slug is taken: a file on a ref (its short name), or in the working tree."""

    ref: str | None  # None: the working tree
    path: str  # from the repository root

    def __str__(self) -> str:
        return f"on {self.ref} ({self.path})" if self.ref else f"in the working tree ({self.path})"


def taken_on_refs(config: Config) -> dict[str, Place]:
    """Every slug on the base ref and on every local and remote-tracking branch, with the
    first place it was found: the base ref first, then the branches by name.

    A slug here is the stem of any ``.md`` file under the tasks folder, as ``task new``
    counts the working tree's. Four git processes however many branches: ``for-each-ref``,
    one ``cat-file --batch-check`` for each ref's tasks folder, an ``ls-tree`` of the base
    ref's (else the first branch's), and one ``diff-tree --stdin`` for what each other
    folder adds to it.
    """
    if config.repo is None:
        return {}
    folder = _folder(config)
    revs = {config.base_ref: config.base_ref}
    for tip in git.ref_tips(config.root, *BRANCHES):
        revs.setdefault(tip.short, tip.commit)
    trees = git.tree_ids(config.root, [_at(rev, folder) for rev in revs.values()])
    at_ref = {ref: trees[_at(rev, folder)] for ref, rev in revs.items() if _at(rev, folder) in trees}
    if not at_ref:
        return {}
    first = next(iter(at_ref.values()))
    added = git.added_files(config.root, first, at_ref.values())
    added[first] = list(git.tree_files(config.root, first))
    taken: dict[str, Place] = {}
    for ref, tree in at_ref.items():
        for path in added.pop(tree, ()):  # a tree that several refs share counts for the first
            if path.endswith(".md"):
                taken.setdefault(slug_of(path), Place(ref, _join(folder, path)))
    return taken


def in_tree(config: Config, slug: str) -> Place:
    """Where the working tree holds ``slug``."""
    found = next(config.tasks_dir.rglob(f"{slug}.md"), config.tasks_dir / f"{slug}.md")
    return Place(None, config.relpath(found))


def collisions(
    config: Config, taskset: TaskSet, base: str, wanted: Collection[str] | None = None
) -> list[Problem]:
    """``slug_collision`` for each task file of ``taskset`` (in ``wanted``, when given) whose
    slug ``base`` holds at another path, with other content, added on either side since
    they forked: merging would give one slug two files. Empty when ``base`` names nothing.

    The same path with other content is an edit, and a path that was in the history both
    share is a move: neither is reported. Costs one ``ls-tree`` of ``base``'s tasks folder;
    only a slug found at two paths costs more (that file's hash, and a merge-base).
    """
    folder = _folder(config)
    there = _task_files(config, base, folder)
    if not there:
        return []  # no base ref (or no tasks on it)
    here = {task.path for task in taskset.tasks}.union(taskset.skipped)
    added = here - there.keys()
    if wanted is not None:
        added &= set(wanted)
    if not added:
        return []  # the usual case: every file here is at the same path there
    by_name = {path.rpartition("/")[2]: path for path in there}  # the name is the slug's
    found = []
    for path in sorted(added):
        other = by_name.get(path.rpartition("/")[2])
        if (
            other
            and other not in here
            and _blob_here(config, taskset, path, len(there[other])) != there[other]
        ):
            found.append((path, other))
    if not found:
        return []
    shared = _shared_history(config, taskset, base, folder)
    taken = here | set(there)
    return [
        _collision(path, base, other, taken)
        for path, other in found
        if path not in shared and other not in shared
    ]


def _collision(path: str, base: str, other: str, paths: set[str]) -> Problem:
    slug = slug_of(path)
    slugs = {slug_of(p) for p in paths}
    free = next((c for c in candidates(slug) if c not in slugs), f"{slug}-2")
    renamed = f"{path.rpartition('/')[0]}/{free}.md".lstrip("/")
    message = (
        f"slug '{slug}' is also {base}:{other}, a file added since the two forked: merged, one "
        f"slug would name two tasks; rename this one (git mv {path} {renamed}, and update the "
        f"depends_on lists that name '{slug}'), or delete one if they are the same task"
    )
    return Problem(path, 1, message, "slug_collision")


def _task_files(config: Config, rev: str, folder: str) -> dict[str, str]:
    """Path -> blob id of every markdown file at ``rev`` that could be a task (files in
    hidden folders are not, as the working-tree walk skips them); empty when ``rev``
    names nothing."""
    files = git.files_at(config.repo, rev, folder or ".") if config.repo else None
    return {
        path: blob for path, blob in (files or {}).items() if path.endswith(".md") and "/." not in "/" + path
    }


def _blob_here(config: Config, taskset: TaskSet, path: str, id_length: int) -> str | None:
    """The blob id ``path`` has in ``taskset``: from the ref it was read at, or the file's
    bytes hashed as git hashes a blob (SHA-1, or SHA-256 when the base's ids are that long)."""
    if taskset.ref is not None:
        return taskset.paths_to_blobs.get(path)
    try:
        data = (config.root / path).read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256() if id_length == 64 else hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % len(data) + data)
    return digest.hexdigest()


def _shared_history(config: Config, taskset: TaskSet, base: str, folder: str) -> set[str]:
    """The task files of the commit ``taskset`` and ``base`` last shared (none when they
    share no history, or HEAD has no commit yet)."""
    fork = git.merge_base(config.root, taskset.commit or "HEAD", base)
    return set(_task_files(config, fork, folder)) if fork else set()


def _folder(config: Config) -> str:
    """The tasks folder from the repository root ("" when it is the root)."""
    folder = config.relpath(config.tasks_dir)
    return "" if folder == "." else folder


def _at(rev: str, folder: str) -> str:
    return f"{rev}:{folder}"


def _join(folder: str, path: str) -> str:
    return f"{folder}/{path}" if folder else path
