"""A task file: parse it into a Task, report its problems, render a new one.

Parsing never raises for bad content: it returns the problems it found, each
with the file and line and a hint, and a Task when the file is usable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import frontmatter

STATUSES = ("not_started", "ready", "completed", "cancelled")
DONE_STATUSES = frozenset({"completed", "cancelled"})
DURABLE_KEYS = (
    "title",
    "status",
    "priority",
    "owner",
    "milestone",
    "depends_on",
    "labels",
    "completed_by",
    "completed_at",
    "pr",
)
# Statuses written by task managers that mixed runtime state into task files.
# They still read as the durable status they imply, and validate flags them.
LEGACY_STATUSES = {"in_progress": "ready", "in-progress": "ready", "claimed": "ready", "running": "ready"}
RUNTIME_KEYS = frozenset(
    {
        "started_at",
        "claimed_by",
        "claimed_at",
        "claim",
        "worker",
        "heartbeat_at",
        "last_heartbeat",
        "attempt",
        "attempts",
        "lease",
        "pid",
        "host",
        "exit_code",
        "finished_at",
        "last_error",
        "next_attempt_at",
        "retries",
        "progress",
        "worktree",
        "branch",
        "session",
    }
)
BODY_SECTIONS = (
    "Problem",
    "Context",
    "Possible solutions",
    "Plan",
    "Acceptance criteria",
    "Implementation progress",
    "Review feedback",
)
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9._-]*", re.IGNORECASE)
_CONFLICT = re.compile(r"^(<{7}( |$)|={7}$|>{7}( |$)|\|{7}( |$))", re.MULTILINE)


@dataclass(frozen=True)
class Problem:
    """One finding about one file: ``path:line: message``."""

    path: str
    line: int
    message: str
    code: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else "warning: "
        return f"{self.path}:{self.line}: {tag}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: path, line, severity, code, message."""
        return {
            "path": self.path,
            "line": self.line,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True)
class Task:
    """The durable planning record of one task, as read from its file."""

    slug: str
    path: str  # relative to the repository root, posix separators
    title: str
    status: str
    priority: str
    owner: str | None = None
    milestone: str | None = None
    depends_on: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    completed_by: str | None = None
    completed_at: str | None = None
    pr: str | None = None
    workstream: str | None = None
    body: str = ""
    body_line: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown keys, kept as read
    legacy: Mapping[str, Any] = field(default_factory=dict)  # runtime keys found in frontmatter
    lines: Mapping[str, int] = field(default_factory=dict)  # key -> line number

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    def to_dict(self, *, body: bool = False) -> dict[str, Any]:
        """JSON form; the keys are documented in the README."""
        data: dict[str, Any] = {
            "slug": self.slug,
            "title": self.title,
            "status": self.status,
            "priority": self.priority,
            "owner": self.owner,
            "milestone": self.milestone,
            "depends_on": list(self.depends_on),
            "labels": list(self.labels),
            "workstream": self.workstream,
            "path": self.path,
            "completed_by": self.completed_by,
            "completed_at": self.completed_at,
            "pr": self.pr,
            "extra": dict(self.extra),
            "legacy_runtime": dict(self.legacy),
        }
        if body:
            data["body"] = self.body
        return data


@dataclass(frozen=True)
class Parsed:
    """What parsing one file produced: a Task when usable, and every problem."""

    task: Task | None
    problems: tuple[Problem, ...] = ()


def slug_of(path: str) -> str:
    """The slug is the file stem."""
    return path.rsplit("/", 1)[-1].removesuffix(".md")


@dataclass(frozen=True)
class Schema:
    """The configurable parts of the format."""

    priorities: tuple[str, ...] = ("p0", "p1", "p2", "p3")
    default_priority: str = "p2"


def parse(data: bytes, path: str, workstream: str | None, schema: Schema = Schema()) -> Parsed:
    """Parse one task file's bytes. ``path`` is only used in messages and the Task."""
    slug = slug_of(path)
    if not SLUG_RE.fullmatch(slug):
        hint = "rename the file to letters, digits, '.', '_' or '-', starting with a letter or digit"
        return _fatal(path, 1, "bad_slug", f"slug {slug!r} is not a valid slug; {hint}")
    text_or_problem = _decode(data, path)
    if isinstance(text_or_problem, Problem):
        return Parsed(None, (text_or_problem,))
    return _parse_text(text_or_problem, path, slug, workstream, schema)


def _fatal(path: str, line: int, code: str, message: str) -> Parsed:
    return Parsed(None, (Problem(path, line, message, code),))


def _decode(data: bytes, path: str) -> str | Problem:
    nul = data.find(b"\0")
    if nul != -1:
        line = data.count(b"\n", 0, nul) + 1
        return Problem(path, line, "binary file (NUL byte); task files are UTF-8 markdown", "binary")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start]
        return Problem(
            path, line, f"not UTF-8 (byte 0x{bad:02x}); re-save the file as UTF-8", "encoding"
        )
    if not text.strip():
        return Problem(
            path, 1, "empty file; start it with '---', a 'title:' line and '---'", "empty"
        )
    return text


def _parse_text(text: str, path: str, slug: str, workstream: str | None, schema: Schema) -> Parsed:
    markers = [
        Problem(
            path,
            text.count("\n", 0, m.start()) + 1,
            "unresolved merge-conflict marker; resolve the conflict and delete the marker lines",
            "conflict_marker",
        )
        for m in _CONFLICT.finditer(text)
    ]
    if markers:
        return Parsed(None, tuple(markers))
    try:
        split = frontmatter.split(text)
    except frontmatter.SplitError as exc:
        return _fatal(path, exc.line, "no_frontmatter", str(exc))
    try:
        meta = frontmatter.load_yaml(split.header)
    except yaml.YAMLError as exc:
        return _fatal(path, _yaml_line(exc), "yaml", _yaml_message(exc))
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        return _fatal(path, 2, "not_mapping", "frontmatter must be 'key: value' lines, not a list or text")
    lines = frontmatter.key_lines(split)
    return _build(meta, lines, split, path, slug, workstream, schema)


def _yaml_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return (mark.line + 2) if mark is not None else 2  # the header starts on line 2


def _yaml_message(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    detail = f"{context}, {problem}" if context else problem
    return f"invalid YAML ({detail}); check quoting and indentation"


class _Checker:
    """Collects problems while reading the frontmatter fields."""

    def __init__(self, path: str, lines: dict[str, int]) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Problem] = []
        self.fatal = False

    def add(self, key: str, code: str, message: str, *, fatal: bool = False, warning: bool = False) -> None:
        line = self.lines.get(key, 1)
        self.problems.append(Problem(self.path, line, message, code, "warning" if warning else "error"))
        self.fatal = self.fatal or fatal

    def text(self, meta: dict[str, Any], key: str) -> str | None:
        value = meta.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.add(key, "bad_type", f"{key} must be a single value, not {type(value).__name__}", fatal=True)
        return None

    def str_list(self, meta: dict[str, Any], key: str) -> tuple[str, ...]:
        value = meta.get(key)
        if value is None:
            return ()
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        example = f"{key}: [a, b]"
        self.add(key, "bad_type", f"{key} must be a list of strings, e.g. '{example}'", fatal=True)
        return ()


def _build(
    meta: dict[str, Any],
    lines: dict[str, int],
    split: frontmatter.Split,
    path: str,
    slug: str,
    workstream: str | None,
    schema: Schema,
) -> Parsed:
    meta = {str(k): v for k, v in meta.items()}
    check = _Checker(path, lines)
    title = check.text(meta, "title")
    if not title or not title.strip():
        check.add("title", "missing_title", "missing title; add a 'title: ...' line", fatal=True)
    status, legacy = _status(check, meta)
    priority = check.text(meta, "priority") or schema.default_priority
    if priority not in schema.priorities:
        choices = ", ".join(schema.priorities)
        check.add("priority", "bad_priority", f"priority {priority!r} is not one of {choices}", fatal=True)
    legacy.update({k: v for k, v in meta.items() if k in RUNTIME_KEYS})
    for key in sorted(legacy):
        check.add(
            key,
            "legacy_runtime_keys",
            f"runtime key '{key}' in frontmatter; runtime state belongs in the registry: run 'task migrate'",
        )
    extra = {k: v for k, v in meta.items() if k not in DURABLE_KEYS and k not in RUNTIME_KEYS}
    for key in extra:
        check.add(key, "unknown_key", f"unknown key '{key}' (kept as is)", warning=True)
    completed_at = check.text(meta, "completed_at")
    if status == "completed" and not completed_at:
        check.add("status", "missing_completed_at", "status is completed but completed_at is missing; add 'completed_at: YYYY-MM-DD'")
    task = Task(
        slug=slug,
        path=path,
        title=(title or "").strip(),
        status=status,
        priority=priority,
        owner=check.text(meta, "owner"),
        milestone=check.text(meta, "milestone"),
        depends_on=check.str_list(meta, "depends_on"),
        labels=check.str_list(meta, "labels"),
        completed_by=check.text(meta, "completed_by"),
        completed_at=completed_at,
        pr=check.text(meta, "pr"),
        workstream=workstream,
        body=split.body,
        body_line=split.body_line,
        extra=extra,
        legacy=legacy,
        lines=lines,
    )
    return Parsed(None if check.fatal else task, tuple(check.problems))


def _status(check: _Checker, meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    status = check.text(meta, "status") or "not_started"
    if status in LEGACY_STATUSES:
        return LEGACY_STATUSES[status], {"status": status}
    if status not in STATUSES:
        check.add("status", "bad_status", f"status {status!r} is not one of {', '.join(STATUSES)}", fatal=True)
    return status, {}


def slugify(title: str) -> str:
    """A file-name-safe slug from a title: lowercase words joined by '-', at most 60 chars."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > 60:
            break
        slug = candidate
    return slug or (words[0][:60] if words else "task")


def render_new(fields: Mapping[str, object]) -> str:
    """The text of a new task file: frontmatter in canonical key order, then the sections."""
    header = []
    for key in DURABLE_KEYS:
        value = fields.get(key)
        if value is None or value == ():
            continue
        if isinstance(value, list | tuple):
            items = ", ".join(frontmatter.render_scalar(v) for v in value)
            header.append(f"{key}: [{items}]")
        else:
            header.append(f"{key}: {frontmatter.render_scalar(value)}")
    sections = "\n".join(f"## {name}\n\n" for name in BODY_SECTIONS)
    return "---\n" + "\n".join(header) + "\n---\n\n" + sections.rstrip("\n") + "\n"
