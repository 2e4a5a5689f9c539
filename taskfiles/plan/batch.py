"""Edits of several task files as one: every edit computed and checked, then all written.

A durable edit command (``ready``, ``complete``, ``set``, ``assign``, ``cancel``) plans
one ``FileEdit`` per task it touches. ``edit_file`` makes each edit with
``frontmatter.set_keys`` (which checks the YAML reads back as intended) and then parses
the result as a task file: the edited keys must read as their new values and every
other field as before, or the command stops naming ``path:line`` with nothing written.
``Batch.write`` writes only once every edit has passed, and not over a file that changed
since it was read.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import atomic
from ..config import Config
from ..errors import ConflictError, TaskFileError, reason
from . import frontmatter
from .source import schema_of
from .taskfile import Task, parse


@dataclass(frozen=True)
class FileEdit:
    """One task file before and after an edit; unchanged when the two are the same."""

    slug: str
    path: str  # relative to the repository root, posix separators
    before: str
    after: str
    keys: tuple[str, ...]  # the frontmatter keys written (empty when unchanged)

    @property
    def changed(self) -> bool:
        return self.after != self.before

    def diff(self) -> str:
        """The edit as a unified diff (``a/PATH`` to ``b/PATH``), as ``git diff`` shows it."""
        lines = difflib.unified_diff(
            frontmatter.lines_of(self.before),
            frontmatter.lines_of(self.after),
            f"a/{self.path}",
            f"b/{self.path}",
        )
        return "".join(_terminated(line) for line in lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: slug, path, keys."""
        return {"slug": self.slug, "path": self.path, "keys": list(self.keys)}


def _terminated(line: str) -> str:
    # A last line without a newline would run into the next one; git marks it the same way.
    return line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n"


@dataclass(frozen=True)
class Batch:
    """The edits one command makes, in the order of its tasks."""

    edits: tuple[FileEdit, ...]

    @property
    def changed(self) -> tuple[FileEdit, ...]:
        return tuple(edit for edit in self.edits if edit.changed)

    @property
    def unchanged(self) -> tuple[FileEdit, ...]:
        return tuple(edit for edit in self.edits if not edit.changed)

    def diff(self) -> str:
        """Every change as one unified diff."""
        return "".join(edit.diff() for edit in self.changed)

    def write(self, root: Path) -> None:
        """Write every changed file, each replaced atomically.

        ConflictError, with nothing written, when a file changed since it was read (an
        editor saved it meanwhile): its edit would silently undo that change.
        """
        self.check_unchanged(root)
        for edit in self.changed:
            write_atomic(root / edit.path, edit.after.encode("utf-8"))

    def check_unchanged(self, root: Path) -> None:
        """ConflictError when a file to change is no longer what was read (an editor saved it
        meanwhile): its edit would silently undo that change. ``write`` checks it again."""
        for edit in self.changed:
            if _read(root / edit.path, edit.path) != edit.before:
                raise ConflictError(f"{edit.path} changed while it was being edited; run the command again")

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``changed`` and ``unchanged``, each a list of ``{slug, path, keys}``."""
        return {
            "changed": [edit.to_dict() for edit in self.changed],
            "unchanged": [edit.to_dict() for edit in self.unchanged],
        }


def edit_file(config: Config, task: Task, updates: Mapping[str, object]) -> FileEdit:
    """``task``'s file with ``updates`` applied (a value of None removes the key), checked.

    TaskFileError naming ``path:line`` (the first edited key's line) when the file is
    too unusual to edit by line or would not read back as intended.
    """
    before = _read(config.root / task.path, task.path)
    if not updates:
        return FileEdit(task.slug, task.path, before, before, ())
    line = _line_of(task, updates)
    try:
        after = frontmatter.set_keys(before, updates)
    except TaskFileError as error:
        raise TaskFileError(f"{task.path}:{line}: {error}") from error
    if after == before:
        return FileEdit(task.slug, task.path, before, before, ())
    _check_reads_back(config, task, before, after, updates, line)
    return FileEdit(task.slug, task.path, before, after, tuple(updates))


def _read(path: Path, shown: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TaskFileError(
            f"{shown}: cannot be read for editing ({reason(error)}); run 'task validate'"
        ) from error


def _line_of(task: Task, keys: Iterable[str]) -> int:
    """The line of the first edited key the file has; else the closing delimiter's."""
    found = [task.lines[key] for key in keys if key in task.lines]
    return min(found) if found else task.body_line - 1


def _check_reads_back(
    config: Config, task: Task, before: str, after: str, updates: Mapping[str, object], line: int
) -> None:
    """The edited file read as a task: the updated fields as intended, the others as before."""
    old, new = (_fields(config, task, text) for text in (before, after))
    if new is None or old is None:
        raise TaskFileError(
            f"{task.path}:{line}: the edited file would no longer read as a task; edit it by hand"
        )
    expected = {**old, **{key: _as_read(key, value) for key, value in updates.items() if key in old}}
    # A key written over a runtime key (status: in_progress) is no longer one.
    expected["legacy_runtime"] = {k: v for k, v in old["legacy_runtime"].items() if k not in updates}
    wrong = sorted(key for key in expected if expected[key] != new[key])
    if wrong:
        raise TaskFileError(
            f"{task.path}:{line}: after the edit {', '.join(wrong)} would not read as intended; "
            "this frontmatter is too unusual to edit by line: edit it by hand"
        )


def _fields(config: Config, task: Task, text: str) -> dict[str, Any] | None:
    parsed = parse(text.encode("utf-8"), task.path, task.workstream, schema_of(config)).task
    return None if parsed is None else parsed.to_dict(body=True)


def _as_read(key: str, value: object) -> object:
    """A written value as ``Task.to_dict`` reads it back: lists as lists, numbers as
    text (``pr: 12`` is "12"), the title stripped."""
    if isinstance(value, tuple | list):
        return list(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value.strip() if key == "title" and isinstance(value, str) else value


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a task file in one step (see ``atomic.atomic_write``), keeping its permission bits."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    atomic.atomic_write(path, data, mode=mode)
