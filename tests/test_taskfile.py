"""The task file parser: good files, bad files (code, line, message), and an oracle check."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import frontmatter as python_frontmatter
import orjson
import pytest

from taskfiles.plan import taskfile
from taskfiles.plan.taskfile import Parsed, Schema

pytestmark = pytest.mark.planning

FULL = """\
---
# planning record
title: Rotate the signing keys
status: completed
priority: p1
owner: core
milestone: "2026-q1"
depends_on:
  - vault-setup
  - audit-log
labels: [security, ops]
completed_by: 'alice'
completed_at: 2026-01-02
pr: 123
---

## Problem

Keys are old.
"""

# (id, file text, expected Task fields)
GOOD: list[tuple[str, str, dict[str, Any]]] = [
    (
        "minimal",
        "---\ntitle: Fix login\n---\n",
        {"title": "Fix login", "status": "not_started", "priority": "p2", "body": "", "body_line": 4},
    ),
    (
        "full",
        FULL,
        {
            "title": "Rotate the signing keys",
            "status": "completed",
            "priority": "p1",
            "owner": "core",
            "milestone": "2026-q1",
            "depends_on": ("vault-setup", "audit-log"),
            "labels": ("security", "ops"),
            "completed_by": "alice",
            "completed_at": "2026-01-02",
            "pr": "123",
            "body": "\n## Problem\n\nKeys are old.\n",
            "body_line": 16,
            "lines": {
                "title": 3,
                "status": 4,
                "priority": 5,
                "owner": 6,
                "milestone": 7,
                "depends_on": 8,
                "labels": 11,
                "completed_by": 12,
                "completed_at": 13,
                "pr": 14,
            },
        },
    ),
    ("only frontmatter, no final newline", "---\ntitle: x\n---", {"title": "x", "body": ""}),
    ("BOM", "\ufeff---\ntitle: x\nstatus: ready\n---\nbody\n", {"status": "ready", "body": "body\n"}),
    (
        "CRLF",
        "---\r\ntitle: x\r\nstatus: ready\r\ndepends_on:\r\n  - a\r\nowner: bob\r\n---\r\nbody\r\n",
        {"status": "ready", "depends_on": ("a",), "body": "body\r\n", "lines": {"owner": 6}},
    ),
    (
        "dates and times stay strings",
        "---\ntitle: x\nstatus: completed\ncompleted_at: 2026-01-02 10:30:00\ndue: 2026-03-01\n---\n",
        {"completed_at": "2026-01-02 10:30:00", "extra": {"due": "2026-03-01"}},
    ),
    (
        "explicit timestamp tag stays a string",
        "---\ntitle: x\ndue: !!timestamp 2026-03-01\n---\n",
        {"extra": {"due": "2026-03-01"}},
    ),
    ("number title and pr read as written", "---\ntitle: 2026\npr: 45\n---\n", {"title": "2026", "pr": "45"}),
    (
        "quoted keys and comments",
        "---\n'title': x  # the title\n\"status\": ready\n# a comment: with colon\npriority: p0\n---\n",
        {
            "title": "x",
            "status": "ready",
            "priority": "p0",
            "lines": {"title": 2, "status": 3, "priority": 5},
        },
    ),
    (
        "empty lists and null values",
        "---\ntitle: x\ndepends_on: []\nlabels:\nowner:\n---\n",
        {"depends_on": (), "labels": (), "owner": None},
    ),
    (
        "body with rules, setext headings and a form feed",
        "---\ntitle: x\n---\nHeading\n=======\n\n---\n\npage\x0cbreak\n",
        {"body": "Heading\n=======\n\n---\n\npage\x0cbreak\n", "body_line": 4},
    ),
    ("closing '...' delimiter", "---\ntitle: x\n...\nbody\n", {"title": "x", "body": "body\n"}),
    (
        "U+2028 inside a quoted value does not shift line numbers",
        '---\ntitle: "a\u2028b"\nowner: bob\n---\n',
        {"owner": "bob", "lines": {"title": 2, "owner": 3}},
    ),
    (
        "unknown keys are kept",
        "---\ntitle: x\nestimate: 3\nnotes: {a: 1}\n---\n",
        {"extra": {"estimate": 3, "notes": {"a": 1}}},
    ),
    ("title is stripped", "---\ntitle: '  padded  '\n---\n", {"title": "padded"}),
    (
        "anchors, aliases and merge keys",
        "---\ntitle: x\nlabels: &l [a, b]\nnotes: *l\n_base: &b {size: 1, risk: low}\n"
        "plan:\n  <<: *b\n  size: 2\n---\n",
        {
            "labels": ("a", "b"),
            "extra": {
                "notes": ["a", "b"],
                "_base": {"size": 1, "risk": "low"},
                "plan": {"size": 2, "risk": "low"},
            },
        },
    ),
    (
        "a top-level merge key sets keys on its own line",
        "---\ntitle: x\n<<: {status: ready, priority: p1}\npriority: p0\n---\n",
        {"status": "ready", "priority": "p0", "lines": {"title": 2, "status": 3, "priority": 4}},
    ),
    (
        "integers at the 64-bit edges, floats and YAML 1.1 numbers",
        "---\ntitle: x\nbig: 9223372036854775807\nsmall: -9223372036854775808\nhex: 0x1F\n"
        "octal: 017\nsexagesimal: 1:30\ninf: -.inf\ntagged: !!float 2\n---\n",
        {
            "extra": {
                "big": 2**63 - 1,
                "small": -(2**63),
                "hex": 31,
                "octal": 15,
                "sexagesimal": 90,
                "inf": float("-inf"),
                "tagged": 2.0,
            }
        },
    ),
    (
        "keys written every way YAML allows sit on their own lines",
        '---\n&t title: x\n!!str status: ready\n? priority\n: p1\n"owner": bob\n---\n',
        {
            "title": "x",
            "status": "ready",
            "priority": "p1",
            "lines": {"title": 2, "status": 3, "priority": 4, "owner": 6},
        },
    ),
    (
        "keys of a flow mapping sit on their own lines",
        "---\n{title: x,\n status: ready,\n\n owner: bob}\n---\n",
        {"status": "ready", "owner": "bob", "lines": {"title": 2, "status": 3, "owner": 5}},
    ),
    ("a tab after the colon (libyaml's rule, on every machine)", "---\ntitle:\tx\n---\n", {"title": "x"}),
]


def parse_file(tmp_path: Path, data: bytes, name: str = "task.md", schema: Schema | None = None) -> Parsed:
    """Write ``data`` to a real file under tasks/ and parse what is read back."""
    path = tmp_path / "tasks" / "infra" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return taskfile.parse(path.read_bytes(), f"tasks/infra/{name}", "infra", schema or Schema())


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in GOOD], ids=[case[0] for case in GOOD])
def test_good_files(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    parsed = parse_file(tmp_path, text.encode("utf-8"))
    assert parsed.task is not None, parsed.problems
    for key, value in expected.items():
        actual = getattr(parsed.task, key)
        if key == "lines":
            assert {k: actual[k] for k in value} == value
        else:
            assert actual == value, key
    assert [p for p in parsed.problems if p.severity == "error"] == []


def test_good_file_fields_not_listed_default(tmp_path: Path) -> None:
    task = parse_file(tmp_path, b"---\ntitle: x\n---\n").task
    assert task is not None
    assert (task.slug, task.path, task.workstream) == ("task", "tasks/infra/task.md", "infra")
    assert (task.owner, task.depends_on, task.labels, task.extra, task.legacy) == (None, (), (), {}, {})


def test_shared_json_form_prints_the_same_and_copies_nothing(tmp_path: Path) -> None:
    text = b"---\ntitle: x\ndepends_on: [a, b]\nlabels: [ui]\nteam: core\nattempts: 2\n---\nBody\n"
    task = parse_file(tmp_path, text).task
    assert task is not None and task.extra and task.legacy
    copied, shared = task.to_dict(), task.to_dict(shared=True)
    assert orjson.dumps(shared) == orjson.dumps(copied) and list(shared) == list(copied)
    assert copied["depends_on"] == ["a", "b"] and copied["extra"] is not task.extra
    assert shared["depends_on"] is task.depends_on and shared["labels"] is task.labels
    assert shared["extra"] is task.extra and shared["legacy_runtime"] is task.legacy
    assert task.to_dict(body=True, shared=True)["body"] == "Body\n"


# (id, file bytes, code, line, message fragment, still loads as a task)
BAD: list[tuple[str, bytes, str, int, str, bool]] = [
    (
        "YAML syntax error",
        b"---\ntitle: x\nstatus: ready\nowner: a: b\n---\n",
        "yaml",
        4,
        "invalid YAML (mapping values are not allowed",
        False,
    ),
    (
        "YAML error after a BOM and CRLF lines",
        b"\xef\xbb\xbf---\r\ntitle: x\r\n\r\nowner: a: b\r\n---\r\n",
        "yaml",
        4,
        "invalid YAML",
        False,
    ),
    (
        "YAML error names where the construct started",
        b"---\ntitle: x\ndepends_on: [a, b\nstatus: ready\n---\n",
        "yaml",
        4,
        "while parsing a flow sequence on line 3",
        False,
    ),
    (
        "unclosed quote runs to the closing delimiter",
        b"---\ntitle: 'x\nstatus: ready\n---\n",
        "yaml",
        4,
        "on line 2",
        False,
    ),
    (
        "YAML error line counts only newlines",
        '---\ntitle: "a\u2028b"\nowner: a: b\n---\n'.encode(),
        "yaml",
        3,
        "mapping values",
        False,
    ),
    (
        "control character in the frontmatter",
        "---\ntitle: x\nowner: é\x07\n---\n".encode(),
        "yaml",
        3,
        "control characters are not allowed",
        False,
    ),
    (
        "duplicate key",
        b"---\ntitle: x\nstatus: ready\nowner: a\nstatus: completed\n---\n",
        "yaml",
        5,
        "duplicate key 'status' (first on line 3); delete one of them",
        False,
    ),
    (
        "no frontmatter",
        b"# Fix login\n\nSome text.\n",
        "no_frontmatter",
        1,
        "must start with a '---' line",
        False,
    ),
    (
        "frontmatter after a blank line",
        b"\n---\ntitle: x\n---\n",
        "no_frontmatter",
        1,
        "must start with a '---' line",
        False,
    ),
    (
        "unclosed frontmatter",
        b"---\ntitle: x\n\nbody\n",
        "no_frontmatter",
        1,
        "never closed; add a '---' line",
        False,
    ),
    (
        "frontmatter is a list",
        b"---\n- a\n- b\n---\n",
        "not_mapping",
        2,
        "must be 'key: value' lines",
        False,
    ),
    (
        "missing title",
        b"---\nstatus: ready\n---\n",
        "missing_title",
        1,
        "missing title; add a 'title: ...'",
        False,
    ),
    ("empty title", b"---\nstatus: ready\ntitle: ''\n---\n", "missing_title", 3, "title is empty", False),
    ("blank title", b"---\ntitle: '   '\n---\n", "missing_title", 2, "title is empty", False),
    ("null title", b"---\ntitle:\n---\n", "missing_title", 2, "title is empty", False),
    (
        "title is a list",
        b"---\ntitle: [a, b]\n---\n",
        "bad_type",
        2,
        "title must be a single value, not a list",
        False,
    ),
    (
        "unknown status 'done'",
        b"---\ntitle: x\nstatus: done\n---\n",
        "bad_status",
        3,
        "status 'done' is not one of not_started, ready, completed, cancelled",
        False,
    ),
    (
        "legacy status in_progress",
        b"---\ntitle: x\nstatus: in_progress\n---\n",
        "legacy_runtime_keys",
        3,
        "status 'in_progress' is runtime state (read as 'ready'); runtime state belongs in the registry",
        True,
    ),
    (
        "unknown priority",
        b"---\ntitle: x\npriority: urgent\n---\n",
        "bad_priority",
        3,
        "priority 'urgent' is not one of p0, p1, p2, p3",
        False,
    ),
    (
        "depends_on as a string",
        b"---\ntitle: x\ndepends_on: setup-db\n---\n",
        "bad_type",
        3,
        "depends_on must be a list of strings, not a string; write 'depends_on: [setup-db]'",
        False,
    ),
    (
        "labels with a number",
        b"---\ntitle: x\nlabels: [a, 1]\n---\n",
        "bad_type",
        3,
        "labels must be a list of strings",
        False,
    ),
    ("owner as a mapping", b"---\ntitle: x\nowner: {a: 1}\n---\n", "bad_type", 3, "not a mapping", False),
    *[
        (
            f"runtime key {key}",
            f"---\ntitle: x\n{key}: something\n---\n".encode(),
            "legacy_runtime_keys",
            3,
            f"runtime key '{key}' in frontmatter; runtime state belongs in the registry",
            True,
        )
        for key in ("started_at", "claimed_by", "claimed_at", "worker", "heartbeat_at", "attempt")
    ],
    (
        "conflict markers",
        b"---\ntitle: x\n<<<<<<< HEAD\nstatus: ready\n=======\nstatus: completed\n>>>>>>> task/x\n---\n",
        "conflict_marker",
        3,
        "unresolved merge-conflict marker",
        False,
    ),
    (
        "conflict markers with CRLF and no labels",
        b"---\r\ntitle: x\r\n---\r\n<<<<<<<\r\na\r\n=======\r\nb\r\n>>>>>>>\r\n",
        "conflict_marker",
        4,
        "resolve the conflict and delete the marker lines",
        False,
    ),
    (
        "non-UTF-8 bytes",
        b"---\ntitle: x\nowner: caf\xe9\n---\n",
        "encoding",
        3,
        "not UTF-8 (byte 0xe9)",
        False,
    ),
    ("NUL byte", b"---\ntitle: x\n---\nbody\x00\n", "binary", 4, "binary file (NUL byte)", False),
    ("empty file", b"", "empty", 1, "empty file; start it with '---'", False),
    ("whitespace-only file", b"  \n\t\n\n", "empty", 1, "empty file", False),
    ("BOM only", b"\xef\xbb\xbf\n", "empty", 1, "empty file", False),
    (
        "completed without completed_at",
        b"---\ntitle: x\nstatus: completed\n---\n",
        "missing_completed_at",
        3,
        "add 'completed_at: YYYY-MM-DD'",
        True,
    ),
    (
        "unsupported tag",
        b"---\ntitle: x\ntags: !!set {a}\n---\n",
        "yaml",
        3,
        "not supported in task files",
        False,
    ),
    *[
        (
            f"bad {tag} value",
            f"---\ntitle: x\nowner: a\nv: {tag} {value}\n---\n".encode(),
            "yaml",
            4,
            fragment,
            False,
        )
        for tag, value, fragment in [
            ("!!int", "x", "`x` is not an integer; fix it or remove the !!int tag"),
            ("!!int", "''", "`''` is not an integer"),
            ("!!float", "x", "`x` is not a number; fix it or remove the !!float tag"),
            ("!!bool", "maybe", "`maybe` is not a boolean; write true or false"),
            ("!!map", "[1]", "tag !!map does not fit a list; remove it"),
            ("!!seq", "{a: 1}", "tag !!seq does not fit a mapping; remove it"),
            ("!!str", "[a]", "tag !!str does not fit a list; remove it"),
            ("!!binary", "aGk=", "tag !!binary is not supported in task files; write plain text"),
            ("!!omap", "[a: 1]", "tag !!omap is not supported in task files; remove it"),
            ("!!pairs", "[a: 1]", "tag !!pairs is not supported"),
            ("!!merge", "x", "'<<' merges mappings and can only be a key"),
            (
                "!!python/object:os.system",
                "x",
                "tag !!python/object:os.system is not supported in task files",
            ),
            ("!local", "x", "tag !local is not supported in task files; remove it"),
        ]
    ],
    (
        "a plain scalar that looks like a number but is none",
        b"---\ntitle: x\nv: 0b_\n---\n",
        "yaml",
        3,
        "`0b_` reads as a number but is not one; quote it: '0b_'",
        False,
    ),
    (
        "duplicate key written two ways",
        b"---\ntitle: x\n'owner': a\n\"owner\": b\n---\n",
        "yaml",
        4,
        "duplicate key 'owner' (first on line 3)",
        False,
    ),
    (
        "an empty key",
        b"---\ntitle: x\n? \n: v\n---\n",
        "yaml",
        3,
        "a key is empty (it reads as null); write a name before the ':'",
        False,
    ),
    ("a second document", b"---\ntitle: x\n--- y\n---\n", "yaml", 3, "a second YAML document", False),
    ("an alias without its anchor", b"---\ntitle: *t\n---\n", "yaml", 2, "alias *t has no anchor &t", False),
    (
        "an anchor defined twice",
        b"---\ntitle: &a x\nowner: &a y\n---\n",
        "yaml",
        3,
        "anchor &a is defined twice (first on line 2); rename one",
        False,
    ),
    (
        "merging something that is not a mapping",
        b"---\ntitle: x\n<<: [a]\n---\n",
        "yaml",
        3,
        "'<<' merges mappings: write '<<: *anchor'",
        False,
    ),
    (
        "frontmatter that is a flow list",
        b"---\n[a, b]\n---\n",
        "not_mapping",
        2,
        "must be 'key: value' lines",
        False,
    ),
]


@pytest.mark.parametrize(
    ("data", "code", "line", "fragment", "loads"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_files(tmp_path: Path, data: bytes, code: str, line: int, fragment: str, loads: bool) -> None:
    parsed = parse_file(tmp_path, data)
    found = [p for p in parsed.problems if p.code == code]
    assert found, parsed.problems
    first = min(found, key=lambda p: p.line)
    assert first.line == line
    assert fragment in first.message
    assert str(first).startswith(f"tasks/infra/task.md:{line}: ")
    assert (parsed.task is not None) is loads


def test_conflict_markers_report_every_marker_line(tmp_path: Path) -> None:
    data = b"---\ntitle: x\n---\n<<<<<<< ours\na\n||||||| base\n=======\nb\n>>>>>>> theirs\n"
    parsed = parse_file(tmp_path, data)
    assert [p.line for p in parsed.problems] == [4, 6, 7, 9]


# (id, frontmatter lines after 'title: x', the code, the line of the problem on that key)
PLACED_KEYS: list[tuple[str, str, str, int]] = [
    ("anchored key", "owner: a\n&s status: done", "bad_status", 4),
    ("tagged key", "owner: a\n!!str status: done", "bad_status", 4),
    ("explicit key", "owner: a\n? status\n: done", "bad_status", 4),
    ("explicit key on a later line than its '?'", "owner: a\n?\n  status\n: done", "bad_status", 5),
    ("quoted key with a colon", "'a: b': 1", "unknown_key", 3),
    (
        "runtime key after a block scalar",
        "notes: |\n  claimed_by: me\nclaimed_by: bob",
        "legacy_runtime_keys",
        5,
    ),
]


@pytest.mark.parametrize(
    ("extra", "code", "line"), [c[1:] for c in PLACED_KEYS], ids=[c[0] for c in PLACED_KEYS]
)
def test_problems_are_placed_on_the_line_of_their_key(
    tmp_path: Path, extra: str, code: str, line: int
) -> None:
    parsed = parse_file(tmp_path, f"---\ntitle: x\n{extra}\n---\n".encode())
    assert [p.line for p in parsed.problems if p.code == code] == [line], parsed.problems


def test_a_key_with_a_line_break_is_reported_on_one_line(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b'---\ntitle: x\n"a\\nb\\u2028c": 1\ndepends_on: "x\\ny"\n---\n')
    assert sorted(str(p) for p in parsed.problems) == [
        "tasks/infra/task.md:3: warning: unknown key 'a\\nb\\u2028c' (kept as is); check its spelling",
        "tasks/infra/task.md:4: depends_on must be a list of strings, not a string; "
        "write 'depends_on: [x\\ny]'",
    ]


def test_legacy_status_loads_as_ready(tmp_path: Path) -> None:
    task = parse_file(tmp_path, b"---\ntitle: x\nstatus: in_progress\nclaimed_by: bob\n---\n").task
    assert task is not None
    assert task.status == "ready"
    assert dict(task.legacy) == {"status": "in_progress", "claimed_by": "bob"}


def test_unknown_keys_are_kept_with_a_warning(tmp_path: Path) -> None:
    parsed = parse_file(tmp_path, b"---\ntitle: x\nestimate: 3\n---\n")
    assert parsed.task is not None
    assert dict(parsed.task.extra) == {"estimate": 3}
    (problem,) = parsed.problems
    assert (problem.code, problem.severity, problem.line) == ("unknown_key", "warning", 3)
    assert (
        str(problem)
        == "tasks/infra/task.md:3: warning: unknown key 'estimate' (kept as is); check its spelling"
    )


def test_configured_priorities(tmp_path: Path) -> None:
    schema = Schema(priorities=("high", "low"), default_priority="low")
    task = parse_file(tmp_path, b"---\ntitle: x\n---\n", schema=schema).task
    assert task is not None
    assert task.priority == "low"
    parsed = parse_file(tmp_path, b"---\ntitle: x\npriority: p1\n---\n", schema=schema)
    assert parsed.task is None
    assert "is not one of high, low" in parsed.problems[0].message


@pytest.mark.parametrize(
    "name",
    # The last three are file names git refuses as branch names (task/<slug>).
    [
        "My Task.md",
        "-leading-dash.md",
        "tâche.md",
        "a+b.md",
        "x y.md",
        "a..b.md",
        "x.lock.md",
        "trailing..md",
    ],
)
def test_bad_slug_file_names(tmp_path: Path, name: str) -> None:
    parsed = parse_file(tmp_path, b"---\ntitle: x\n---\n", name=name)
    assert parsed.task is None
    ((problem),) = parsed.problems
    assert (problem.code, problem.line) == ("bad_slug", 1)
    assert "is not a valid slug; rename the file" in problem.message


@pytest.mark.parametrize("name", ["fix-login.md", "v2.1_upgrade.md", "0day.md", "CamelCase.md"])
def test_good_slug_file_names(tmp_path: Path, name: str) -> None:
    parsed = parse_file(tmp_path, b"---\ntitle: x\n---\n", name=name)
    assert parsed.task is not None
    assert parsed.task.slug == name.removesuffix(".md")


def test_render_new_parses_back(tmp_path: Path) -> None:
    fields = {"title": "Fix: the 'login' page", "status": "ready", "depends_on": ["a", "b"], "owner": "@bob"}
    text = taskfile.render_new(fields)
    task = parse_file(tmp_path, text.encode()).task
    assert task is not None
    assert (task.title, task.status, task.depends_on, task.owner) == (
        "Fix: the 'login' page",
        "ready",
        ("a", "b"),
        "@bob",
    )
    assert [line.removeprefix("## ") for line in text.splitlines() if line.startswith("## ")] == list(
        taskfile.BODY_SECTIONS
    )


# --- python-frontmatter as an oracle -------------------------------------------------

_TEXT_FIELDS = ("title", "owner", "milestone", "completed_by", "completed_at", "pr")


def _oracle_value(key: str, value: object) -> object:
    """python-frontmatter reads dates as dates and numbers as numbers; we keep what was written."""
    if key in ("depends_on", "labels") and value is None:
        return ()
    if isinstance(value, datetime.date):
        return str(value)
    if key in _TEXT_FIELDS and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if key == "title" and isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return tuple(_oracle_value("", item) for item in value)
    return value


def _ours(task: taskfile.Task, key: str) -> object:
    if key in taskfile.DURABLE_KEYS:
        return getattr(task, key)
    source = task.legacy if key in task.legacy else task.extra
    return _oracle_value(key, source[key])


# Where python-frontmatter differs on purpose: it reads tagged timestamps as dates and
# knows no '...' closing delimiter.
_NOT_FOR_ORACLE = {"explicit timestamp tag stays a string", "closing '...' delimiter"}
_ORACLE_CASES = [case for case in GOOD if case[0] not in _NOT_FOR_ORACLE]


@pytest.mark.parametrize("text", [case[1] for case in _ORACLE_CASES], ids=[case[0] for case in _ORACLE_CASES])
def test_agrees_with_python_frontmatter(tmp_path: Path, text: str) -> None:
    task = parse_file(tmp_path, text.encode()).task
    assert task is not None
    # python-frontmatter does not know a BOM, and strips the content it returns.
    post = python_frontmatter.loads(text.removeprefix("\ufeff"))
    assert post.metadata, "the oracle found no frontmatter"
    theirs = {key: _oracle_value(key, value) for key, value in post.metadata.items()}
    assert {key: _ours(task, key) for key in theirs} == theirs
    assert task.body.replace("\r\n", "\n").strip() == post.content
