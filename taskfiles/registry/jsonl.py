"""JSON-lines files (events, logs): read with warnings, and follow as they grow.

A bad line never stops a reader: it is skipped and reported as a warning that
names the file and line number. Callers return the warnings; nothing here prints.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

Line = tuple[int, dict[str, Any]]  # (line number, object)


class Lines(NamedTuple):
    """The objects of a JSON-lines file, and what was wrong with the lines skipped."""

    name: str
    items: tuple[Line, ...]
    problems: tuple[tuple[int, str], ...]  # (line number, what is wrong)

    def warnings(self, more: Iterable[tuple[int, str]] = ()) -> list[str]:
        """One warning per skipped line, in line order, ``more`` merged in."""
        found = sorted([*self.problems, *more])
        return [f"{self.name}:{number}: {problem}; line skipped" for number, problem in found]


def read(path: Path) -> Lines:
    """Every object in ``path`` (an absent file has none); OSError when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Lines(path.as_posix(), (), ())
    return parse(data, path.as_posix())


def parse(data: bytes, name: str, first_line: int = 1) -> Lines:
    """The objects in ``data``, numbering lines from ``first_line``."""
    items: list[Line] = []
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(data.split(b"\n"), first_line):
        if not raw.strip():
            continue
        obj, problem = _decode(raw)
        if obj is None:
            problems.append((number, problem))
        else:
            items.append((number, obj))
    return Lines(name, tuple(items), tuple(problems))


def _decode(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        return None, f"not valid JSON ({exc})"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    return obj, ""


def follow(
    path: Path,
    *,
    from_start: bool,
    poll: float = 0.25,
    done: Callable[[], bool] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(generation, object)`` for each line appended to ``path`` (``tail -F``).

    Starts at the beginning, or at the end as of this call (not of the first
    ``next``). A file that was replaced (gc archives events by rewriting the file)
    is reopened from its start, and the generation counts those reopenings so a
    caller can skip what it saw. Partial lines wait for their newline; bad lines
    are skipped. Ends when ``done()`` turns true and everything written so far
    has been yielded.
    """
    return _follow(Tail(path, from_start), poll, done)


def _follow(tail: Tail, poll: float, done: Callable[[], bool] | None) -> Iterator[tuple[int, dict[str, Any]]]:
    while True:
        finished = done() if done else False  # checked before reading: nothing is missed
        for obj in tail.read_new():
            yield tail.generation, obj
        if finished:
            return
        time.sleep(poll)


class Mark(NamedTuple):
    """The last complete line read: where it starts and its CRC-32. A reader that goes on
    from its end first checks the line is still there: a write whose fsync failed is cut
    back, and the next one may end at the same offset with other bytes."""

    start: int
    crc: int

    @classmethod
    def of(cls, start: int, line: bytes) -> Mark:
        """The mark of ``line`` (with its newline) starting at ``start``."""
        return cls(start, zlib.crc32(line))

    def holds(self, data: bytes, end: int) -> bool:
        """Whether ``data`` (the file from ``start`` on) begins with this very line, ending at ``end``."""
        stop = data.find(b"\n") + 1
        return stop > 0 and self.start + stop == end and zlib.crc32(data[:stop]) == self.crc


def last_line(data: bytes) -> tuple[int, bytes] | None:
    """The start and bytes (with the newline) of the last complete line of ``data``."""
    end = data.rfind(b"\n")
    if end < 0:
        return None
    start = data.rfind(b"\n", 0, end) + 1
    return start, data[start : end + 1]


class Tail:
    """The reading position in a file that may grow, be replaced, or have its last line cut
    back and written over (a journal write whose fsync failed)."""

    def __init__(self, path: Path, from_start: bool) -> None:
        self.path = path
        self.inode, self.offset = self._identity(), 0
        self.mark: Mark | None = None
        self.generation = 0
        self.replaced_last = False  # the last generation began because the last line read was gone
        self.last: dict[str, Any] | None = None  # the last complete line when not reading from the start
        if not from_start:
            self._skip_to_end()

    def _identity(self) -> int | None:
        try:
            return os.stat(self.path).st_ino
        except FileNotFoundError:
            return None

    def _skip_to_end(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        found = last_line(data)
        if found is not None:
            start, line = found
            self.offset, self.mark = start + len(line), Mark.of(start, line)
            items = parse(line, str(self.path)).items
            self.last = items[0][1] if items else None

    def _read_from(self, start: int) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(start)
                return handle.read()
        except FileNotFoundError:
            return b""

    def read_new(self) -> Iterator[dict[str, Any]]:
        inode = self._identity()
        if inode != self.inode:  # replaced (or created): start over on the new file
            self.inode, self.offset, self.mark = inode, 0, None
            self.generation += 1
            self.replaced_last = False
        if inode is None:
            return
        start = self.mark.start if self.mark else self.offset
        data = self._read_from(start)
        if self.mark is not None and not self.mark.holds(data, self.offset):
            # The last line read is not there any more (cut back, or the file was
            # truncated in place): read the file again from its start.
            self.offset, self.mark, start = 0, None, 0
            self.generation += 1
            self.replaced_last = True
            data = self._read_from(0)
        fresh = data[self.offset - start :]
        complete = fresh[: fresh.rfind(b"\n") + 1]
        if not complete:
            return
        found = last_line(complete)
        assert found is not None
        self.mark = Mark.of(self.offset + found[0], found[1])
        self.offset += len(complete)
        for _, obj in parse(complete, str(self.path)).items:
            yield obj
