"""When each task file was created: the author date of the commit that added it.

Renames are followed: a file moved to another workstream keeps the date it was first
added under its old name. A file added again after it was deleted counts from the new
add. An uncommitted file has no date.

One ``git log`` over the whole tasks folder answers for every file at once (never one
call per task). The answer is cached in ``.git/taskfiles/created.json`` (per worktree,
as HEAD is), keyed by the HEAD commit it was computed at: while HEAD stays, the cache
is the answer; when HEAD moves forward, only ``OLD..HEAD`` is read and applied; after a
rewrite (HEAD no longer descends from the cached commit) it is computed afresh. A shallow
clone's history starts at its boundary commits, which git shows adding every file: the
cache also records that boundary, so deepening the clone (``git fetch --unshallow``)
computes the dates afresh. The cache holds derived data only: deleting it is always safe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import orjson  # reads the cache in half json's time: 3.5 MB at 50,000 tasks, on every list --json

from .. import git
from ..config import Config
from ..errors import NotFoundError

CACHE = "created.json"
VERSION = 2  # 2: the shallow boundary is part of the key


def created_dates(config: Config) -> Mapping[str, str]:
    """Repository-relative path -> ISO date-time its file was first committed (with renames
    followed), for every file under the tasks folder at HEAD. Empty outside git or before
    the first commit."""
    return start(config)()


def start(config: Config) -> Callable[[], Mapping[str, str]]:
    """``created_dates`` begun now and answered by calling what it returns. When the cache
    does not answer, the ``git log`` starts here and runs on another core while the caller
    works on; the call waits for it, applies it, writes the cache and raises its errors."""
    repo = config.repo
    if repo is None:
        return dict
    head = git.peek_ref(repo, "HEAD")
    if head is None:
        if _unborn(repo):  # no commit yet: nothing was ever committed (and no gitpython import)
            return dict
        try:
            head = git.resolve_commit(config.root, "HEAD")
        except NotFoundError:
            return dict
    folder = config.relpath(config.tasks_dir)
    path = repo.git_dir / "taskfiles" / CACHE
    shallow = git.shallow_commits(repo)
    cached = _read(path, folder, shallow)
    if cached is not None and cached[0] == head:
        dates = cached[1]
        return lambda: dates
    since = cached if cached is not None and git.is_ancestor(config.root, cached[0], head) else None
    log = git.start_folder_log(config.root, folder, since[0] if since else None)

    def finish() -> Mapping[str, str]:
        dates = apply(dict(since[1]) if since else {}, log.result())
        key = {"version": VERSION, "folder": folder, "shallow": shallow, "head": head}
        _write(path, {**key, "created": dates})
        return dates

    return finish


def _unborn(repo: git.RepoPaths) -> bool:
    """Whether HEAD names a branch that has no commit yet (``peek_ref`` found no ref file
    and no packed ref for it, so git has nothing either)."""
    try:
        return (repo.git_dir / "HEAD").read_text(encoding="utf-8").startswith("ref:")
    except OSError:
        return False


def apply(dates: dict[str, str], log: Iterable[git.LogEntry]) -> dict[str, str]:
    """``dates`` moved forward through ``log`` (oldest first): adds and copies start a date,
    renames carry theirs over, deletes end it."""
    for entry in log:
        for change in entry.files:
            if change.status in ("A", "C"):
                dates[change.path] = entry.date
            elif change.status == "R" and change.old_path is not None:
                dates[change.path] = dates.pop(change.old_path, entry.date)
            elif change.status == "D":
                dates.pop(change.path, None)
    return dates


def _read(path: Path, folder: str, shallow: list[str]) -> tuple[str, dict[str, str]] | None:
    """The cached (head, dates) for ``folder`` and the clone's ``shallow`` boundary; None when
    there is none or it is not usable."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION or data.get("folder") != folder:
        return None
    if data.get("shallow") != shallow:
        return None
    head, dates = data.get("head"), data.get("created")
    if not isinstance(head, str) or not isinstance(dates, dict):
        return None
    return head, dates


def _write(path: Path, data: Mapping[str, object]) -> None:
    """Replace the cache file; a failure (no room, no rights) only costs the next run a walk."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(orjson.dumps(data))
        os.replace(tmp, path)  # no fsync: derived data; a torn file reads as no cache
    except OSError:
        tmp.unlink(missing_ok=True)
