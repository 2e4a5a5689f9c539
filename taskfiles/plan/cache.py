"""The parse cache: each task file is parsed once, then served while it is unchanged.

Two stores, one file each, inside git's own folders so they never show up in
``git status`` and go away with the clone:

- the tree store, ``<git dir>/taskfiles/tree-cache.pickle`` (per worktree): every
  file's parse result with its identity (mtime_ns, size, inode, ctime_ns), in the
  order the listing gave them, plus the assembled result. When the listing (its
  paths, their order, every identity) is exactly as stored, the whole result is
  rebuilt in one pass; otherwise each file whose identity still matches is reused
  and the rest are parsed.
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
cannot be read or decoded, means an empty store. Entries are plain dicts and
tuples, which load several times faster than the dataclasses they rebuild, written
with ``marshal``: it reads this data as fast as pickle without importing it, and
it holds no classes, so a cache file can never name code to run.

A tree-store file is two parts: the head (listing, identities, every task but its
body) and the bodies. A load that reads no body (``task list``) reads the head
alone: the bodies are four fifths of the bytes. Both parts carry the same random
tag, so bodies from another write of the file are never joined to a head.
"""

from __future__ import annotations

import gc
import importlib.util
import marshal
import os
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from .taskfile import Parsed, Problem, Schema, Task

FORMAT = 3
# A file's identity packed in 32 bytes; a listing's are stored as one byte string, its
# paths as one string joined by NUL (which no path holds): a warm load compares two
# strings instead of 50,000 tuples of four integers (~30 ms at 50,000 tasks).
_PACKED = struct.Struct("<qqQq")
IDENTITY_SIZE = _PACKED.size  # every identity's width, packed or hashed
SEP = "\0"
RACY_WINDOW_NS = 2_000_000_000
# Named .pickle for the format they had before marshal: the same names make an upgrade
# overwrite the old files rather than leave them behind.
TREE_FILE = "tree-cache.pickle"
BLOB_FILE = "blob-cache.pickle"
REF_FILE = "ref-{}.pickle"  # per ref name: the whole result at the commit the ref named
# Editing any module of the package (an editable install), upgrading it or
# upgrading PyYAML changes the fingerprint; stating the ~30 files costs ~0.1 ms.
PACKAGE_DIR = Path(__file__).parent
# Modules outside plan/ whose rules decide what a parse returns.
PARSE_RULES = (PACKAGE_DIR.parent / "slugs.py",)
# What marshal.dumps raises for data it cannot write (a type it does not know, or
# nesting past its depth limit). The parser builds neither, but a cache write that
# fails only skips the cache.
UNWRITABLE = (ValueError,)
HEAD_SIZE = 8  # bytes: the length of a tree-store file's head, little-endian
MAP_FROM = 1 << 20  # bytes: a part of a cache file this large is mapped, not read (_load)
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
Identity = bytes  # identity() of a working-tree file; a blob id's ASCII at a ref
ProblemRow = tuple[Any, ...]
Entry = tuple[dict[str, Any] | None, tuple[ProblemRow, ...]]  # Task state (body: ""), problems
Body = str | None  # the body of an entry's task; None for a file that gave no task
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
    """What says a working-tree file is unchanged since it was cached: its mtime, size,
    inode and ctime, packed (for a time past what 64 bits of nanoseconds hold, their hash)."""
    try:
        return _PACKED.pack(st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
    except struct.error:  # before 1678 or after 2262
        import hashlib

        numbers = repr((st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)).encode()
        return hashlib.blake2b(numbers, digest_size=IDENTITY_SIZE).digest()


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

    def entry(self, parsed: Parsed) -> tuple[Entry, Body]:
        """The entry (its task's body left out) and the body."""
        task, problems = parsed.task, tuple(map(_problem_row, parsed.problems))
        if task is None:
            return (None, problems), None
        return (self._state(task), problems), task.body

    def _state(self, task: Task) -> dict[str, Any]:
        state = dict(task.__dict__)
        state["body"] = ""  # what a load without bodies keeps; the body is stored apart
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


def _decode(entry: Entry, body: Body) -> Parsed:
    state, problems = entry
    task = None if state is None else _rebuild(Task, {**state, "body": _text(body)})
    return _rebuild(Parsed, {"task": task, "problems": _problems(problems)})


def _text(body: Body) -> str:
    if not isinstance(body, str):
        raise TypeError("cached task has no body")
    return body


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


def _rebuild_all(cls: type[_T], states: list[dict[str, Any]]) -> list[_T]:
    """``_rebuild`` for many states of one class, its lookups made once (~1/3 less time
    than a call per state at 50,000 tasks)."""
    width = len(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    new, set_state = object.__new__, object.__setattr__
    made = []
    for state in states:
        if len(state) != width:
            raise ValueError(f"cached {cls.__name__} has the wrong fields")
        obj = new(cls)
        set_state(obj, "__dict__", state)
        made.append(obj)
    return made


class TreeStore:
    """The working tree's cache: the last listing, in the order it was given, and its result.

    Bodies are read from the file only when asked for (``stored(bodies=True)``) or when
    a changed listing reuses single entries (``get``).
    """

    def __init__(self, path: Path | None, print_: tuple[object, ...]) -> None:
        self.path = path
        self.fingerprint = print_
        found = _read(path, print_) if path else None
        self._tag, self._rels, self._ids, self._old_entries, self._assembled = _tree_parts(found)
        self._tail = found[1] if found else 0  # where the bodies start in the file
        self._old_bodies: list[Body] | None = None
        self._index: dict[str, tuple[int, Identity]] | None = None
        self._new: list[tuple[str, Identity, Entry, Body]] = []
        self._encoder = _Encoder()
        self.complete = True  # every listed file is in _new
        self.added = self.hits = self.parsed = self.racy = 0

    @property
    def empty(self) -> bool:
        """Whether nothing is stored: a load reads every file."""
        return not self._old_entries

    def unchanged(self, rels: str, ids: bytes, *, bodies: bool = True) -> Assembled | None:
        """The stored result when ``rels`` (paths joined by SEP) and their ``ids`` (joined)
        are exactly the stored listing, in the same order."""
        if rels != self._rels or ids != self._ids:
            return None
        return self.stored(bodies=bodies)

    def stored(self, *, bodies: bool = True) -> Assembled | None:
        """The stored result as it is (the ref store: its fingerprint names the commit);
        ``bodies=False`` leaves every task's body empty and does not read the bodies.
        The tasks take over the stored entries: a store that served them is not saved."""
        if self._assembled is None:
            return None
        try:
            task_rows, problem_rows, skipped = self._assembled
            entries = self._old_entries
            states = [entries[i][0] for i in task_rows]
            if bodies:
                found = self._bodies()
                texts = [_text(found[i]) for i in task_rows]
                for state, text in zip(states, texts, strict=True):
                    state["body"] = text
            tasks = _rebuild_all(Task, states)
            problems = list(_problems(problem_rows))
        except (TypeError, ValueError, IndexError):
            return None
        self.hits = len(self._old_entries)
        return tasks, problems, list(skipped)

    def blob_ids(self) -> dict[str, str]:
        """Stored path -> blob id, for the ref store (its identities are blob ids, ASCII):
        ``listing`` decoded in one pass, without the index a per-file lookup needs."""
        count = len(self._old_entries)
        if not count:
            return {}
        text, width = self._ids.decode("ascii"), len(self._ids) // count
        return dict(
            zip(
                self._rels.split(SEP),
                [text[at : at + width] for at in range(0, len(text), width)],
                strict=True,
            )
        )

    def _listed(self) -> dict[str, tuple[int, Identity]]:
        """Stored path -> (its entry's position, its identity); split out once."""
        if self._index is None:
            count = len(self._old_entries)
            rels = self._rels.split(SEP) if count else []
            width = len(self._ids) // count if count else 0
            self._index = {rel: (at, self._ids[at * width : (at + 1) * width]) for at, rel in enumerate(rels)}
        return self._index

    def get(self, rel: str, ident: Identity) -> Parsed | None:
        """The cached result for one file whose identity still matches, else None."""
        at, stored = self._listed().get(rel, (-1, b""))
        if at < 0 or stored != ident:
            return None
        try:
            entry, body = self._old_entries[at], self._bodies()[at]
            parsed = _decode(entry, body)
        except (TypeError, ValueError, IndexError):
            return None
        self._new.append((rel, ident, entry, body))
        self.hits += 1
        return parsed

    def _bodies(self) -> list[Body]:
        """The stored bodies, read once; ValueError when they are missing or from another write."""
        if self._old_bodies is None:
            found = _read_tail(self.path, self._tail, self._tag) if self.path else None
            self._old_bodies = found if found is not None and len(found) == len(self._old_entries) else []
        if len(self._old_bodies) != len(self._old_entries):  # read once, found wanting
            raise ValueError("cached bodies are missing or belong to another write")
        return self._old_bodies

    def put(self, rel: str, ident: Identity, parsed: Parsed, *, keep: bool) -> None:
        """Record a freshly parsed file; ``keep=False`` counts it without storing it (racy)."""
        self.parsed += 1
        if keep:
            self._new.append((rel, ident, *self._encoder.entry(parsed)))
            self.added += 1
        else:
            self.racy += 1
            self.complete = False

    def uncached(self) -> None:
        """A listed file that is never cached (symlink, too large, unreadable) was seen."""
        self.complete = False

    def save(self, result: Assembled) -> CacheStats:
        """Write the new listing, in the order its files were given (``get``, ``put``), when
        it differs from the stored one, with ``result`` when every listed file is in it (a
        later load may then skip the per-file work)."""
        stats = CacheStats(self.hits, self.parsed, self.racy, None)
        if self.path is None:
            return stats
        dropped = self.hits != len(self._old_entries)
        if not (self.added or dropped or (self.complete and self._assembled is None)):
            return stats
        parts = self._parts(result if self.complete else None)
        written = parts is not None and _write(self.path, *parts)
        return CacheStats(self.hits, self.parsed, self.racy, len(self._new) if written else None)

    def _parts(self, result: Assembled | None) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
        """The file's head and its bodies, under one new tag; None when the identities
        differ in width (they could not be split again)."""
        rels = [rel for rel, _, _, _ in self._new]
        ids = [ident for _, ident, _, _ in self._new]
        if len(set(map(len, ids))) > 1:
            return None
        assembled = None
        if result is not None:
            row = {rel: index for index, rel in enumerate(rels)}
            tasks, problems, skipped = result
            assembled = ([row[t.path] for t in tasks], [_problem_row(p) for p in problems], skipped)
        entries = [entry for _, _, entry, _ in self._new]
        tag = os.urandom(8)
        head = (self.fingerprint, tag, SEP.join(rels), b"".join(ids), entries, assembled)
        return head, (tag, [body for _, _, _, body in self._new])


def _tree_parts(found: tuple[Any, int] | None) -> tuple[bytes | None, str, bytes, list[Entry], Any]:
    parts: tuple[Any, ...] = found[0] if found else ()
    empty: tuple[None, str, bytes, list[Entry], None] = (None, "", b"", [], None)
    if len(parts) != 5:
        return empty
    tag, rels, ids, entries, assembled = parts
    if not (isinstance(rels, str) and isinstance(ids, bytes) and isinstance(entries, list)):
        return empty
    count = len(entries)
    listed = rels.count(SEP) + 1 if count else 0
    if listed != count or (count and len(ids) % count) or (not count and (rels or ids)):
        return empty
    return tag, rels, ids, entries, assembled


class BlobStore:
    """Parse results of blobs at refs, keyed by (blob id, path)."""

    def __init__(self, path: Path | None, print_: tuple[object, ...]) -> None:
        self.path = path
        self.fingerprint = print_
        found = _read(path, print_) if path else None
        old = found[0][0] if found and len(found[0]) == 1 else None
        self._old: dict[tuple[str, str], tuple[Entry, Body]] = old if isinstance(old, dict) else {}
        self._new: dict[tuple[str, str], tuple[Entry, Body]] = {}
        self._encoder = _Encoder()
        self.hits = self.parsed = 0

    def get(self, blob: str, path: str) -> Parsed | None:
        """The cached result for ``path`` holding ``blob``, else None."""
        found = self._old.get((blob, path))
        if found is None:
            return None
        try:
            parsed = _decode(*found)
        except (TypeError, ValueError):
            return None
        self._new[(blob, path)] = found
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


def _read(path: Path, print_: tuple[object, ...]) -> tuple[tuple[Any, ...], int] | None:
    """A cache file's head after its fingerprint, and where the bodies start; None when
    the file is missing, foreign, stale or corrupt."""
    try:
        with open(path, "rb") as handle, gc_paused():
            size = int.from_bytes(handle.read(HEAD_SIZE), "little")
            if size > os.fstat(handle.fileno()).st_size:
                return None
            data = _load(handle, HEAD_SIZE, size)
    except Exception:  # a corrupt cache can raise almost anything; it is rebuilt
        return None
    if not isinstance(data, tuple) or not data or data[0] != print_:
        return None
    return data[1:], HEAD_SIZE + size


def _read_tail(path: Path, offset: int, tag: bytes | None) -> list[Body] | None:
    """The bodies written with the head tagged ``tag``, or None."""
    try:
        with open(path, "rb") as handle, gc_paused():
            data = _load(handle, offset, os.fstat(handle.fileno()).st_size - offset)
    except Exception:  # replaced meanwhile by a shorter file, or corrupt: the head is not trusted
        return None
    if not isinstance(data, tuple) or len(data) != 2 or data[0] != tag or not isinstance(data[1], list):
        return None
    return data[1]


def _load(handle: BinaryIO, offset: int, size: int) -> Any:
    """The marshal data in the ``size`` bytes at ``offset`` of the open file.

    A large part is mapped rather than read: read() copies it into new memory, a page
    fault for every 4 KiB (the head is 19 MB at 50,000 tasks: ~9 ms of a ~66 ms load).
    A cache file is only ever replaced whole (``_write``: a new file renamed over it),
    never cut short in place, so the mapped file keeps its length while it is read; one
    truncated under the mapping would end the process (SIGBUS), as git's mapped index
    would. The mapping and every view of it are closed before this returns."""
    if size < MAP_FROM:
        handle.seek(offset)
        return marshal.loads(handle.read(size))
    import mmap  # only for a large cache file

    with (
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
        memoryview(mapped) as view,
        view[offset : offset + size] as part,
    ):
        return marshal.loads(part)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while making many long-lived objects (it would rescan them
    over and over: loading the cache takes 3x as long with it on).

    The objects made meanwhile then join the oldest generation unscanned (freeze, then
    unfreeze: two list splices). Merely re-enabling the GC would have its next
    allocation scan all of them at once, ~30 ms for 10,000 tasks; a full collection
    still frees any cycle among them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _write(path: Path, head: tuple[Any, ...], tail: tuple[Any, ...] | None = None) -> bool:
    """Atomically replace the cache file with ``head`` (and ``tail`` after it); False (and
    no file change) when that fails, for want of room or rights or because the data
    cannot be written."""
    import tempfile  # only writers pay for it

    try:
        data = marshal.dumps(head)
        parts = [len(data).to_bytes(HEAD_SIZE, "little"), data]
        if tail is not None:
            parts.append(marshal.dumps(tail))
    except UNWRITABLE:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.writelines(parts)
        # No fsync: the cache is derived data, and a torn file fails to load and is rebuilt.
        os.replace(tmp, path)
    except OSError:
        with suppress(OSError):
            os.unlink(tmp)
        return False
    return True
