"""Per-attempt logs: what a worker printed and said, one structured line each.

``logs/<slug>/<attempt>.log`` holds one JSON object a line::

    {"time":"2025-11-22T03:15:00.000000Z","level":"info","source":"stdout","message":"...","lease":3,
     "fields":{"tool":"pytest","passed":"41"}}

JSON keeps any message (newlines, quotes) on one line and reads back exactly,
so ``task logs --level warning --source stderr`` filters without guessing.
``fields`` (structured facts a worker attaches: ``task log --field tool=pytest``)
appear only on lines that have some.

A line's *position* is its number in the attempt's log, from 1: the line number in
the file (a bad line keeps its number), the ``position`` column in PostgreSQL. The
live stream names each line ``<attempt>:<position>`` and resumes after one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import jsonl
from .records import LEVELS, LogRecord

MAX_FIELDS = 20  # fields on one line
MAX_FIELD_VALUE = 1000  # characters in one field's value
TAIL_BYTES = 256 * 1024  # how far back from its end a log is read for its last time
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class LogPage:
    """The lines of one attempt's log that passed the filters."""

    slug: str
    attempt: int | None  # None: the task has no log yet
    records: tuple[LogRecord, ...]
    warnings: tuple[str, ...] = ()
    last: int = 0  # the position of the attempt's last line read, filtered out or not


@dataclass(frozen=True)
class LogLine:
    """A log line and its position in the attempt's log (from 1)."""

    position: int
    record: LogRecord


@dataclass(frozen=True)
class LogTail:
    """The lines of one attempt's log after a position that passed the filters."""

    slug: str
    attempt: int
    lines: tuple[LogLine, ...]
    last: int  # the position read up to (the next read goes on after it), filtered out or not
    over: bool = False  # the attempt can log no more: no line will ever follow ``last``
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogStats:
    """What one attempt's log holds: lines by level and by source, its time span and size."""

    slug: str
    attempt: int
    total: int
    levels: Mapping[str, int] = field(default_factory=dict)
    sources: Mapping[str, int] = field(default_factory=dict)
    first: str | None = None  # the earliest line's time
    last: str | None = None  # the latest line's time
    bytes: int = 0  # as stored: the file (JSON store), the rows' JSON text (PostgreSQL)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (levels in severity order, sources by name)."""
        levels = sorted(self.levels, key=_rank)
        return {
            "slug": self.slug,
            "attempt": self.attempt,
            "total": self.total,
            "levels": {name: self.levels[name] for name in levels},
            "sources": {name: self.sources[name] for name in sorted(self.sources)},
            "first": self.first,
            "last": self.last,
            "bytes": self.bytes,
        }


def stats(slug: str, attempt: int, records: Iterable[LogRecord], size: int) -> LogStats:
    """The stats of ``records`` (one attempt's lines) taking ``size`` bytes."""
    levels: dict[str, int] = {}
    sources: dict[str, int] = {}
    times: list[str] = []
    for record in records:
        levels[record.level] = levels.get(record.level, 0) + 1
        sources[record.source] = sources.get(record.source, 0) + 1
        times.append(record.time)
    first, last = (min(times), max(times)) if times else (None, None)
    return LogStats(slug, attempt, len(times), levels, sources, first, last, size)


def log_path(root: Path, slug: str, attempt: int) -> Path:
    """Where attempt ``attempt`` of ``slug`` logs, under the registry folder ``root``."""
    return root / "logs" / slug / f"{attempt}.log"


def check_level(level: str) -> str:
    """``level`` itself, or UsageError naming the levels."""
    if level not in LEVELS:
        raise UsageError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    return level


def check_source(source: str) -> str:
    """``source`` itself, or UsageError when it is empty or spans lines."""
    if not source or "\n" in source:
        raise UsageError(f"log source {source!r} must be a non-empty single line, e.g. 'worker'")
    return source


def check_fields(fields: Mapping[Any, Any]) -> dict[str, str]:
    """``fields`` as a dict, or UsageError naming the first name or value that cannot be one:
    names are identifiers (``[A-Za-z_][A-Za-z0-9_.-]``, up to 64), values single-line text of
    at most ``MAX_FIELD_VALUE`` characters, at most ``MAX_FIELDS`` of them."""
    if len(fields) > MAX_FIELDS:
        raise UsageError(f"{len(fields)} log fields is too many; give at most {MAX_FIELDS} a line")
    for name, value in fields.items():
        if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
            raise UsageError(
                f"log field name {_cut(name)!r} is not a short identifier: start with a letter or '_', then "
                "letters, digits, '_', '.' or '-', at most 64 in all, e.g. tool or tests.passed"
            )
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise UsageError(f"log field {name!r} must be one line of text, not {_cut(value)!r}")
        if len(value) > MAX_FIELD_VALUE:
            raise UsageError(
                f"log field {name!r} is {len(value)} characters long; keep it to {MAX_FIELD_VALUE} "
                "(put long text in the message)"
            )
    return dict(fields)


def parse_fields(items: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` items (``task log --field``) as checked fields; UsageError naming the item."""
    found: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals:
            raise UsageError(f"--field {_cut(item)!r} is not NAME=VALUE; write e.g. --field tool=pytest")
        if name in found:
            raise UsageError(f"--field {_cut(name)!r} is given twice; give each field once")
        try:
            check_fields({name: value})
        except UsageError as exc:
            raise UsageError(f"--field {_cut(item)!r}: {exc}") from None
        found[name] = value
    return check_fields(found)


def _cut(value: Any, limit: int = 60) -> Any:
    """``value`` cut to ``limit`` characters for an error message (a 1 MB value is not echoed)."""
    return value[: limit - 1] + "…" if isinstance(value, str) and len(value) > limit else value


def format_fields(fields: Mapping[str, str]) -> str:
    """``name=value`` pairs for a text line; a value that is empty or holds spaces, quotes
    or ``=`` is quoted as a JSON string so the pairs read back unambiguously."""
    return " ".join(f"{name}={_quoted(value)}" for name, value in fields.items())


def _quoted(value: str) -> str:
    if value and not any(ch.isspace() or ch in "\"='" for ch in value):
        return value
    return json.dumps(value, ensure_ascii=False)


def check_filters(level: str | None, source: str | None) -> None:
    """UsageError when ``level`` or ``source`` (None: any) cannot select log lines."""
    if level is not None:
        check_level(level)
    if source is not None:
        check_source(source)


def encode(records: Iterable[LogRecord]) -> bytes:
    """The log lines for ``records``."""
    return b"".join(json.dumps(r.to_dict(), separators=(",", ":")).encode() + b"\n" for r in records)


def matches(record: LogRecord, level: str | None, source: str | None) -> bool:
    """True when ``record`` is at ``level`` or above and from ``source`` (None: any)."""
    if source is not None and record.source != source:
        return False
    return level is None or _rank(record.level) >= _rank(level)


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)  # unknown levels always show


def decode(obj: Mapping[str, Any]) -> tuple[LogRecord | None, str | None]:
    """The record in one parsed line, or what is wrong with it."""
    try:
        return LogRecord.from_dict(obj), None
    except ValueError as exc:
        return None, str(exc)


def read(path: Path, level: str | None, source: str | None) -> tuple[list[LogRecord], list[str]]:
    """The records of one log file that pass the filters, and warnings for bad lines."""
    lines = jsonl.read(path)
    records, problems = [], []
    for number, obj in lines.items:
        record, problem = decode(obj)
        if record is None:
            problems.append((number, str(problem)))
        elif matches(record, level, source):
            records.append(record)
    return records, lines.warnings(problems)


def read_after(path: Path, after: int) -> tuple[list[LogLine], int, list[str]]:
    """The lines of one log file after position ``after``, the position of its last complete
    line, and warnings for bad lines; a line still being written waits for its newline."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0, []
    complete = data[: data.rfind(b"\n") + 1]
    rows = complete.split(b"\n")[:-1]  # the empty string after the last newline is no line
    lines = jsonl.parse(b"\n".join(rows[after:]), path.as_posix(), first_line=after + 1)
    found, problems = [], []
    for number, obj in lines.items:
        record, problem = decode(obj)
        if record is None:
            problems.append((number, str(problem)))
        else:
            found.append(LogLine(number, record))
    return found, len(rows), lines.warnings(problems)


def last_time(path: Path) -> str | None:
    """The time of the last readable line of a log file (None: it has none); only its end
    is read, as far back as ``TAIL_BYTES`` (gc looks at every log)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - TAIL_BYTES, 0))
            data = handle.read()
    except FileNotFoundError:
        return None
    rows = data.split(b"\n")
    for raw in reversed(rows if size <= TAIL_BYTES else rows[1:]):  # rows[0] may be cut
        for _, obj in jsonl.parse(raw, path.as_posix()).items:
            record = decode(obj)[0]
            if record is not None:
                return record.time
    return None


def attempts(root: Path, slug: str) -> list[int]:
    """The attempt numbers of ``slug`` that have a log, in order."""
    folder = root / "logs" / slug
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.log") if p.stem.isdigit())
