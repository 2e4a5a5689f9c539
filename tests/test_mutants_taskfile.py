"""taskfile.py where mutation testing found behaviour no test pinned (issue 16): the whole text
of every problem a file can have, the JSON forms, the budget's bounds, a new file's text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskfiles.plan import taskfile
from taskfiles.plan.taskfile import Parsed, Problem, Schema

pytestmark = pytest.mark.planning

MIGRATE = "runtime state belongs in the registry: run 'task migrate'"
CONFLICT = "unresolved merge-conflict marker; resolve the conflict and delete the marker lines"
BUDGET = "budget_usd must be a positive number of dollars, not {}; write e.g. 'budget_usd: 5'"

# (id, file name, file bytes, still loads as a task, [(line, severity, code, message)])
PROBLEMS: list[tuple[str, str, bytes, bool, list[tuple[int, str, str, str]]]] = [
    (
        "bad slug",
        "-x.md",
        b"---\ntitle: x\n---\n",
        False,
        [
            (
                1,
                "error",
                "bad_slug",
                "slug '-x' is not a valid slug; rename the file to letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
            )
        ],
    ),
    (
        "NUL bytes: the first one's line",
        "t.md",
        b"\n---\ntitle: x\n---\nbody\x00\nmore\x00\n",
        False,
        [
            (
                5,
                "error",
                "binary",
                "binary file (NUL byte); task files are UTF-8 markdown: move it out of tasks/",
            )
        ],
    ),
    (
        "not UTF-8: the first bad byte's line",
        "t.md",
        b"\n---\ntitle: x\nowner: caf\xe9\n---\n",
        False,
        [(4, "error", "encoding", "not UTF-8 (byte 0xe9); re-save the file as UTF-8")],
    ),
    (
        "blank file",
        "t.md",
        b" \n",
        False,
        [(1, "error", "empty", "empty file; start it with '---', a 'title:' line and '---'")],
    ),
    (
        "conflict markers after a blank first line",
        "t.md",
        b"\n<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n",
        False,
        [(line, "error", "conflict_marker", CONFLICT) for line in (2, 4, 6)],
    ),
    (
        "one word and no frontmatter is not an empty file",
        "t.md",
        b"X\n",
        False,
        [(1, "error", "no_frontmatter", "no frontmatter: a task file must start with a '---' line")],
    ),
    (
        "no frontmatter",
        "t.md",
        b"# x\n",
        False,
        [(1, "error", "no_frontmatter", "no frontmatter: a task file must start with a '---' line")],
    ),
    (
        "unclosed frontmatter",
        "t.md",
        b"---\ntitle: x\n",
        False,
        [
            (
                1,
                "error",
                "no_frontmatter",
                "frontmatter opened on line 1 is never closed; add a '---' line after it",
            )
        ],
    ),
    (
        "invalid YAML",
        "t.md",
        b"---\ntitle: x\nowner: a: b\n---\n",
        False,
        [
            (
                3,
                "error",
                "yaml",
                "invalid YAML (mapping values are not allowed in this context); "
                "check quoting and indentation",
            )
        ],
    ),
    (
        "frontmatter that is a list",
        "t.md",
        b"---\n- a\n---\n",
        False,
        [(2, "error", "not_mapping", "frontmatter must be 'key: value' lines, not a list or text")],
    ),
    (
        "empty frontmatter",
        "t.md",
        b"---\n---\n",
        False,
        [(1, "error", "missing_title", "missing title; add a 'title: ...' line")],
    ),
    (
        "only a comment in the frontmatter",
        "t.md",
        b"---\n# c\n---\n",
        False,
        [(1, "error", "missing_title", "missing title; add a 'title: ...' line")],
    ),
    (
        "blank title",
        "t.md",
        b"---\ntitle: ' '\n---\n",
        False,
        [(2, "error", "missing_title", "title is empty; write what the task is about after 'title:'")],
    ),
    (
        "a boolean where one value goes",
        "t.md",
        b"---\ntitle: x\nowner: true\n---\n",
        False,
        [(3, "error", "bad_type", "owner must be a single value, not a boolean; write 'owner: some text'")],
    ),
    (
        "a list where one value goes",
        "t.md",
        b"---\ntitle: x\nowner: [a]\n---\n",
        False,
        [(3, "error", "bad_type", "owner must be a single value, not a list; write 'owner: one value'")],
    ),
    (
        "a string where a list goes",
        "t.md",
        b"---\ntitle: x\nlabels: ui\n---\n",
        False,
        [(3, "error", "bad_type", "labels must be a list of strings, not a string; write 'labels: [ui]'")],
    ),
    (
        "a number in a list of strings",
        "t.md",
        b"---\ntitle: x\nlabels: [1]\n---\n",
        False,
        [(3, "error", "bad_type", "labels must be a list of strings, not a list; write 'labels: [a, b]'")],
    ),
    (
        "a whole number where a list goes",
        "t.md",
        b"---\ntitle: x\nlabels: 5\n---\n",
        False,
        [(3, "error", "bad_type", "labels must be a list of strings, not a number; write 'labels: [a, b]'")],
    ),
    (
        "a decimal number where a list goes",
        "t.md",
        b"---\ntitle: x\ndepends_on: 1.5\n---\n",
        False,
        [
            (
                3,
                "error",
                "bad_type",
                "depends_on must be a list of strings, not a number; write 'depends_on: [a, b]'",
            )
        ],
    ),
    (
        "missing title: on line 1, whatever other keys the file has",
        "t.md",
        b"---\nstatus: ready\nTITLE: y\nXXtitleXX: y\n---\n",
        False,
        [
            (1, "error", "missing_title", "missing title; add a 'title: ...' line"),
            (3, "warning", "unknown_key", "unknown key 'TITLE' (kept as is); check its spelling"),
            (4, "warning", "unknown_key", "unknown key 'XXtitleXX' (kept as is); check its spelling"),
        ],
    ),
    (
        "unknown key",
        "t.md",
        b"---\ntitle: x\nteam: core\n---\n",
        True,
        [(3, "warning", "unknown_key", "unknown key 'team' (kept as is); check its spelling")],
    ),
    (
        "completed without completed_at",
        "t.md",
        b"---\ntitle: x\nstatus: completed\n---\n",
        True,
        [
            (
                3,
                "error",
                "missing_completed_at",
                "status is completed but completed_at is missing; add 'completed_at: YYYY-MM-DD'",
            )
        ],
    ),
    (
        "unknown status",
        "t.md",
        b"---\ntitle: x\nstatus: done\n---\n",
        False,
        [(3, "error", "bad_status", "status 'done' is not one of not_started, ready, completed, cancelled")],
    ),
    (
        "legacy status and a runtime key",
        "t.md",
        b"---\ntitle: x\nstatus: claimed\nclaimed_by: bob\n---\n",
        True,
        [
            (4, "error", "legacy_runtime_keys", f"runtime key 'claimed_by' in frontmatter; {MIGRATE}"),
            (
                3,
                "error",
                "legacy_runtime_keys",
                f"status 'claimed' is runtime state (read as 'ready'); {MIGRATE}",
            ),
        ],
    ),
    (
        "unknown priority",
        "t.md",
        b"---\ntitle: x\npriority: urgent\n---\n",
        False,
        [(3, "error", "bad_priority", "priority 'urgent' is not one of p0, p1, p2, p3")],
    ),
    *[
        (
            f"budget_usd: {text}",
            "t.md",
            f"---\ntitle: x\nbudget_usd: {text}\n---\n".encode(),
            False,
            [(3, "error", "bad_budget", BUDGET.format(shown))],
        )
        for text, shown in [
            ("lots", "'lots'"),
            ("0", "0"),
            ("-2.5", "-2.5"),
            ("", "nothing"),
            (".inf", "inf"),
            ("true", "a boolean"),
            ("[1]", "a list"),
        ]
    ],
]


def parse_file(tmp_path: Path, data: bytes, name: str = "t.md") -> Parsed:
    """Write ``data`` to a real file under tasks/ops/ and parse what is read back."""
    path = tmp_path / "tasks" / "ops" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return taskfile.parse(path.read_bytes(), f"tasks/ops/{name}", "ops", Schema())


@pytest.mark.parametrize(
    ("name", "data", "loads", "expected"), [c[1:] for c in PROBLEMS], ids=[c[0] for c in PROBLEMS]
)
def test_every_problem_in_full(
    tmp_path: Path, name: str, data: bytes, loads: bool, expected: list[tuple[int, str, str, str]]
) -> None:
    parsed = parse_file(tmp_path, data, name)
    path = f"tasks/ops/{name}"
    assert [p.to_dict() for p in parsed.problems] == [
        {"path": path, "line": line, "severity": severity, "code": code, "message": message}
        for line, severity, code, message in expected
    ]
    assert [str(p) for p in parsed.problems] == [
        f"{path}:{line}: {'warning: ' if severity == 'warning' else ''}{message}"
        for line, severity, _, message in expected
    ]
    assert (parsed.task is not None) is loads


@pytest.mark.parametrize(("text", "budget"), [("0.5", 0.5), ("5", 5.0), ("12.25", 12.25)])
def test_a_positive_budget_is_read_as_a_float(tmp_path: Path, text: str, budget: float) -> None:
    parsed = parse_file(tmp_path, f"---\ntitle: x\nbudget_usd: {text}\n---\n".encode())
    assert parsed.problems == () and parsed.task is not None
    assert parsed.task.budget_usd == budget and isinstance(parsed.task.budget_usd, float)


def test_a_file_the_fast_reader_declines_keeps_its_body_and_lines(tmp_path: Path) -> None:
    # '...' closes the header, which only the line splitter reads.
    parsed = parse_file(tmp_path, b"---\ntitle: &t x\nowner: bob\n...\nbody\n")
    assert parsed.problems == () and parsed.task is not None
    task = parsed.task
    assert (task.title, task.owner, task.body, task.body_line) == ("x", "bob", "body\n", 5)
    assert (task.slug, task.path, task.workstream) == ("t", "tasks/ops/t.md", "ops")
    assert dict(task.lines) == {"title": 2, "owner": 3}


def test_the_json_form_of_a_task(tmp_path: Path) -> None:
    text = (
        b"---\ntitle: x\nstatus: completed\npriority: p1\nowner: core\nmilestone: m1\n"
        b"depends_on: [a]\nlabels: [ui]\nagent: claude\nbudget_usd: 2\ncompleted_by: bob\n"
        b"completed_at: 2026-01-02\npr: 7\nteam: core\nattempts: 2\n---\nBody\n"
    )
    task = parse_file(tmp_path, text).task
    assert task is not None
    expected: dict[str, Any] = {
        "slug": "t",
        "title": "x",
        "status": "completed",
        "priority": "p1",
        "owner": "core",
        "milestone": "m1",
        "depends_on": ["a"],
        "labels": ["ui"],
        "agent": "claude",
        "budget_usd": 2.0,
        "workstream": "ops",
        "path": "tasks/ops/t.md",
        "completed_by": "bob",
        "completed_at": "2026-01-02",
        "pr": "7",
        "extra": {"team": "core"},
        "legacy_runtime": {"attempts": 2},
    }
    assert task.to_dict() == expected
    assert task.to_dict(body=True) == {**expected, "body": "Body\n"}
    assert list(task.to_dict()) == list(expected)


def test_the_json_form_is_a_copy_to_change(tmp_path: Path) -> None:
    task = parse_file(
        tmp_path, b"---\ntitle: x\ndepends_on: [a]\nlabels: [ui]\nteam: core\nattempts: 2\n---\n"
    ).task
    assert task is not None
    data = task.to_dict()
    data["depends_on"].append("b")
    data["labels"].append("ops")
    data["extra"]["size"] = 3
    data["legacy_runtime"]["pid"] = 7
    assert (task.depends_on, task.labels) == (("a",), ("ui",))
    assert (dict(task.extra), dict(task.legacy)) == ({"team": "core"}, {"attempts": 2})


def test_a_problem_as_text_and_json() -> None:
    error = Problem("tasks/a.md", 3, "bad", "bad_status")
    warning = Problem("tasks/a.md", 4, "odd", "unknown_key", "warning")
    assert (str(error), str(warning)) == ("tasks/a.md:3: bad", "tasks/a.md:4: warning: odd")
    assert error.to_dict() == {
        "path": "tasks/a.md",
        "line": 3,
        "severity": "error",
        "code": "bad_status",
        "message": "bad",
    }


def test_a_task_built_from_too_few_fields_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^a Task has 20 fields, not 1$"):
        taskfile._task(slug="x")


def test_render_new_text() -> None:
    fields = {"title": "Fix it", "status": None, "priority": "p1", "depends_on": (), "labels": ["a", "b c"]}
    assert taskfile.render_new({**fields, "owner": "bob"}) == (
        "---\ntitle: Fix it\npriority: p1\nowner: bob\nlabels: [a, b c]\n---\n\n"
        "## Problem\n\n\n## Context\n\n\n## Possible solutions\n\n\n## Plan\n\n\n"
        "## Acceptance criteria\n\n\n## Implementation progress\n\n\n## Review feedback\n"
    )
