"""Per-attempt logs: what a worker printed and said, one structured line each.

``logs/<slug>/<attempt>.log`` holds one JSON object a line::

    {"time":"2025-11-22T03:15:00.000000Z","level":"info","source":"stdout","message":"...","lease":3}

JSON keeps any message (newlines, quotes) on one line and reads back exactly,
so ``task logs --level warning --source stderr`` filters without guessing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import jsonl
from .records import LEVELS, LogRecord


@dataclass(frozen=True)
class LogPage:
    """The lines of one attempt's log that passed the filters."""

    slug: str
    attempt: int | None  # None: the task has no log yet
    records: tuple[LogRecord, ...]
    warnings: tuple[str, ...] = ()


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


def attempts(root: Path, slug: str) -> list[int]:
    """The attempt numbers of ``slug`` that have a log, in order."""
    folder = root / "logs" / slug
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.log") if p.stem.isdigit())
