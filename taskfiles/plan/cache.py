"""The parse cache: each task file is parsed once, then served while it is unchanged.

Two stores, one file each, inside git's own folders so they never show up in
``git status`` and go away with the clone:

- the tree store, ``<git dir>/taskfiles/tree-cache.pickle`` (per worktree): every
  file's parse result with its identity (mtime_ns, size, inode, ctime_ns), in path
  order, plus the assembled result. When the listing and every identity are
  exactly as stored, the whole result is rebuilt in one pass; otherwise each file
  whose identity still matches is reused and the rest are parsed.
- the blob store, ``<common dir>/taskfiles/blob-cache.pickle`` (shared by the
  worktrees): entries keyed by (blob id, path). Blobs never change, so these
  entries never go stale.

A file's identity can stay the same across an edit that lands within the file
system's timestamp granularity of the read, so, as git does for its index, a file
whose mtime or ctime is within ``RACY_WINDOW_NS`` of the scan is parsed but not
stored ("racy"). Every later edit changes its ctime, which the kernel sets and
nobody can set back.

Each file starts with a fingerprint of everything that shapes parse results (the
cache format, the package's and PyYAML's source files, the dataclass fields, the
schema, the tasks folder, the size limit); a different fingerprint, or a file that
cannot be read or unpickled, means an empty store. Entries are plain dicts and
tuples, which unpickle several times faster than the dataclasses they rebuild, and
the unpickler refuses to name any class but the date types YAML produces.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import pickle
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from .taskfile import Parsed, Problem, Schema, Task

FORMAT = 2
RACY_WINDOW_NS = 2_000_000_000
TREE_FILE = "tree-cache.pickle"
BLOB_FILE = "blob-cache.pickle"
REF_FILE = "ref-{}.pickle"  # per ref name: the whole result at the commit the ref named
# Editing any module of the package (an editable install), upgrading it or
# upgrading PyYAML changes the fingerprint; stating the ~30 files costs ~0.1 ms.
PACKAGE_DIR = Path(__file__).parent
# Modules outside plan/ whose rules decide what a parse returns.
PARSE_RULES = (PACKAGE_DIR.parent / "slugs.py",)
# What pickle.dump raises for data it cannot write: a type it refuses (PicklingError,
# TypeError; AttributeError for a local class) or nesting past the recursion limit.
# The parser builds neither, but a cache write that fails only skips the cache.
UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError, RecursionError)
# Unused blob entries kept beyond the ones a load used, so switching between two
# refs does not reparse; the oldest go first.
BLOB_SPARE = 2000

_TASK_FIELDS = tuple(f.name for f in fields(Task))
_PROBLEM_FIELDS = tuple(f.name for f in fields(Problem))
# Task fields whose values (strings, tuples of strings) repeat across tasks.
_SHARED_FIELDS = (
    "status",
    "priority",
    "owner",
    "milestone",
    "workstream",
    "completed_by",
    "completed_at",
    "pr",
    "depends_on",
    "labels",
)

_T = TypeVar("_T")
Identity = tuple[int, int, int, int]
ProblemRow = tuple[Any, ...]
Entry = tuple[dict[str, Any] | None, tuple[ProblemRow, ...]]  # Task state, problems
Assembled = tuple[list[Task], list[Problem], list[str]]  # tasks, problems, skipped paths


@dataclass(frozen=True)
class CacheStats:
    """What one load did with its cache; ``stored`` is None when the file was not written."""

    hits: int = 0  # files served from the cache
    parsed: int = 0  # files read and parsed
    racy: int = 0  # parsed files left out of the cache because they changed too recently
    stored: int | None = None  # entries written to the cache file by this load
    unchanged: bool = False  # the listing matched the stored one exactly: its result was reused whole


def identity(st: os.stat_result) -> Identity:
    """What says a working-tree file is unchanged since it was cached."""
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def is_racy(st: os.stat_result, now_ns: int) -> bool:
    """True when ``st`` is too close to ``now_ns`` (or in its future) to vouch for the content."""
    cutoff = now_ns - RACY_WINDOW_NS
    return st.st_mtime_ns >= cutoff or st.st_ctime_ns >= cutoff


def fingerprint(schema: Schema, tasks_folder: str, max_file_bytes: int) -> tuple[object, ...]:
    """Everything besides a file's own bytes and path that shapes what it parses to."""
    return (
        FORMAT,
        sys.version_info[:2],
        _source_identity(),
        _TASK_FIELDS,
        _PROBLEM_FIELDS,
        schema.priorities,
        schema.default_priority,
        tasks_folder,
        max_file_bytes,
    )


def _source_identity() -> tuple[tuple[str, int, int], ...]:
    try:
        files = [(e.name, e.stat()) for e in os.scandir(PACKAGE_DIR) if e.name.endswith(".py")]
        files += [(path.name, path.stat()) for path in PARSE_RULES]
        yaml_init = _origin("yaml")
        if yaml_init:
            files.append(("yaml", os.stat(yaml_init)))
    except OSError:  # a module vanished mid-upgrade: match no cache at all
        return (("unknown", time.time_ns(), 0),)
    return tuple(sorted((name, st.st_mtime_ns, st.st_size) for name, st in files))


def _origin(name: str) -> str | None:
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__file__", None)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec else None


class _Encoder:
    """Parse results as plain data, one object for equal small values across tasks."""

    def __init__(self) -> None:
        # Separate tables, so a value of one kind can never stand in for another.
        self._values: dict[object, Any] = {}
        self._lines: dict[tuple[tuple[str, int], ...], Any] = {}
        self._empty: dict[str, Any] = {}

    def entry(self, parsed: Parsed) -> Entry:
        task = parsed.task
        return (None if task is None else self._state(task), tuple(map(_problem_row, parsed.problems)))

    def _state(self, task: Task) -> dict[str, Any]:
        state = dict(task.__dict__)
        values = self._values
        for name in _SHARED_FIELDS:
            state[name] = values.setdefault(state[name], state[name])
        state["lines"] = self._lines.setdefault(tuple(state["lines"].items()), state["lines"])
        for name in ("extra", "legacy"):
            if not state[name]:
                state[name] = self._empty
        return state


def _problem_row(problem: Problem) -> ProblemRow:
    return tuple(problem.__dict__[f] for f in _PROBLEM_FIELDS)


def _decode(entry: Entry) -> Parsed:
    state, problems = entry
    task = None if state is None else _rebuild(Task, state)
    return _rebuild(Parsed, {"task": task, "problems": _problems(problems)})


def _problems(rows: tuple[ProblemRow, ...] | list[ProblemRow]) -> tuple[Problem, ...]:
    return tuple(_rebuild(Problem, dict(zip(_PROBLEM_FIELDS, row, strict=True))) for row in rows)


def _rebuild(cls: type[_T], state: dict[str, Any]) -> _T:
    # What unpickling a dataclass does, minus pickle's per-object overhead: the state
    # dict becomes the instance dict. The fingerprint holds the field names; the
    # length check catches a well-formed cache of the wrong shape.
    if len(state) != len(cls.__dataclass_fields__):  # type: ignore[attr-defined]
        raise ValueError(f"cached {cls.__name__} has the wrong fields")
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", state)
    return obj


class TreeStore:
    """The working tree's cache: the last listing, in path order, and its result."""

    def __init__(self, path: Path | None, print_: tuple[object, ...]) -> None:
        self.path = path
        self.fingerprint = print_
        found = _read(path, print_) if path else None
        rels, ids, entries, assembled = _tree_parts(found)
        self._old_rels, self._old_ids, self._old_entries, self._assembled = rels, ids, entries, assembled
        self._index: dict[str, tuple[Identity, Entry]] | None = None
        self._new: list[tuple[str, Identity, Entry]] = []
        self._encoder = _Encoder()
        self.complete = True  # every listed file is in _new
        self.added = self.hits = self.parsed = self.racy = 0

    def unchanged(self, rels: list[str], ids: list[Identity]) -> Assembled | None:
        """The stored result when ``rels`` and their ``ids`` are exactly the stored listing."""
        if rels != self._old_rels or ids != self._old_ids:
            return None
        return self.stored()

    def stored(self) -> Assembled | None:
        """The stored result as it is (the ref store: its fingerprint names the commit)."""
        if self._assembled is None:
            return None
        try:
            task_rows, problem_rows, skipped = self._assembled
            entries = self._old_entries
            tasks = [_rebuild(Task, entries[i][0]) for i in task_rows]
            problems = list(_problems(problem_rows))
        except (TypeError, ValueError, IndexError):
            return None
        self.hits = len(self._old_rels)
        return tasks, problems, list(skipped)

    @property
    def listing(self) -> dict[str, Any]:
        """Stored path -> identity (for the ref store: path -> blob id)."""
        return dict(zip(self._old_rels, self._old_ids, strict=True))

    def get(self, rel: str, ident: Identity) -> Parsed | None:
        """The cached result for one file whose identity still matches, else None."""
        if self._index is None:
            self._index = dict(
                zip(self._old_rels, zip(self._old_ids, self._old_entries, strict=True), strict=True)
            )
        found = self._index.get(rel)
        if found is None or found[0] != ident:
            return None
        try:
            parsed = _decode(found[1])
        except (TypeError, ValueError):
            return None
        self._new.append((rel, ident, found[1]))
        self.hits += 1
        return parsed

    def put(self, rel: str, ident: Identity, parsed: Parsed, *, keep: bool) -> None:
        """Record a freshly parsed file; ``keep=False`` counts it without storing it (racy)."""
        self.parsed += 1
        if keep:
            self._new.append((rel, ident, self._encoder.entry(parsed)))
            self.added += 1
        else:
            self.racy += 1
            self.complete = False

    def uncached(self) -> None:
        """A listed file that is never cached (symlink, too large, unreadable) was seen."""
        self.complete = False

    def save(self, result: Assembled) -> CacheStats:
        """Write the new listing when it differs from the stored one, with ``result``
        when every listed file is in it (a later load may then skip the per-file work)."""
        stats = CacheStats(self.hits, self.parsed, self.racy, None)
        if self.path is None:
            return stats
        dropped = self.hits != len(self._old_rels)
        if not (self.added or dropped or (self.complete and self._assembled is None)):
            return stats
        self._new.sort(key=_first)
        data = self._data(result if self.complete else None)
        return CacheStats(
            self.hits, self.parsed, self.racy, len(self._new) if _write(self.path, data) else None
        )

    def _data(self, result: Assembled | None) -> tuple[object, ...]:
        rels = [rel for rel, _, _ in self._new]
        assembled = None
        if result is not None:
            row = {rel: index for index, rel in enumerate(rels)}
            tasks, problems, skipped = result
            assembled = ([row[t.path] for t in tasks], [_problem_row(p) for p in problems], skipped)
        ids = [ident for _, ident, _ in self._new]
        return (self.fingerprint, rels, ids, [entry for _, _, entry in self._new], assembled)


def _first(item: tuple[str, Identity, Entry]) -> str:
    return item[0]


def _tree_parts(found: tuple[Any, ...] | None) -> tuple[list[str], list[Identity], list[Entry], Any]:
    if found is None or len(found) != 4 or not all(isinstance(part, list) for part in found[:3]):
        return [], [], [], None
    rels, ids, entries, assembled = found
    if not len(rels) == len(ids) == len(entries):
        return [], [], [], None
    return rels, ids, entries, assembled


class BlobStore:
    """Parse results of blobs at refs, keyed by (blob id, path)."""

    def __init__(self, path: Path | None, print_: tuple[object, ...]) -> None:
        self.path = path
        self.fingerprint = print_
        found = _read(path, print_) if path else None
        self._old: dict[tuple[str, str], Entry] = found[0] if found and isinstance(found[0], dict) else {}
        self._new: dict[tuple[str, str], Entry] = {}
        self._encoder = _Encoder()
        self.hits = self.parsed = 0

    def get(self, blob: str, path: str) -> Parsed | None:
        """The cached result for ``path`` holding ``blob``, else None."""
        entry = self._old.get((blob, path))
        if entry is None:
            return None
        try:
            parsed = _decode(entry)
        except (TypeError, ValueError):
            return None
        self._new[(blob, path)] = entry
        self.hits += 1
        return parsed

    def put(self, blob: str, path: str, parsed: Parsed) -> None:
        """Record a freshly parsed blob."""
        self.parsed += 1
        self._new[(blob, path)] = self._encoder.entry(parsed)

    def save(self) -> CacheStats:
        """Write when a blob was added, keeping some unused entries for other refs."""
        stats = CacheStats(self.hits, self.parsed, 0, None)
        if self.path is None or not self.parsed:
            return stats
        spare = [(k, v) for k, v in self._old.items() if k not in self._new][-BLOB_SPARE:]
        entries = dict(spare)
        entries.update(self._new)
        written = _write(self.path, (self.fingerprint, entries))
        return CacheStats(self.hits, self.parsed, 0, len(entries) if written else None)


class _Unpickler(pickle.Unpickler):
    """Entries are builtins; YAML's date types are the only classes a cache may name."""

    ALLOWED = frozenset({("datetime", "date"), ("datetime", "datetime"), ("datetime", "time")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a parse cache")


def _read(path: Path, print_: tuple[object, ...]) -> tuple[Any, ...] | None:
    """A cache file's parts after its fingerprint, or None when it is missing, foreign,
    stale or corrupt."""
    try:
        with open(path, "rb") as handle, gc_paused():
            data = _Unpickler(handle).load()
    except Exception:  # a corrupt cache can raise almost anything; it is rebuilt
        return None
    if not isinstance(data, tuple) or not data or data[0] != print_:
        return None
    return data[1:]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while making many long-lived objects (it would rescan them
    over and over: unpickling the cache takes 3x as long with it on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write(path: Path, data: tuple[object, ...]) -> bool:
    """Atomically replace the cache file; False (and no file change) when that fails,
    for want of room or rights or because the data cannot be pickled."""
    import tempfile  # only writers pay for it

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
        # No fsync: the cache is derived data, and a torn file fails to unpickle and is rebuilt.
        os.replace(tmp, path)
    except (OSError, *UNPICKLABLE):
        with suppress(OSError):
            os.unlink(tmp)
        return False
    return True
