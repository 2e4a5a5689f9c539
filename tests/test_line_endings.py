"""Task files with CRLF or mixed line endings, through every command that reads or edits them.

Editors on Windows (and git with ``core.autocrlf``) write CRLF; a file edited on two
platforms ends up with both. The readers must see the same task as in an LF file, and each
edit must keep every line's ending and change only the lines it means to: checked byte for
byte against the file as it was. The library's line edits are tested line by line in
test_frontmatter.py (and ``task set``/``cancel`` on one CRLF file in test_edits.py); here are
the commands. Two tests run the CLI with a stdout that writes each "\\n" as "\\r\\n", as a
text stdout does on Windows.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from taskfiles.cli import app

from .conftest import commit_all, git, write_task

pytestmark = pytest.mark.planning

runner = CliRunner()

Lines = list[tuple[str, str]]  # (text, ending) per line

ALPHA = [
    "---",
    "title: Alpha  # the name",
    "status: not_started",
    "priority: p1",
    "labels:",
    "  - web",
    "# why it waits",
    "depends_on: [beta]",
    "---",
    "## Plan",
    "",
    "Do it.",
]
LEGACY = [*ALPHA[:2], "status: in_progress", "claimed_by: w1", *ALPHA[3:]]
ENDINGS: dict[str, Callable[[int], str]] = {
    "crlf": lambda i: "\r\n",
    # every other line CRLF: a key added takes the closing '---''s ending, not its neighbour's
    "mixed": lambda i: "\n" if i % 2 else "\r\n",
}


def lines_of(texts: list[str], kind: str) -> Lines:
    return [(text, ENDINGS[kind](i)) for i, text in enumerate(texts)]


def joined(lines: Lines) -> bytes:
    return "".join(text + ending for text, ending in lines).encode("utf-8")


def closing(lines: Lines) -> int:
    return [text for text, _ in lines].index("---", 1)


def replaced(lines: Lines, old: str, new: str) -> Lines:
    """The line ``old`` written as ``new``: its own ending kept."""
    return [(new if text == old else text, ending) for text, ending in lines]


def added(lines: Lines, *keys: str) -> Lines:
    """Keys added before the closing '---', each with its ending."""
    at = closing(lines)
    return lines[:at] + [(key, lines[at][1]) for key in keys] + lines[at:]


def removed(lines: Lines, old: str) -> Lines:
    return [(text, ending) for text, ending in lines if text != old]


@dataclass(frozen=True)
class Edit:
    args: tuple[str, ...]
    before: list[str]
    after: Callable[[Lines, bytes], Lines]  # the expected lines, given the lines and what was written


def _completed(lines: Lines, written: bytes) -> Lines:
    moment = re.search(rb'completed_at: "([^"]+)"', written)
    assert moment, written
    done = replaced(lines, "status: not_started", "status: completed")
    return added(done, "completed_by: me", f'completed_at: "{moment[1].decode()}"', 'pr: "#7"')


def _set(lines: Lines, written: bytes) -> Lines:
    changed = replaced(
        replaced(lines, "priority: p1", "priority: p0"), "depends_on: [beta]", "depends_on: []"
    )
    at = [text for text, _ in changed].index("  - web")
    changed.insert(at + 1, ("  - api", changed[at][1]))  # an item takes its list's last line's ending
    return added(changed, "owner: bob")


EDITS = {
    "ready": Edit(
        ("ready", "alpha"), ALPHA, lambda lines, _: replaced(lines, "status: not_started", "status: ready")
    ),
    "complete": Edit(("complete", "alpha", "--by", "me", "--pr", "#7"), ALPHA, _completed),
    "set": Edit(
        ("set", "alpha", "priority=p0", "owner=bob", "--add-label", "api", "--remove-dep", "beta"),
        ALPHA,
        _set,
    ),
    "assign": Edit(("assign", "alpha", "bob"), ALPHA, lambda lines, _: added(lines, "owner: bob")),
    "cancel": Edit(
        ("cancel", "alpha"),
        ALPHA,
        lambda lines, _: replaced(lines, "status: not_started", "status: cancelled"),
    ),
    "migrate": Edit(
        ("migrate",),
        LEGACY,
        lambda lines, _: removed(replaced(lines, "status: in_progress", "status: ready"), "claimed_by: w1"),
    ),
}


@pytest.fixture
def beta(repo: Path) -> Path:
    """A repository with tasks/beta.md (LF), which alpha depends on."""
    write_task(repo, "beta.md", "---\ntitle: Beta\nstatus: ready\n---\n")
    return repo


@pytest.mark.parametrize("kind", ENDINGS)
@pytest.mark.parametrize("name", EDITS)
def test_an_edit_keeps_each_line_ending_and_changes_only_its_lines(beta: Path, name: str, kind: str) -> None:
    edit = EDITS[name]
    lines = lines_of(edit.before, kind)
    path = beta / "tasks" / "core" / "alpha.md"
    path.parent.mkdir()
    path.write_bytes(joined(lines))
    commit_all(beta)
    result = runner.invoke(app, ["-C", str(beta), *edit.args])
    assert result.exit_code == 0, result.output
    written = path.read_bytes()
    assert written == joined(edit.after(lines, written))
    assert runner.invoke(app, ["-C", str(beta), "validate"]).exit_code == 0


@pytest.mark.parametrize("kind", ENDINGS)
def test_list_show_and_validate_read_it_as_the_lf_file(repo: Path, kind: str) -> None:
    write_task(repo, "core/alpha.md", "\n".join(LEGACY) + "\n")
    commit_all(repo)
    lf = _readings(repo)
    (repo / "tasks" / "core" / "alpha.md").write_bytes(joined(lines_of(LEGACY, kind)))
    read = _readings(repo)
    assert read["list"] == lf["list"]
    assert read["validate"] == lf["validate"] and len(lf["validate"]) == 3  # the same lines named
    assert read["show"].pop("body").replace("\r\n", "\n") == lf["show"].pop("body") == "## Plan\n\nDo it.\n"
    assert read["show"] == lf["show"]
    assert read["text"] == lf["text"]


def _readings(repo: Path) -> dict[str, Any]:
    """What list --json, show --json, show and validate --json say about the tasks."""

    def out(*args: str) -> str:  # stdout_bytes: .stdout reads "\r\n" as "\n"
        return runner.invoke(app, ["-C", str(repo), *args]).stdout_bytes.decode()

    listed = json.loads(out("list", "--json"))
    return {
        "list": [{k: v for k, v in task.items() if k != "created"} for task in listed],
        "show": json.loads(out("show", "alpha", "--json")),
        "text": out("show", "alpha"),
        "validate": [
            (p["path"], p["line"], p["code"]) for p in json.loads(out("validate", "--json"))["problems"]
        ],
    }


# -- a stdout that writes "\n" as "\r\n" -------------------------------------------------------

AS_ON_WINDOWS = (
    "import runpy, sys; sys.stdout.reconfigure(newline='\\r\\n'); sys.argv[0] = 'task'; "
    "runpy.run_module('taskfiles', run_name='__main__')"
)


def task_as_on_windows(root: Path, *args: str) -> bytes:
    """The CLI's stdout, from a process whose text stdout writes "\\r\\n" for "\\n"."""
    done = subprocess.run(
        [sys.executable, "-c", AS_ON_WINDOWS, *args], cwd=root, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_a_dry_run_diff_applies_whatever_stdout_does_with_newlines(beta: Path) -> None:
    write_task(beta, "lf.md", "---\ntitle: LF\nstatus: ready\npriority: p1\n---\n")
    (beta / "tasks" / "crlf.md").write_bytes(joined(lines_of(ALPHA, "crlf")))
    commit_all(beta)
    diff = task_as_on_windows(beta, "set", "lf", "crlf", "priority=p3", "--dry-run")
    (beta / "change.diff").write_bytes(diff)
    git(beta, "apply", "--whitespace=nowarn", "change.diff")
    assert b"priority: p3\n" in (beta / "tasks" / "lf.md").read_bytes()
    assert b"priority: p3\r\n" in (beta / "tasks" / "crlf.md").read_bytes()


def test_show_prints_a_crlf_body_as_an_lf_one(repo: Path) -> None:
    (repo / "tasks" / "crlf.md").write_bytes(joined(lines_of(ALPHA, "crlf")))
    write_task(repo, "lf.md", "\n".join(ALPHA) + "\n")
    crlf, lf = (task_as_on_windows(repo, "show", slug) for slug in ("crlf", "lf"))
    assert crlf.endswith(b"\r\n\r\n## Plan\r\n\r\nDo it.\r\n") and b"\r\r" not in crlf
    assert crlf.replace(b"crlf", b"lf") == lf
