"""Load every task file, from the working tree or from a git ref.

People read the working tree; the dispatcher reads a ref (the base branch) so
it acts on what has landed, not on someone's uncommitted edit. Both paths go
through the parse cache (``cache.py``); owner aliases are applied after it, so
changing them never needs a reparse.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from operator import attrgetter, itemgetter
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import NamedTuple

from .. import git, portable
from ..config import Config
from ..slugs import RESERVED
from . import cache
from .taskfile import Parsed, Problem, Schema, Task, parse

NOT_TASKS = frozenset({"README.md", *(f"{stem}.md" for stem in RESERVED)})
SYMLINK_MODE = "120000"
NO_CACHE = cache.CacheStats()
# The walk lists a folder through its descriptor and lstats each name relative to it; Windows
# cannot open a folder, and walks by path.
_AT_FOLDER = os.stat in os.supports_dir_fd and os.listdir in os.supports_fd  # lstat is stat


@dataclass(frozen=True)
class TaskSet:
    """Every usable task, and every problem found while reading them."""

    tasks: tuple[Task, ...]  # sorted by path
    problems: tuple[Problem, ...]
    skipped: tuple[str, ...]  # paths that produced no task
    ref: str | None = None  # None: the working tree
    commit: str | None = None  # the commit ``ref`` named when read
    stats: cache.CacheStats = NO_CACHE  # what the parse cache did for this load
    paths_to_blobs: Mapping[str, str] = field(default_factory=dict)  # at a ref only
    bodies: bool = True  # False: read without them (every body is ""); with_body reads one

    @cached_property
    def by_slug(self) -> dict[str, Task]:
        return {task.slug: task for task in self.tasks}

    @cached_property
    def blobs(self) -> dict[str, str]:
        """slug -> blob id of its task file, for sets read at a ref (empty for the tree)."""
        blob_at = self.paths_to_blobs.get  # one look-up a task: the heartbeat asks at 50,000
        return {t.slug: blob for t in self.tasks if (blob := blob_at(t.path)) is not None}

    def get(self, slug: str) -> Task | None:
        return self.by_slug.get(slug)


def schema_of(config: Config) -> Schema:
    """The parser's view of the configuration."""
    return Schema(config.priorities, config.default_priority)


def load(config: Config, ref: str | None = None, *, bodies: bool = True) -> TaskSet:
    """Read all tasks from the working tree, or from ``ref`` when given.

    ``bodies=False`` is for readers of the frontmatter alone (``task list``, the heartbeat's
    classification): when the cache answers for the whole set, its bodies (four fifths of
    its bytes) are not read and every task's body is "" (``TaskSet.bodies`` says so);
    ``with_body`` reads one. A set that had to be parsed keeps its bodies.
    """
    if ref is None:
        return load_tree(config, bodies=bodies)
    with cache.gc_paused():
        return _load_ref(config, ref, bodies)


def with_body(config: Config, tasks: TaskSet, task: Task) -> Task:
    """``task`` of ``tasks`` with its body: when ``tasks`` was read without bodies, read from
    its blob (at a ref) or its file (the working tree, which may have changed since)."""
    if tasks.bodies:
        return task
    blob = tasks.paths_to_blobs.get(task.path)
    if blob is not None:
        data: bytes | Parsed = git.read_blobs(config.root, [blob])[blob]
    else:
        data = _read_bytes(str(config.root / task.path), 0, task.path, config)
    folder = _workstream(task.path.removeprefix(_tasks_prefix(config)))
    parsed = data if isinstance(data, Parsed) else parse(data, task.path, folder, schema_of(config))
    return _copy(task, body=parsed.task.body if parsed.task else "")


def load_tree(config: Config, *, now_ns: int | None = None, bodies: bool = True) -> TaskSet:
    """Read all tasks from the working tree, through the tree cache (``bodies``: as ``load``).

    ``now_ns`` is the clock the racy rule compares file times with (default: now);
    files changed within ``cache.RACY_WINDOW_NS`` of it are parsed but not cached.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    with cache.gc_paused():  # ~100k objects are made and kept; collecting mid-way is wasted work
        store = cache.TreeStore(_cache_path(config.git_dir, cache.TREE_FILE), _fingerprint(config))
        listing = _listing(config, stats=store.empty)  # nothing stored: every file will be read
        assembled = store.unchanged(listing.rels, listing.ids, bodies=bodies)
        if assembled is not None:
            stats = cache.CacheStats(hits=listing.file_count, unchanged=True)
            return _task_set(assembled, config, stats=stats, bodies=bodies)
        assembled = _assemble(_scan_tree(listing.files(), config, store, now_ns))
        return _task_set(assembled, config, stats=store.save(assembled))


def _cache_path(folder: Path | None, name: str) -> Path | None:
    """Outside a git repository there is no private folder to keep a cache in."""
    return folder / "taskfiles" / name if folder is not None else None


def _fingerprint(config: Config) -> tuple[object, ...]:
    return cache.fingerprint(schema_of(config), config.relpath(config.tasks_dir), config.max_file_bytes)


def _tasks_prefix(config: Config) -> str:
    """The tasks folder as a prefix of repository paths: "tasks/", or "" when it is the root."""
    folder = config.relpath(config.tasks_dir)
    return "" if folder == "." else folder + "/"


def _is_task_name(name: str) -> bool:
    return name.endswith(".md") and name not in NOT_TASKS and name[0] not in "_."


def _workstream(relative_to_tasks: str) -> str | None:
    folder = relative_to_tasks.rpartition("/")[0]
    return folder or None


Listed = tuple[str, cache.Identity, os.stat_result | None]  # path from the root, identity, lstat


class Listing(NamedTuple):
    """Every task-named file under the tasks folder: their paths joined by ``cache.SEP``,
    their identities joined, and their lstats when kept.

    Joined, because a warm load only compares them with the stored listing (two string
    comparisons). In the walk's order: each folder's files by name, then its subfolders
    by name, so the order depends on the paths alone (not on the order the file system
    lists them) and is close to path order, the order tasks are then read in (the cache
    stores entries in listing order; reading them out of it costs cache misses)."""

    rels: str
    ids: bytes
    stats: list[os.stat_result] | None

    @property
    def file_count(self) -> int:
        return len(self.ids) // cache.IDENTITY_SIZE

    def files(self) -> list[Listed]:
        """One (path, identity, lstat or None) a file, in the listing's order."""
        if not self.ids:
            return []
        width, ids = cache.IDENTITY_SIZE, self.ids
        idents = [ids[at : at + width] for at in range(0, len(ids), width)]
        stats = self.stats if self.stats is not None else [None] * len(idents)
        return list(zip(self.rels.split(cache.SEP), idents, stats, strict=True))


def _listing(config: Config, *, stats: bool) -> Listing:
    """Every task-named file, with its identity, and its lstat when ``stats`` (else the lstat
    of a file the cache cannot answer for is taken again: freeing 50,000 of them costs
    ~25 ms, more than the few files a warm load reads). Hidden folders and symlinked
    folders are not entered; unreadable ones skipped."""
    kept: list[os.stat_result] | None = [] if stats else None
    if not config.tasks_dir.is_dir():
        return Listing("", b"", kept)
    rels: list[str] = []
    ids: list[cache.Identity] = []
    folders = [(str(config.tasks_dir), _tasks_prefix(config))]
    while folders:
        folder, prefix = folders.pop()
        names, subfolders = _list_folder(folder, ids, kept)
        if names:  # each path is its folder's prefix and its name, joined without a loop
            rels.append(prefix + (cache.SEP + prefix).join(names))
        folders.extend((f"{folder}/{name}", f"{prefix}{name}/") for name in reversed(subfolders))
    return Listing(cache.SEP.join(rels), b"".join(ids), kept)


def _list_folder(
    folder: str, ids: list[cache.Identity], kept: list[os.stat_result] | None
) -> tuple[list[str], list[str]]:
    """The task names in ``folder`` and its subfolders, each by name; the tasks' identities
    added to ``ids`` (and lstats to ``kept``). Each lstat is taken relative to the folder,
    so the kernel resolves one name rather than the whole path (~15% of the walk); where
    folders cannot be opened (Windows), it is taken of the folder's path and the name."""
    fd, base = None, f"{folder}/"
    try:
        if _AT_FOLDER:
            fd, base = os.open(folder, os.O_RDONLY | os.O_DIRECTORY), ""
        try:
            listed = sorted(os.listdir(folder if fd is None else fd))
        except OSError:
            if fd is not None:
                os.close(fd)
            raise
    except OSError:
        return [], []
    names, subfolders = [], []
    lstat, identity = os.lstat, cache.identity  # the loop runs once a file: 10,000 to 50,000 times
    try:
        for name in listed:
            if name[0] == ".":
                continue  # neither a task nor a folder that is entered
            try:
                st = lstat(base + name, dir_fd=fd)  # one call gives the type and the identity
            except OSError:
                continue  # deleted since listed
            if S_ISDIR(st.st_mode):
                subfolders.append(name)
            elif _is_task_name(name):
                names.append(name)
                ids.append(identity(st))
                if kept is not None:
                    kept.append(st)
    finally:
        if fd is not None:
            os.close(fd)
    return names, subfolders


def _scan_tree(
    listing: list[Listed], config: Config, store: cache.TreeStore, now_ns: int
) -> list[tuple[str, Parsed]]:
    results = []
    root, skip = str(config.root), len(_tasks_prefix(config))
    for rel, ident, st in listing:
        parsed = store.get(rel, ident)  # a symlink or a pipe is never stored
        if parsed is None:
            path = os.path.join(root, rel)
            if st is None:
                try:
                    st = os.lstat(path)  # the identity is taken again, before the read
                except OSError:
                    continue  # deleted since listed
                ident = cache.identity(st)
            parsed = _read_entry(path, st, ident, rel, rel[skip:], config, store, now_ns)
        if parsed is not None:
            results.append((rel, parsed))
    return results


def _read_entry(
    path: str,
    st: os.stat_result,
    ident: cache.Identity,
    rel: str,
    inner: str,
    config: Config,
    store: cache.TreeStore,
    now_ns: int,
) -> Parsed | None:
    """What the cache could not answer: a changed file, a symlink, or something stranger."""
    if not S_ISREG(st.st_mode):
        store.uncached()
        if S_ISLNK(st.st_mode):
            return _read_symlink(Path(path), rel, _workstream(inner), config)
        return _fatal(rel, "not_regular", "not a regular file (a pipe, socket or device); not read")
    data = _read_bytes(path, st.st_size, rel, config)
    if isinstance(data, Parsed):  # too large or unreadable: reported, never cached
        store.uncached()
        return data
    parsed = parse(data, rel, _workstream(inner), schema_of(config))
    # The identity was taken before the read, so an edit after the read changes it;
    # an edit within the clock tick of the read is what the racy rule is for.
    store.put(rel, ident, parsed, keep=not cache.is_racy(st, now_ns))
    return parsed


def _read_bytes(path: str, size: int, rel: str, config: Config) -> bytes | Parsed:
    """A file's bytes, or the problem that stops them being read.

    ``size`` is the size lstat gave: the first read asks for one byte more (so a file that
    grew shows it), then reads go on to EOF or past the limit. One read of the whole limit
    made a 1 MiB buffer for each file, ~20 us apiece (and open() adds ~5 us of fstat/ioctl).
    """
    limit = config.max_file_bytes
    if size > limit:
        return _too_large(rel, size, config)
    try:
        fd = os.open(path, os.O_RDONLY | portable.FILE_FLAGS)
        try:
            data = os.read(fd, size + 1)
            while len(data) <= limit and (more := os.read(fd, limit + 1 - len(data))):
                data += more
        finally:
            os.close(fd)
    except OSError as exc:
        return _unreadable(rel, exc)
    if len(data) > limit:  # it grew since the stat
        return _too_large(rel, len(data), config)
    return data


def _read_symlink(path: Path, rel: str, workstream: str | None, config: Config) -> Parsed | None:
    """Symlinks are rare: checked and read every time, never cached."""
    target = path.resolve()
    if target.is_dir():
        return None  # a symlinked folder: not entered, like any folder link
    if not target.is_relative_to(config.tasks_dir) or not target.is_file():
        where = config.relpath(config.tasks_dir)
        return _fatal(
            rel, "symlink_outside", f"symlink points outside {where}/ ({config.relpath(target)}); not read"
        )
    try:
        size = target.stat().st_size
        if size > config.max_file_bytes:
            return _too_large(rel, size, config)
        data = target.read_bytes()
    except OSError as exc:
        return _unreadable(rel, exc)
    return parse(data, rel, workstream, schema_of(config))


def _fatal(rel: str, code: str, message: str) -> Parsed:
    return Parsed(None, (Problem(rel, 1, message, code),))


def _unreadable(rel: str, exc: OSError) -> Parsed:
    return _fatal(rel, "unreadable", f"cannot read: {exc.strerror}")


def _too_large(rel: str, size: int, config: Config) -> Parsed:
    limit = config.max_file_bytes
    return _fatal(
        rel, "too_large", f"file is {size} bytes, over the {limit}-byte limit (max_file_bytes); split it"
    )


def _load_ref(config: Config, ref: str, bodies: bool) -> TaskSet:
    """Tasks at ``ref``. When the ref files name a commit read before, the whole
    result comes from the ref store without starting git (or importing gitpython)."""
    store = _ref_store(config, ref)
    if store is not None:
        assembled = store.stored(bodies=bodies)
        if assembled is not None:
            hits = cache.CacheStats(hits=len(assembled[0]), unchanged=True)
            commit = store.fingerprint[-1]
            task_set = _task_set(assembled, config, ref, commit, hits, bodies)  # type: ignore[arg-type]
            return replace(task_set, paths_to_blobs=store.blob_ids())
    commit, entries, results, stats = _read_ref(config, ref)
    assembled = _assemble(results)
    if store is not None:
        _keep_ref(store, entries, dict(results), assembled)
    task_set = _task_set(assembled, config, ref, commit, stats)
    return replace(task_set, paths_to_blobs={e.path: e.blob for e in entries})


_COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 and SHA-256 object names


def _ref_store(config: Config, ref: str) -> cache.TreeStore | None:
    if config.repo is None:
        return None
    key = git.peek_ref(config.repo, ref)
    if key is None:
        return None
    if _COMMIT_ID.fullmatch(ref):
        slot = "commit"  # one file for every commit id (task changes' merge bases), not one each
    else:
        import hashlib  # ~2 ms that only a read at a named ref needs

        slot = hashlib.sha1(ref.encode()).hexdigest()[:12]
    name = cache.REF_FILE.format(slot)
    return cache.TreeStore(_cache_path(config.repo.common_dir, name), (*_fingerprint(config), key))


def _keep_ref(
    store: cache.TreeStore,
    entries: list[git.TreeEntry],
    parsed: dict[str, Parsed],
    assembled: cache.Assembled,
) -> None:
    """Remember the whole result for the commit the ref named (symlinks make it partial)."""
    for entry in entries:
        if entry.mode == SYMLINK_MODE:
            store.uncached()
        else:
            store.put(entry.path, entry.blob.encode(), parsed[entry.path], keep=True)
    store.save(assembled)


def _read_ref(
    config: Config, ref: str
) -> tuple[str, list[git.TreeEntry], list[tuple[str, Parsed]], cache.CacheStats]:
    prefix = _tasks_prefix(config)
    commit = git.resolve_commit(config.root, ref)
    listed = git.ls_commit(config.root, commit, prefix or ".", sizes=False)
    entries = [e for e in listed if _is_task_name(_name(e.path)) and not _hidden(e.path.removeprefix(prefix))]
    common_dir = config.repo.common_dir if config.repo else None
    store = cache.BlobStore(_cache_path(common_dir, cache.BLOB_FILE), _fingerprint(config))
    found = {e.path: store.get(e.blob, e.path) for e in entries if e.mode != SYMLINK_MODE}
    missing = [e for e in entries if e.mode != SYMLINK_MODE and found[e.path] is None]
    found.update(_parse_blobs(config, missing, prefix, store))
    results = [(e.path, found.get(e.path) or _symlink_at_ref(e.path)) for e in entries]
    return commit, entries, results, store.save()


def _hidden(inner: str) -> bool:
    """Inside a folder whose name starts with '.', which the working-tree walk skips too."""
    return "/." in "/" + inner.rpartition("/")[0]


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _parse_blobs(
    config: Config, entries: list[git.TreeEntry], prefix: str, store: cache.BlobStore
) -> dict[str, Parsed]:
    """Parse the blobs the cache did not have; sizes first, so huge blobs are never read."""
    if not entries:
        return {}
    sizes = git.blob_sizes(config.root, [e.blob for e in entries])
    data = git.read_blobs(config.root, [e.blob for e in entries if sizes[e.blob] <= config.max_file_bytes])
    schema = schema_of(config)
    parsed: dict[str, Parsed] = {}
    for entry in entries:
        if entry.blob not in data:
            parsed[entry.path] = _too_large(entry.path, sizes[entry.blob], config)
            continue
        inner = entry.path.removeprefix(prefix)
        parsed[entry.path] = parse(data[entry.blob], entry.path, _workstream(inner), schema)
        store.put(entry.blob, entry.path, parsed[entry.path])
    return parsed


def _symlink_at_ref(path: str) -> Parsed:
    return _fatal(path, "symlink_outside", "symlink in git tree; not read at a ref")


def _assemble(results: list[tuple[str, Parsed]]) -> cache.Assembled:
    """Tasks in path order, every problem, and the paths that gave no task (dupes too)."""
    results.sort(key=itemgetter(0))
    tasks: list[Task] = []
    problems: list[Problem] = []
    skipped: list[str] = []
    first_path: dict[str, str] = {}
    for rel, parsed in results:
        problems.extend(parsed.problems)
        task = parsed.task
        if task is None:
            skipped.append(rel)
            continue
        if task.slug in first_path:
            message = f"duplicate slug {task.slug!r}, also {first_path[task.slug]}; rename one of the files"
            problems.append(Problem(rel, 1, message, "duplicate_slug"))
            skipped.append(rel)
            continue
        first_path[task.slug] = rel
        tasks.append(task)
    return tasks, problems, skipped


def _task_set(
    assembled: cache.Assembled,
    config: Config,
    ref: str | None = None,
    commit: str | None = None,
    stats: cache.CacheStats = NO_CACHE,
    bodies: bool = True,
) -> TaskSet:
    """The TaskSet, owners canonical: aliases come from config, after the cache."""
    tasks, problems, skipped = assembled
    if config.owner_aliases:
        tasks = _canonical(tasks, config)
    return TaskSet(tuple(tasks), tuple(problems), tuple(skipped), ref, commit, stats, bodies=bodies)


def _canonical(tasks: list[Task], config: Config) -> list[Task]:
    """``tasks``, each owner that is an alias replaced by its owner: decided once per
    distinct owner, not once per task (a few hundred owners, 50,000 tasks).

    In place: every task here was made by this load (rebuilt from the cache's data or
    parsed) and nothing holds it yet, so setting its owner is part of making it; the
    cache file was written before, or is not written by this load, and so keeps the
    owners as the files name them. Copying each aliased task instead cost ~11 ms at
    50,000 tasks with a fifth of them aliased."""
    owners = list(map(attrgetter("owner"), tasks))
    renamed = {
        o: config.canonical_owner(o)
        for o in set(owners)
        if o is not None and o.lower() in config.owner_aliases
    }
    if renamed:
        for task, owner in zip(tasks, owners, strict=True):
            if owner in renamed:
                task.__dict__["owner"] = renamed[owner]
    return tasks


def _copy(task: Task, **changes: object) -> Task:
    # dataclasses.replace reruns __init__ and costs 5x this copy; aliases are common.
    clone = object.__new__(Task)
    object.__setattr__(clone, "__dict__", {**task.__dict__, **changes})
    return clone
