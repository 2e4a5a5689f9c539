"""JSON-lines files (events, logs): read with warnings, and follow as they grow.

A bad line never stops a reader: it is skipped and reported as a warning that
names the file and line number. Callers return the warnings; nothing here prints.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Line = tuple[int, dict[str, Any]]  # (line number, object)


@dataclass(frozen=True)
class Lines:
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
        return Lines(str(path), (), ())
    return parse(data, str(path))


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


class Tail:
    """The reading position in a file that may grow or be replaced."""

    def __init__(self, path: Path, from_start: bool) -> None:
        self.path = path
        self.inode, self.offset = self._identity(), 0
        if not from_start:
            self.offset = self._size()
        self.pending = b""
        self.generation = 0

    def _identity(self) -> int | None:
        try:
            return os.stat(self.path).st_ino
        except FileNotFoundError:
            return None

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def read_new(self) -> Iterator[dict[str, Any]]:
        inode = self._identity()
        if inode != self.inode:  # replaced (or created): start over on the new file
            self.inode, self.offset, self.pending = inode, 0, b""
            self.generation += 1
        if inode is None:
            return
        if self._size() < self.offset:  # truncated in place
            self.offset, self.pending = 0, b""
            self.generation += 1
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        data = self.pending + chunk
        complete, _, self.pending = data.rpartition(b"\n")
        for _, obj in parse(complete, str(self.path)).items:
            yield obj
