"""A task file: parse it into a Task, report its problems, render a new one.

Parsing never raises for bad content: it returns the problems it found, each
with the file and line and a hint, and a Task when the file is usable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..slugs import is_slug, slug_of

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
    "agent",
    "budget_usd",
    "completed_by",
    "completed_at",
    "pr",
)
# Statuses written by task managers that mixed runtime state into task files.
# They still read as the durable status they imply, and validate flags them.
LEGACY_STATUSES = {"in_progress": "ready", "in-progress": "ready", "claimed": "ready", "running": "ready"}
_DURABLE = frozenset(DURABLE_KEYS)
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
# Conflict markers: '=======' alone is also a setext heading underline in markdown,
# so it counts only in a file that has a '<<<<<<<' or '>>>>>>>' line too.
_CONFLICT_EDGE = re.compile(r"^(?:<{7}|>{7}|\|{7})(?:[ \t][^\n]*)?\r?$", re.MULTILINE)
_CONFLICT_MIDDLE = re.compile(r"^={7}\r?$", re.MULTILINE)


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
    agent: str | None = None  # the agent profile ([agents.NAME]) that runs it; None: [worker] command
    budget_usd: float | None = None  # each attempt's cost cap, instead of [worker] cost_cap_usd
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

    def to_dict(self, *, body: bool = False, shared: bool = False) -> dict[str, Any]:
        """JSON form; the keys are documented in the README. ``shared=True`` puts the task's
        own tuples and mappings in it rather than lists and dicts copied from them: for
        output at once, never to change (a quarter less time, ``list --json`` at 50,000)."""
        data: dict[str, Any] = {
            "slug": self.slug,
            "title": self.title,
            "status": self.status,
            "priority": self.priority,
            "owner": self.owner,
            "milestone": self.milestone,
            "depends_on": self.depends_on,
            "labels": self.labels,
            "agent": self.agent,
            "budget_usd": self.budget_usd,
            "workstream": self.workstream,
            "path": self.path,
            "completed_by": self.completed_by,
            "completed_at": self.completed_at,
            "pr": self.pr,
            "extra": self.extra,
            "legacy_runtime": self.legacy,
        }
        if not shared:  # updating keeps each key where it is
            data.update(
                depends_on=list(self.depends_on),
                labels=list(self.labels),
                extra=dict(self.extra),
                legacy_runtime=dict(self.legacy),
            )
        if body:
            data["body"] = self.body
        return data


@dataclass(frozen=True)
class Parsed:
    """What parsing one file produced: a Task when usable, and every problem."""

    task: Task | None
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class Schema:
    """The configurable parts of the format."""

    priorities: tuple[str, ...] = ("p0", "p1", "p2", "p3")
    default_priority: str = "p2"


def parse(data: bytes, path: str, workstream: str | None, schema: Schema = Schema()) -> Parsed:
    """Parse one task file's bytes. ``path`` is only used in messages and the Task.

    Bad content is returned as problems; the one error raised is ConfigError, when
    PyYAML lacks libyaml (``yamlsafe``), since no file can be read the same way then.
    """
    slug = slug_of(path)
    if not is_slug(slug):
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
        return Problem(
            path,
            line,
            "binary file (NUL byte); task files are UTF-8 markdown: move it out of tasks/",
            "binary",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8 (byte 0x{data[exc.start]:02x}); re-save the file as UTF-8"
        return Problem(path, line, message, "encoding")
    content = text.lstrip("\ufeff")
    if not content or content.isspace():  # as strip() would leave nothing, without copying
        return Problem(path, 1, "empty file; start it with '---', a 'title:' line and '---'", "empty")
    return text


def _conflict_markers(text: str, path: str) -> list[Problem]:
    # The common case, without running the regex over the whole file; each marker is looked
    # for only where its character is (one memchr, ten times faster than the search).
    if not any(char in text and char * 7 in text for char in "<>|"):
        return []
    edges = [m.start() for m in _CONFLICT_EDGE.finditer(text)]
    if not edges:
        return []
    starts = sorted(edges + [m.start() for m in _CONFLICT_MIDDLE.finditer(text)])
    message = "unresolved merge-conflict marker; resolve the conflict and delete the marker lines"
    return [Problem(path, text.count("\n", 0, start) + 1, message, "conflict_marker") for start in starts]


def _parse_text(text: str, path: str, slug: str, workstream: str | None, schema: Schema) -> Parsed:
    from . import yamlsafe  # imported where used: the warm path builds Tasks from the cache

    markers = _conflict_markers(text, path)
    if markers:
        return Parsed(None, tuple(markers))
    fast = yamlsafe.read_file(text)  # nearly every file: not cut into lines, nor read by libyaml
    if fast is not None:
        return _build(fast.meta, fast.key_lines, fast.body, fast.body_line, path, slug, workstream, schema)
    return _parse_unusual(text, path, slug, workstream, schema)


def _parse_unusual(text: str, path: str, slug: str, workstream: str | None, schema: Schema) -> Parsed:
    """A file the fast path declined: split into lines, its YAML read by libyaml."""
    from . import frontmatter, yamlsafe

    try:
        split = frontmatter.split(text)
    except frontmatter.SplitError as exc:
        return _fatal(path, exc.line, "no_frontmatter", str(exc))
    try:
        document = frontmatter.load_header(split)
    except yamlsafe.YamlError as exc:
        return _fatal(path, exc.line, "yaml", exc.message)
    meta = {} if document.value is None else document.value
    if not isinstance(meta, dict):
        message = "frontmatter must be 'key: value' lines, not a list or text"
        return _fatal(path, frontmatter.HEADER_LINE, "not_mapping", message)
    return _build(meta, document.key_lines, split.body, split.body_line, path, slug, workstream, schema)


class _Checker:
    """Collects problems while reading the frontmatter fields."""

    def __init__(self, path: str, lines: dict[str, int]) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Problem] = []
        self.fatal = False

    def add(self, key: str, code: str, message: str, *, fatal: bool = False, warning: bool = False) -> None:
        """Record a problem on ``key``'s line (line 1 when the key is absent)."""
        line = self.lines.get(key, 1)
        self.problems.append(Problem(self.path, line, message, code, "warning" if warning else "error"))
        self.fatal = self.fatal or fatal

    def text(self, meta: dict[str, Any], key: str) -> str | None:
        """A single value as a string; numbers are read as written (``pr: 12`` -> "12")."""
        value = meta.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        example = f"{key}: some text" if isinstance(value, bool) else f"{key}: one value"
        message = f"{key} must be a single value, not {_kind(value)}; write '{example}'"
        self.add(key, "bad_type", message, fatal=True)
        return None

    def str_list(self, meta: dict[str, Any], key: str) -> tuple[str, ...]:
        """A list of strings; anything else is a fatal problem."""
        value = meta.get(key)
        if value is None:
            return ()
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        example = f"{key}: [{_shown(value)}]" if isinstance(value, str) else f"{key}: [a, b]"
        message = f"{key} must be a list of strings, not {_kind(value)}; write '{example}'"
        self.add(key, "bad_type", message, fatal=True)
        return ()


def _shown(text: str) -> str:
    """User text inside a message: one line, not too long."""
    from .yamlsafe import shown

    return shown(text)


def _kind(value: object) -> str:
    """What a value YAML read is, for a message; None never gets here."""
    for kind, name in ((bool, "a boolean"), (str, "a string"), (list, "a list"), (dict, "a mapping")):
        if isinstance(value, kind):
            return name
    return "a number"  # the rest YAML reads: int or float


def _build(
    meta: dict[str, Any],
    lines: dict[str, int],
    body: str,
    body_line: int,
    path: str,
    slug: str,
    workstream: str | None,
    schema: Schema,
) -> Parsed:
    check = _Checker(path, lines)
    title = _title(check, meta)
    status, legacy = _status(check, meta)
    priority = _priority(check, meta, schema)
    extra: dict[str, Any] = {}
    if not _DURABLE.issuperset(meta):  # runtime or unknown keys: rare, so looked for only then
        legacy.update({k: v for k, v in meta.items() if k in RUNTIME_KEYS})
        extra = {k: v for k, v in meta.items() if k not in _DURABLE and k not in RUNTIME_KEYS}
    _report_runtime_keys(check, legacy)
    for key in extra:
        check.add(
            key, "unknown_key", f"unknown key '{_shown(key)}' (kept as is); check its spelling", warning=True
        )
    completed_at = check.text(meta, "completed_at")
    if status == "completed" and not completed_at:
        message = "status is completed but completed_at is missing; add 'completed_at: YYYY-MM-DD'"
        check.add("status", "missing_completed_at", message)
    task = _task(
        slug=slug,
        path=path,
        title=title,
        status=status,
        priority=priority,
        owner=check.text(meta, "owner"),
        milestone=check.text(meta, "milestone"),
        depends_on=check.str_list(meta, "depends_on"),
        labels=check.str_list(meta, "labels"),
        agent=check.text(meta, "agent"),
        budget_usd=_budget(check, meta),
        completed_by=check.text(meta, "completed_by"),
        completed_at=completed_at,
        pr=check.text(meta, "pr"),
        workstream=workstream,
        body=body,
        body_line=body_line,
        extra=extra,
        legacy=legacy,
        lines=lines,
    )
    return Parsed(None if check.fatal else task, tuple(check.problems))


def _task(**fields: Any) -> Task:
    """``Task(**fields)`` with every field given, minus the frozen dataclass's __setattr__ for
    each (~1.5 us a task, 15 ms of a cold load of 10,000); cache.py rebuilds Tasks alike."""
    if len(fields) != len(Task.__dataclass_fields__):
        raise TypeError(f"a Task has {len(Task.__dataclass_fields__)} fields, not {len(fields)}")
    task = object.__new__(Task)
    object.__setattr__(task, "__dict__", fields)
    return task


def _title(check: _Checker, meta: dict[str, Any]) -> str:
    if "title" not in meta:
        check.add("title", "missing_title", "missing title; add a 'title: ...' line", fatal=True)
        return ""
    title = check.text(meta, "title")
    if meta["title"] is None or (title is not None and not title.strip()):
        message = "title is empty; write what the task is about after 'title:'"
        check.add("title", "missing_title", message, fatal=True)
    return (title or "").strip()


def _status(check: _Checker, meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    status = check.text(meta, "status") or "not_started"
    if status in LEGACY_STATUSES:
        return LEGACY_STATUSES[status], {"status": status}
    if status not in STATUSES:
        message = f"status '{_shown(status)}' is not one of {', '.join(STATUSES)}"
        check.add("status", "bad_status", message, fatal=True)
    return status, {}


def _priority(check: _Checker, meta: dict[str, Any], schema: Schema) -> str:
    priority = check.text(meta, "priority") or schema.default_priority
    if priority not in schema.priorities:
        message = f"priority '{_shown(priority)}' is not one of {', '.join(schema.priorities)}"
        check.add("priority", "bad_priority", message, fatal=True)
    return priority


def _budget(check: _Checker, meta: dict[str, Any]) -> float | None:
    """``budget_usd``: a positive number of dollars. Anything else is fatal: a task whose
    budget cannot be read must not run without one."""
    if "budget_usd" not in meta:
        return None
    value = meta["budget_usd"]
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    message = (
        f"budget_usd must be a positive number of dollars, not {_value(value)}; write e.g. 'budget_usd: 5'"
    )
    check.add("budget_usd", "bad_budget", message, fatal=True)
    return None


def _value(value: object) -> str:
    """A bad value inside a message."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"'{_shown(value)}'"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return _kind(value)


def _report_runtime_keys(check: _Checker, legacy: dict[str, Any]) -> None:
    hint = "runtime state belongs in the registry: run 'task migrate'"
    for key in sorted(legacy):
        if key == "status":
            implied = LEGACY_STATUSES[legacy[key]]
            message = f"status {legacy[key]!r} is runtime state (read as {implied!r}); {hint}"
        else:
            message = f"runtime key '{key}' in frontmatter; {hint}"
        check.add(key, "legacy_runtime_keys", message)


def render_new(fields: Mapping[str, object]) -> str:
    """The text of a new task file: frontmatter in canonical key order, then the sections."""
    from . import frontmatter

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
