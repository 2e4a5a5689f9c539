"""Three-way merge of one task file: the frontmatter key by key, the body line by line.

git merges text by lines, so two branches that change neighbouring keys (``status``
on one, ``priority`` on the other) or each add a label to the same ``labels: [a]``
line conflict although their changes do not. Here the frontmatter is merged as a
mapping against the common ancestor: what only one side changed is taken, lists
take both sides' additions and removals, and only a value the two sides changed
differently conflicts, with markers around that key's lines alone. The merged
header is our side's lines edited (``frontmatter``), so key order, quoting and
comments stay; the body goes through ``git merge-file``.

A result that does not read back as the mapping the merge decided on is never
called clean: the header is then one conflict, ours against theirs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import git
from ..errors import TaskFileError
from . import frontmatter, yamlsafe

__all__ = ["BODY", "FILE", "FRONTMATTER", "Merged", "merge", "merge_files"]

BODY, FRONTMATTER, FILE = "body", "frontmatter", "file"  # conflicts that are not one key's
LABELS = ("ours", "base", "theirs")
_EMPTY_HEADER = frontmatter.Split(["---\n", "---\n"], 1, "")  # an ancestor of a file both sides added


@dataclass(frozen=True)
class Merged:
    """The merged file, and what is left between conflict markers."""

    data: bytes
    conflicts: tuple[str, ...] = ()  # frontmatter keys, BODY, FRONTMATTER (all of it) or FILE
    note: str = ""  # why the file was merged line by line as a whole, when it was

    @property
    def clean(self) -> bool:
        return not self.conflicts


class _Unmergeable(ValueError):
    """A side cannot be merged key by key (no frontmatter, invalid YAML, not UTF-8)."""


@dataclass(frozen=True)
class _Side:
    split: frontmatter.Split
    mapping: dict[str, Any]

    @property
    def header(self) -> str:
        """The frontmatter block, both delimiter lines included."""
        return "".join(self.split.lines[: self.split.close + 1])

    @property
    def eol(self) -> str:
        return _eol(self.split)


@dataclass(frozen=True)
class _Decision:
    """What the merged frontmatter holds, and how to get there from ours."""

    mapping: dict[str, Any]  # ours' value for a key in conflict
    take: tuple[str, ...]  # keys whose value (or absence) is theirs
    unions: dict[str, list[Any]]  # list keys both sides changed: the merged list
    conflicts: tuple[str, ...]


def merge_files(base: Path, ours: Path, theirs: Path, *, marker_size: int = 7) -> Merged:
    """``merge`` on three files, the result written over ``ours`` (what git asks of a driver)."""
    try:
        texts = [path.read_bytes() for path in (base, ours, theirs)]
        merged = merge(*texts, marker_size=marker_size)
        ours.write_bytes(merged.data)
    except OSError as exc:
        raise TaskFileError(f"cannot merge {exc.filename}: {exc.strerror}") from None
    return merged


def merge(base: bytes, ours: bytes, theirs: bytes, *, marker_size: int = 7) -> Merged:
    """``theirs``' changes since ``base`` merged into ``ours``.

    Frontmatter keys merge one by one; a side without a frontmatter that reads as a
    mapping makes it a plain ``git merge-file`` of the whole file (what git does
    without this driver). An empty ``base`` (both sides added the file) is an empty one.
    """
    try:
        sides = (_read(base, empty_ok=True), _read(ours), _read(theirs))
    except _Unmergeable as exc:
        done = git.merge_file(ours, base, theirs, marker_size=marker_size, labels=LABELS)
        return Merged(done.data, (FILE,) if done.conflicts else (), str(exc))
    header, conflicts, note = _header(*sides, marker_size)
    body, body_conflicts = _body(*sides, marker_size)
    return Merged(_join(sides[1], header, body), conflicts + ((BODY,) if body_conflicts else ()), note)


def _join(ours: _Side, header: str, body: bytes) -> bytes:
    if body and not header.endswith("\n"):
        header += ours.eol  # ours ended on its closing delimiter; the merged body follows it
    return (ours.split.bom + header).encode() + body


def _read(data: bytes, *, empty_ok: bool = False) -> _Side:
    if empty_ok and not data:
        return _Side(_EMPTY_HEADER, {})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unmergeable("a side is not UTF-8") from None
    try:
        split = frontmatter.split(text)
        value = frontmatter.load_header(split).value
    except frontmatter.SplitError as exc:
        raise _Unmergeable(f"a side has no frontmatter (line {exc.line}: {exc})") from None
    except yamlsafe.YamlError as exc:
        raise _Unmergeable(
            f"a side's frontmatter is not valid YAML (line {exc.line}: {exc.message})"
        ) from None
    if value is not None and not isinstance(value, dict):
        raise _Unmergeable("a side's frontmatter is not 'key: value' lines")
    return _Side(split, value or {})


# -- the frontmatter ----------------------------------------------------------------------------


def _header(base: _Side, ours: _Side, theirs: _Side, marker_size: int) -> tuple[str, tuple[str, ...], str]:
    """The merged frontmatter block, the keys in conflict, and a note when it is all one conflict."""
    if theirs.header in (base.header, ours.header):
        return ours.header, (), ""
    if ours.header == base.header:
        return theirs.header, (), ""
    decision = _decide(base.mapping, ours.mapping, theirs.mapping)
    if not decision.conflicts:
        lines = git.merge_file(*(side.header.encode() for side in (ours, base, theirs)), labels=LABELS)
        text = lines.data.decode("utf-8")
        if not lines.conflicts and _reads_as(text, decision.mapping):
            return text, (), ""  # git's line merge means the same, and keeps both sides' comments
    try:
        text = _apply(decision, base, ours, theirs)
    except TaskFileError as exc:
        return _whole_conflict(ours, theirs, marker_size), (FRONTMATTER,), str(exc)
    if not _reads_as(text, decision.mapping):
        note = "the merged frontmatter would not read back as both sides' changes"
        return _whole_conflict(ours, theirs, marker_size), (FRONTMATTER,), note
    for key in decision.conflicts:
        text = _mark(text, theirs, key, marker_size)
    return text, decision.conflicts, ""


_MISSING: Any = object()  # a key a side does not have


def _decide(base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> _Decision:
    """Key by key: a change on one side is taken, the same change on both is fine, list
    changes on both are combined, and different changes to one value conflict."""
    mapping: dict[str, Any] = {}
    take: list[str] = []
    unions: dict[str, list[Any]] = {}
    conflicts: list[str] = []
    for key in dict.fromkeys([*ours, *theirs, *base]):  # ours' order, then keys new in theirs
        old, mine, other = (side.get(key, _MISSING) for side in (base, ours, theirs))
        if _same(other, old) or _same(mine, other):
            chosen = mine
        elif _same(mine, old):
            chosen = other
            take.append(key)
        else:
            chosen = _union(old, mine, other)
            if chosen is None:
                chosen = mine
                conflicts.append(key)
            else:
                unions[key] = chosen
        if chosen is not _MISSING:
            mapping[key] = chosen
    return _Decision(mapping, tuple(take), unions, tuple(conflicts))


def _union(old: Any, mine: Any, other: Any) -> list[Any] | None:
    """Ours with the items theirs removed taken out and the items theirs added appended,
    when both sides hold a list of scalars (and the ancestor one, or none); else None."""
    if old is _MISSING or old is None:
        old = []
    if not all(_scalars(value) for value in (old, mine, other)):
        return None
    removed = [item for item in old if not _has(other, item)]
    merged = [item for item in mine if not _has(removed, item)]
    return merged + [item for item in other if not _has(old, item) and not _has(merged, item)]


def _scalars(value: Any) -> bool:
    return isinstance(value, list) and not any(isinstance(item, list | dict) for item in value)


def _has(items: Sequence[Any], value: Any) -> bool:
    return any(_same(item, value) for item in items)


def _same(a: Any, b: Any) -> bool:
    """Equal as YAML values: ``1``, ``1.0`` and ``true`` differ (Python's == says otherwise)."""
    if a is _MISSING or b is _MISSING:
        return a is b
    return bool(json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True))


def _apply(decision: _Decision, base: _Side, ours: _Side, theirs: _Side) -> str:
    """Ours' frontmatter block with theirs' changes and the merged lists written in."""
    text = ours.header
    for key in decision.take:
        text = _take(text, key, base, theirs)
    for key, items in decision.unions.items():
        text = frontmatter.set_keys(text, {key: items})
    return text


def _take(text: str, key: str, base: _Side, theirs: _Side) -> str:
    """``text`` with ``key`` as theirs has it: removed, or theirs' own lines where ours' lines are
    the ancestor's (or absent), else ours' lines with theirs' value (keeping ours' quoting)."""
    if key not in theirs.mapping:
        return frontmatter.set_keys(text, {key: None})
    split = frontmatter.split(text)
    mine = frontmatter.key_lines(split, key)
    their = frontmatter.key_lines(theirs.split, key)
    value = theirs.mapping[key]
    if their is None and not _renderable(value):
        raise TaskFileError(f"theirs sets {key!r} in a way that cannot be copied line by line")
    if their is None or (
        mine is not None and _renderable(value) and _lines(split, mine) != _key_text(base, key)
    ):
        return frontmatter.set_keys(text, {key: value})
    where = mine if mine is not None else range(split.close, split.close)
    eol = _eol(split)
    lines = list(split.lines)
    lines[where.start : where.stop] = [
        _ended(line, eol) for line in theirs.split.lines[their.start : their.stop]
    ]
    return "".join(lines)


def _renderable(value: Any) -> bool:
    """What ``frontmatter.set_keys`` can write: a scalar or a list of scalars."""
    return _scalars(value) or not isinstance(value, list | dict)


def _key_text(side: _Side, key: str) -> str | None:
    where = frontmatter.key_lines(side.split, key)
    return None if where is None else _lines(side.split, where)


def _lines(split: frontmatter.Split, where: range) -> str:
    return "".join(split.lines[where.start : where.stop])


def _eol(split: frontmatter.Split) -> str:
    """The line ending of the opening delimiter: the one new lines get."""
    first = split.lines[0]
    return first[len(first.rstrip("\r\n")) :] or "\n"


def _ended(line: str, eol: str) -> str:
    return line.rstrip("\r\n") + eol


def _reads_as(header: str, expected: Mapping[str, Any]) -> bool:
    """Whether ``header`` is a frontmatter block whose YAML is exactly ``expected``."""
    try:
        value = frontmatter.load_header(frontmatter.split(header)).value
    except (frontmatter.SplitError, yamlsafe.YamlError):
        return False
    return isinstance(value, dict | None) and _same(value or {}, dict(expected))


def _mark(text: str, theirs: _Side, key: str, marker_size: int) -> str:
    """``key``'s lines in ``text`` (ours) and in theirs, between conflict markers."""
    split = frontmatter.split(text)
    mine = frontmatter.key_lines(split, key) or range(split.close, split.close)
    their = frontmatter.key_lines(theirs.split, key) or range(0)
    eol = _eol(split)
    lines = list(split.lines)
    lines[mine.start : mine.stop] = _markers(
        lines[mine.start : mine.stop], theirs.split.lines[their.start : their.stop], eol, marker_size
    )
    return "".join(lines)


def _whole_conflict(ours: _Side, theirs: _Side, marker_size: int) -> str:
    """Ours' frontmatter block with everything between its delimiters against theirs'."""
    mine, other = ours.split, theirs.split
    inner = _markers(mine.lines[1 : mine.close], other.lines[1 : other.close], ours.eol, marker_size)
    return "".join([mine.lines[0], *inner, mine.lines[mine.close]])


def _markers(mine: list[str], other: list[str], eol: str, size: int) -> list[str]:
    return [
        f"{'<' * size} {LABELS[0]}{eol}",
        *mine,
        f"{'=' * size}{eol}",
        *(_ended(line, eol) for line in other),
        f"{'>' * size} {LABELS[2]}{eol}",
    ]


# -- the body -----------------------------------------------------------------------------------


def _body(base: _Side, ours: _Side, theirs: _Side, marker_size: int) -> tuple[bytes, bool]:
    """The merged body and whether it has conflicts."""
    old, mine, other = (side.split.body for side in (base, ours, theirs))
    if other in (old, mine):
        return mine.encode(), False
    if mine == old:
        return other.encode(), False
    done = git.merge_file(mine.encode(), old.encode(), other.encode(), marker_size=marker_size, labels=LABELS)
    return done.data, done.conflicts > 0
