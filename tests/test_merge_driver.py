"""The task-file merge driver: real `git merge` between branches with the driver installed by
`task merge-driver install`, the merge itself on tables of three versions, and a property
test over generated task files."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from taskfiles.errors import TaskFileError
from taskfiles.plan import frontmatter
from taskfiles.plan.merge import BODY, FILE, FRONTMATTER, merge

from .conftest import commit_all, git
from .test_frontmatter import EDIT_VALUES, File, task_files

pytestmark = pytest.mark.planning

TASK = Path(sys.executable).parent / "task"


def task(root: Path, *args: str, code: int = 0) -> str:
    """Run the real ``task`` command in ``root``; check its exit code, return its stdout."""
    done = subprocess.run([TASK, *args], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == code, f"task {' '.join(args)}: exit {done.returncode}: {done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class Outcome:
    code: int  # git merge's exit status
    output: str  # what git merge printed (the driver's stderr included)
    text: bytes  # the merged file


def merged(
    root: Path, base: str | bytes, ours: str | bytes, theirs: str | bytes, rel: str = "tasks/a.md"
) -> Outcome:
    """Commit ``base`` as ``rel`` on main, ``theirs`` on a branch, ``ours`` on main, then
    ``git merge`` the branch into main."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)

    def commit(text: str | bytes, message: str) -> None:
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        git(root, "add", "--", str(path))
        git(root, "commit", "-q", "-m", message)

    commit(base, "base")
    git(root, "checkout", "-q", "-b", "theirs")
    commit(theirs, "theirs")
    git(root, "checkout", "-q", "main")
    commit(ours, "ours")
    done = subprocess.run(
        ["git", "merge", "--no-edit", "theirs"], cwd=root, capture_output=True, text=True, check=False
    )
    return Outcome(done.returncode, done.stdout + done.stderr, path.read_bytes())


@pytest.fixture
def installed(repo: Path) -> Path:
    """``repo`` with the driver installed and .gitattributes committed."""
    task(repo, "merge-driver", "install")
    commit_all(repo, "merge driver")
    return repo


BASE = """\
---
title: Add login page
status: not_started
priority: p2
owner: alice
depends_on: [user-model, sessions]
labels: [web]
---

## Problem

Users cannot log in.

## Plan

Write the page.
"""


def edit(text: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# -- real merges ----------------------------------------------------------------------------------


def test_keys_changed_on_neighbouring_lines_are_both_kept(installed: Path) -> None:
    ours = edit(BASE, ("status: not_started", "status: ready"))
    theirs = edit(BASE, ("priority: p2", "priority: p0"), ("owner: alice", "owner: bob"))
    outcome = merged(installed, BASE, ours, theirs)
    assert outcome.code == 0, outcome.output
    assert outcome.text.decode() == edit(
        ours, ("priority: p2", "priority: p0"), ("owner: alice", "owner: bob")
    )
    assert git(installed, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("labels", "ours", "theirs", "result"),
    [
        ("labels: [web]\n", "labels: [web, api]\n", "labels: [web, docs]\n", "labels: [web, api, docs]\n"),
        (
            "labels:\n  - web\n",
            "labels:\n  - web\n  - api\n",
            "labels:\n  - web\n  - docs\n",
            "labels:\n  - web\n  - api\n  - docs\n",
        ),
        (
            "labels: [web, old]\n",
            "labels: [web, old, api]\n",
            "labels: [web, docs]\n",
            "labels: [web, api, docs]\n",
        ),
    ],
    ids=["flow", "block", "one-side-removes"],
)
def test_labels_added_on_both_sides_are_united(
    installed: Path, labels: str, ours: str, theirs: str, result: str
) -> None:
    base = edit(BASE, ("labels: [web]\n", labels))
    outcome = merged(installed, base, edit(base, (labels, ours)), edit(base, (labels, theirs)))
    assert outcome.code == 0, outcome.output
    assert outcome.text.decode() == edit(base, (labels, result))


def test_a_dependency_removed_on_one_side_and_a_label_added_on_the_other(installed: Path) -> None:
    ours = edit(BASE, ("depends_on: [user-model, sessions]", "depends_on: [user-model]"))
    theirs = edit(BASE, ("labels: [web]", "labels: [web, security]"))
    outcome = merged(installed, BASE, ours, theirs)
    assert outcome.code == 0, outcome.output
    assert outcome.text.decode() == edit(ours, ("labels: [web]", "labels: [web, security]"))


def test_the_same_value_changed_differently_conflicts_on_its_line_alone(installed: Path) -> None:
    ours = edit(BASE, ("status: not_started", "status: ready"), ("Write the page.", "Write the page in Go."))
    theirs = edit(BASE, ("status: not_started", "status: cancelled"), ("priority: p2", "priority: p1"))
    outcome = merged(installed, BASE, ours, theirs)
    assert outcome.code != 0
    assert "conflicting changes to status" in outcome.output
    assert "CONFLICT" in outcome.output
    assert outcome.text.decode() == edit(
        ours,
        ("status: ready\n", "<<<<<<< ours\nstatus: ready\n=======\nstatus: cancelled\n>>>>>>> theirs\n"),
        ("priority: p2", "priority: p1"),
    )
    assert git(installed, "status", "--porcelain") == "UU tasks/a.md\n"
    assert "conflict_marker" in task(installed, "validate", "--json", code=1)


def test_a_key_removed_on_one_side_and_changed_on_the_other_conflicts(installed: Path) -> None:
    ours = edit(BASE, ("owner: alice\n", ""))
    theirs = edit(BASE, ("owner: alice", "owner: bob"))
    outcome = merged(installed, BASE, ours, theirs)
    assert outcome.code != 0
    marked = "<<<<<<< ours\n=======\nowner: bob\n>>>>>>> theirs\n"
    assert outcome.text.decode() == edit(ours, ("labels: [web]\n", "labels: [web]\n" + marked))


def test_body_edits_in_different_paragraphs_merge(installed: Path) -> None:
    ours = edit(
        BASE,
        ("Users cannot log in.", "Users cannot log in at all."),
        ("status: not_started", "status: ready"),
    )
    theirs = edit(
        BASE, ("Write the page.", "Write the page and its tests."), ("priority: p2", "priority: p1")
    )
    outcome = merged(installed, BASE, ours, theirs)
    assert outcome.code == 0, outcome.output
    assert outcome.text.decode() == edit(
        ours, ("Write the page.", "Write the page and its tests."), ("priority: p2", "priority: p1")
    )


def test_body_edits_of_the_same_line_conflict_there_and_the_frontmatter_merges(installed: Path) -> None:
    ours = edit(BASE, ("Write the page.", "Write the page in Go."), ("status: not_started", "status: ready"))
    theirs = edit(BASE, ("Write the page.", "Write the page in Rust."), ("priority: p2", "priority: p1"))
    outcome = merged(installed, BASE, ours, theirs)
    assert outcome.code != 0
    assert "conflicting changes to body" in outcome.output
    text = outcome.text.decode()
    header, _, body = text.partition("\n---\n")
    assert header == edit(ours, ("priority: p2", "priority: p1")).partition("\n---\n")[0]
    assert "<<<<<<< ours\nWrite the page in Go.\n=======\nWrite the page in Rust.\n>>>>>>> theirs\n" in body


COMMENTED = """\
---
# The login work, split from the auth epic.
title: 'Add login page'   # shown on the board
status: "not_started"  # task ready flips it
priority: p2

owner: alice # lead
labels:
  - web    # the front end
  # more labels below when triaged
  - 'ui'
milestone: "m1"
---
Body.
"""


def test_comments_and_quoting_are_kept_byte_for_byte(installed: Path) -> None:
    ours = edit(
        COMMENTED, ('status: "not_started"', 'status: "ready"'), ("  - 'ui'\n", "  - 'ui'\n  - api\n")
    )
    theirs = edit(
        COMMENTED,
        ("priority: p2", "priority: p1  # raised in review"),
        ("  - 'ui'\n", "  - 'ui'\n  - docs\n"),
        ('milestone: "m1"', 'milestone: "m2"'),
    )
    outcome = merged(installed, COMMENTED, ours, theirs)
    assert outcome.code == 0, outcome.output
    assert outcome.text.decode() == edit(
        ours,
        ("priority: p2", "priority: p1  # raised in review"),
        ("  - api\n", "  - api\n  - docs\n"),
        ('milestone: "m1"', 'milestone: "m2"'),
    )


def test_a_crlf_file_keeps_its_line_endings(installed: Path) -> None:
    crlf = BASE.replace("\n", "\r\n")
    ours = edit(crlf, ("status: not_started", "status: ready"), ("labels: [web]", "labels: [web, api]"))
    theirs = edit(crlf, ("labels: [web]", "labels: [web, docs]"), ("owner: alice", "owner: bob"))
    outcome = merged(installed, crlf, ours, theirs)
    assert outcome.code == 0, outcome.output
    expected = edit(ours, ("labels: [web, api]", "labels: [web, api, docs]"), ("owner: alice", "owner: bob"))
    assert outcome.text == expected.encode()


def test_a_crlf_conflict_has_crlf_markers(installed: Path) -> None:
    crlf = BASE.replace("\n", "\r\n")
    ours = edit(crlf, ("status: not_started", "status: ready"))
    theirs = edit(crlf, ("status: not_started", "status: cancelled"))
    outcome = merged(installed, crlf, ours, theirs)
    assert outcome.code != 0
    marked = "<<<<<<< ours\r\nstatus: ready\r\n=======\r\nstatus: cancelled\r\n>>>>>>> theirs\r\n"
    assert outcome.text == edit(ours, ("status: ready\r\n", marked)).encode()


def test_a_taskfiles_package_in_the_repository_is_never_what_the_driver_runs(
    installed: Path, tmp_path: Path
) -> None:
    """git runs the driver in the work tree: ``python -m`` would import a ``taskfiles``
    folder a branch committed there before the installed package (-P keeps it out)."""
    marker = tmp_path / "ran-the-branch's-code"
    planted = installed / "taskfiles"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "__main__.py").write_text(f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(0)\n")
    commit_all(installed, "a package named like ours")
    ours = edit(BASE, ("status: not_started", "status: ready"))
    theirs = edit(BASE, ("priority: p2", "priority: p0"))
    outcome = merged(installed, BASE, ours, theirs)
    assert not marker.exists()
    assert outcome.code == 0, outcome.output
    assert outcome.text.decode() == edit(
        BASE, ("status: not_started", "status: ready"), ("priority: p2", "priority: p0")
    )


def test_without_the_driver_git_conflicts_on_neighbouring_keys(repo: Path) -> None:
    """What the driver is for: git's line merge cannot tell two neighbouring keys apart."""
    ours = edit(BASE, ("status: not_started", "status: ready"))
    theirs = edit(BASE, ("priority: p2", "priority: p0"))
    assert merged(repo, BASE, ours, theirs).code != 0


# -- install, status, uninstall -------------------------------------------------------------------


def test_install_is_idempotent_and_uninstall_leaves_other_lines(repo: Path) -> None:
    attributes = repo / ".gitattributes"
    attributes.write_bytes(b"*.png binary\n# keep this comment\n*.sh text eol=lf")
    assert "not installed" in task(repo, "merge-driver", "status")
    first = task(repo, "merge-driver", "install")
    assert "added 'tasks/**/*.md merge=taskfiles' to .gitattributes" in first
    assert f"{shlex.quote(sys.executable)} -P -m taskfiles merge-driver run %O %A %B %L %P" in first
    after = attributes.read_bytes()
    assert after == b"*.png binary\n# keep this comment\n*.sh text eol=lf\ntasks/**/*.md merge=taskfiles\n"
    config = (repo / ".git" / "config").read_bytes()
    assert "already installed; nothing changed" in task(repo, "merge-driver", "install")
    assert attributes.read_bytes() == after and (repo / ".git" / "config").read_bytes() == config
    shown = json.loads(task(repo, "merge-driver", "status", "--json"))
    assert shown["installed"] and shown["current"] and shown["effective"] == "taskfiles"
    assert git(repo, "config", "--get", "merge.taskfiles.driver").startswith(shlex.quote(sys.executable))

    removed = task(repo, "merge-driver", "install", "--uninstall")
    assert "removed 'tasks/**/*.md merge=taskfiles' from .gitattributes" in removed
    assert attributes.read_bytes() == b"*.png binary\n# keep this comment\n*.sh text eol=lf\n"
    assert "merge.taskfiles" not in git(repo, "config", "--list", "--local")
    assert "not installed; nothing changed" in task(repo, "merge-driver", "install", "--uninstall")


def test_uninstall_keeps_an_attribute_line_it_did_not_add_and_install_keeps_a_foreign_driver(
    repo: Path,
) -> None:
    attributes = repo / ".gitattributes"
    attributes.write_text("tasks/**/*.md merge=taskfiles\n")  # came with the repository
    task(repo, "merge-driver", "install")
    assert "install did not add it in this clone" in task(repo, "merge-driver", "install", "--uninstall")
    assert attributes.read_text() == "tasks/**/*.md merge=taskfiles\n"
    assert "merge.taskfiles" not in git(repo, "config", "--list", "--local")
    git(repo, "config", "merge.taskfiles.driver", "my-own-merge %A %B")
    refused = subprocess.run([TASK, "merge-driver", "install"], cwd=repo, capture_output=True, text=True)
    assert refused.returncode == 4
    assert 'a [merge "taskfiles"] driver that is not this tool\'s (my-own-merge %A %B)' in refused.stderr
    assert git(repo, "config", "--get", "merge.taskfiles.driver").strip() == "my-own-merge %A %B"


def test_uninstall_deletes_the_gitattributes_install_made(repo: Path) -> None:
    task(repo, "merge-driver", "install")
    task(repo, "merge-driver", "install", "--uninstall")
    assert not (repo / ".gitattributes").exists()


def test_install_updates_a_driver_of_another_interpreter(repo: Path) -> None:
    task(repo, "merge-driver", "install")
    git(repo, "config", "merge.taskfiles.driver", "/gone/python -m taskfiles merge-driver run %O %A %B %L %P")
    assert "another interpreter" in task(repo, "merge-driver", "status")
    out = task(repo, "merge-driver", "install")
    assert "(was: /gone/python" in out
    assert json.loads(task(repo, "merge-driver", "status", "--json"))["current"]


def test_status_says_when_a_later_attribute_line_overrides_the_driver(repo: Path) -> None:
    task(repo, "merge-driver", "install")
    with (repo / ".gitattributes").open("a") as handle:
        handle.write("*.md merge=union\n")
    assert "git reads merge=union for task files" in task(repo, "merge-driver", "status")


def test_the_pattern_names_the_configured_tasks_folder(repo: Path) -> None:
    (repo / "taskfiles.toml").write_text('tasks_dir = "work items"\n')
    out = task(repo, "merge-driver", "install")
    assert "added '\"work items/**/*.md\" merge=taskfiles'" in out
    assert git(repo, "check-attr", "merge", "--", "work items/web/a.md").endswith(": merge: taskfiles\n")
    assert git(repo, "check-attr", "merge", "--", "tasks/a.md").endswith(": merge: unspecified\n")
    commit_all(repo)
    ours = edit(BASE, ("status: not_started", "status: ready"))
    theirs = edit(BASE, ("priority: p2", "priority: p0"))
    outcome = merged(repo, BASE, ours, theirs, "work items/web/a.md")
    assert outcome.code == 0, outcome.output


def test_install_outside_a_repository_is_an_error(tmp_path: Path) -> None:
    done = subprocess.run([TASK, "merge-driver", "install"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "not inside a git repository; run 'git init' first" in done.stderr


# -- the merge, in memory ---------------------------------------------------------------------------

H = "---\n"
# (id, base, ours, theirs, merged, conflicts)
MERGES: list[tuple[str, str, str, str, str, tuple[str, ...]]] = [
    ("removed on one side, unchanged on the other", "a: 1\nb: 2\n", "a: 1\nb: 3\n", "b: 2\n", "b: 3\n", ()),
    ("added on both sides alike", "a: 1\n", "a: 1\nb: x\n", "b: x\na: 1\n", "a: 1\nb: x\n", ()),
    (
        "added on both sides differently",
        "a: 1\n",
        "a: 1\nb: x\n",
        "a: 2\nb: y\n",
        "a: 2\n<<<<<<< ours\nb: x\n=======\nb: y\n>>>>>>> theirs\n",
        ("b",),
    ),
    (
        "1 and true differ",
        "x: 1\ny: a\nz: b\n",
        "x: 1\ny: c\nz: b\n",
        "x: true\ny: a\nz: b\n",
        "x: true\ny: c\nz: b\n",
        (),
    ),
    (
        "a nested value is copied as theirs wrote it",
        "s: a\nmeta:\n  k: 1\n",
        "s: b\nmeta:\n  k: 1\n",
        "s: a\nmeta:\n  k: 2  # two\n  j: [3]\n",
        "s: b\nmeta:\n  k: 2  # two\n  j: [3]\n",
        (),
    ),
    (
        "a key theirs added keeps theirs' lines",
        "a: x\nb: y\n",
        "a: z\nb: y\n",
        "a: x\nb: w\nc:   # new\n  - p\n  - 'q'\n",
        "a: z\nb: w\nc:   # new\n  - p\n  - 'q'\n",
        (),
    ),
    (
        "a key ours reformatted keeps ours' quoting",
        "a: x\nb: y\n",
        "a: 'x'  # ours\nb: z\n",
        "a: w\nb: y\n",
        "a: 'w'  # ours\nb: z\n",
        (),
    ),
    (
        "lists added on both sides without an ancestor",
        "a: 1\n",
        "a: 2\nl: [x, y]\n",
        "a: 1\nl: [y, z]\n",
        "a: 2\nl: [x, y, z]\n",
        (),
    ),
    (
        "a list against a text conflicts",
        "l: [a]\n",
        "l: [a, b]\n",
        "l: none\n",
        "<<<<<<< ours\nl: [a, b]\n=======\nl: none\n>>>>>>> theirs\n",
        ("l",),
    ),
    (
        "two conflicts, each on its own lines",
        "a: 1\nb: 1\nc: 1\n",
        "a: 2\nb: 1\nc: 2\n",
        "a: 3\nb: 3\nc: 3\n",
        "<<<<<<< ours\na: 2\n=======\na: 3\n>>>>>>> theirs\n"
        "b: 3\n"
        "<<<<<<< ours\nc: 2\n=======\nc: 3\n>>>>>>> theirs\n",
        ("a", "c"),
    ),
]


@pytest.mark.parametrize(
    ("base", "ours", "theirs", "result", "conflicts"),
    [case[1:] for case in MERGES],
    ids=[case[0] for case in MERGES],
)
def test_merge_frontmatter(
    base: str, ours: str, theirs: str, result: str, conflicts: tuple[str, ...]
) -> None:
    body = "\nbody\n"
    done = merge(*(f"{H}{text}{H}{body}".encode() for text in (base, ours, theirs)))
    assert (done.data.decode(), done.conflicts) == (f"{H}{result}{H}{body}", conflicts)


def test_merge_honours_the_marker_size() -> None:
    done = merge(b"---\na: 1\n---\n", b"---\na: 2\n---\n", b"---\na: 3\n---\n", marker_size=10)
    assert done.data == b"---\n<<<<<<<<<< ours\na: 2\n==========\na: 3\n>>>>>>>>>> theirs\n---\n"


def test_a_file_both_sides_added_merges_against_an_empty_ancestor() -> None:
    done = merge(
        b"", b"---\ntitle: A\nlabels: [api]\n---\nbody\n", b"---\ntitle: A\nlabels: [ui]\n---\nbody\n"
    )
    assert (done.data, done.conflicts) == (b"---\ntitle: A\nlabels: [api, ui]\n---\nbody\n", ())


def test_the_byte_order_mark_stays() -> None:
    bom = "\ufeff"
    base, ours, theirs = (f"{bom}---\na: {a}\nb: {b}\n---\n".encode() for a, b in ((1, 1), (2, 1), (1, 2)))
    assert merge(base, ours, theirs).data == f"{bom}---\na: 2\nb: 2\n---\n".encode()


def test_a_body_added_after_a_file_without_a_final_newline() -> None:
    done = merge(b"---\na: 1\nb: 1\n---", b"---\na: 2\nb: 1\n---", b"---\na: 1\nb: 2\n---\nbody\n")
    assert done.data == b"---\na: 2\nb: 2\n---\nbody\n"


def test_a_side_whose_frontmatter_is_not_yaml_is_merged_as_plain_lines() -> None:
    base = b"---\ntitle: A\n---\none\n\ntwo\n"
    ours = b"---\ntitle: [A\n---\none\n\ntwo\n"
    theirs = b"---\ntitle: A\n---\none\n\ntwo changed\n"
    done = merge(base, ours, theirs)
    assert (done.data, done.conflicts) == (b"---\ntitle: [A\n---\none\n\ntwo changed\n", ())
    assert "not valid YAML (line 3" in done.note
    clash = merge(base, ours, b"---\ntitle: B\n---\none\n\ntwo\n")
    assert (
        clash.conflicts == (FILE,)
        and b"<<<<<<< ours\ntitle: [A\n=======\ntitle: B\n>>>>>>> theirs\n" in clash.data
    )


def test_a_frontmatter_the_line_editor_cannot_edit_is_one_conflict() -> None:
    """A flow mapping header has no key lines: never a guess, the header is one conflict."""
    base = b"---\n{title: A, status: ready}\n---\nbody\n"
    ours = b"---\n{title: A, status: completed}\n---\nbody\n"
    theirs = b"---\n{title: B, status: ready}\n---\nbody\n"
    done = merge(base, ours, theirs)
    assert done.conflicts == (FRONTMATTER,) and done.note
    assert done.data == (
        b"---\n<<<<<<< ours\n{title: A, status: completed}\n=======\n{title: B, status: ready}\n"
        b">>>>>>> theirs\n---\nbody\n"
    )


def test_body_conflicts_are_reported_with_the_keys() -> None:
    base, ours, theirs = (f"---\na: {a}\n---\n{b}\n".encode() for a, b in ((1, "x"), (2, "y"), (3, "z")))
    assert merge(base, ours, theirs).conflicts == ("a", BODY)


# -- property: edits to different keys on each side merge into both -------------------------------

LIST_ITEMS = st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True).filter(lambda s: s not in ("y", "n"))


def _text_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


@st.composite
def edited_list(draw: st.DrawFn, old: list[str]) -> list[str]:
    """``old`` with some items dropped and new ones appended."""
    kept = [item for item in old if draw(st.booleans())]
    return kept + [item for item in draw(st.lists(LIST_ITEMS, max_size=3, unique=True)) if item not in old]


@st.composite
def side_edits(draw: st.DrawFn, old: dict[str, Any], keys: list[str]) -> dict[str, object]:
    """New values for ``keys``: another value, none (removed), or a list edited."""
    updates: dict[str, object] = {}
    for key in keys:
        if _text_list(old.get(key)) and draw(st.booleans()):
            updates[key] = draw(edited_list(old[key]))
        else:
            updates[key] = draw(st.one_of(st.none(), EDIT_VALUES, st.integers(0, 10**6)))
    return updates


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_files(), st.data())
def test_edits_to_different_keys_merge_into_both(file: File, data: st.DataObject) -> None:
    """Each key is left alone, edited on one side, or (a list) edited on both sides."""
    base = file.text
    old = frontmatter.load_yaml(frontmatter.split(base).header) or {}
    sides = {
        key: data.draw(
            st.sampled_from(["", "ours", "theirs", *(["both"] if _text_list(old.get(key)) else [])])
        )
        for key in [*old, "estimate", "notes"]
    }
    ours_updates = data.draw(side_edits(old, [key for key, side in sides.items() if side == "ours"]))
    theirs_updates = data.draw(side_edits(old, [key for key, side in sides.items() if side == "theirs"]))
    expected = dict(old)
    for key, value in {**ours_updates, **theirs_updates}.items():
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    for key in (key for key, side in sides.items() if side == "both"):
        mine, other = data.draw(edited_list(old[key])), data.draw(edited_list(old[key]))
        ours_updates[key], theirs_updates[key] = mine, other
        merged_list = [item for item in mine if item in other or item not in old[key]]
        expected[key] = merged_list + [item for item in other if item not in old[key] and item not in mine]
    try:
        ours, theirs = frontmatter.set_keys(base, ours_updates), frontmatter.set_keys(base, theirs_updates)
    except TaskFileError:
        assume(False)  # an edit the line editor refuses (a comment that would join a block scalar)
    done = merge(base.encode(), ours.encode(), theirs.encode())
    assert done.clean, done.data.decode()
    text = done.data.decode()
    assert text.startswith(file.bom + "---") and text.endswith(file.body)
    assert _as_json(frontmatter.load_yaml(frontmatter.split(text).header) or {}) == _as_json(expected)


def test_install_and_uninstall_keep_a_crlf_gitattributes_as_it_is(repo: Path) -> None:
    before = b"*.png binary\r\n*.sh text eol=lf\r\n"
    (repo / ".gitattributes").write_bytes(before)
    task(repo, "merge-driver", "install")
    assert (repo / ".gitattributes").read_bytes() == before + b"tasks/**/*.md merge=taskfiles\r\n"
    task(repo, "merge-driver", "install", "--uninstall")
    assert (repo / ".gitattributes").read_bytes() == before
