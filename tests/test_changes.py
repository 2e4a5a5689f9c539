"""task changes: what a branch changes in the plan, read from real git repositories.

The fixture is one pull request with a bit of everything (a rename, a completion that
unblocks a task, a new dependency that blocks one, a cycle, a broken file) and a base
branch that moved on after it branched, so the merge base matters.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from taskfiles.changes import compare
from taskfiles.config import load as load_config

from .conftest import commit_all, git, write_task

pytestmark = pytest.mark.planning

BIN = Path(sys.executable).parent
NASTY = "Pipe | <b>bold</b> @octocat *x* `y` $z$"


def task_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN / "task", "-C", str(root), *args], capture_output=True, text=True, timeout=60)


def front(title: str, body: str = "", **keys: str) -> str:
    lines = [f"title: {json.dumps(title)}", *(f"{key}: {value}" for key, value in keys.items())]
    return "---\n" + "\n".join(lines) + "\n---\n" + body


@pytest.fixture
def pr(repo: Path) -> Path:
    """main, and a branch 'feature' off it; main gains a task after the branch point."""
    for rel, text in {
        "core/base-model.md": front("Base model", status="ready", priority="p1"),
        "core/login.md": front("Login page", status="ready", depends_on="[base-model]"),
        "web/fix-login.md": front(
            "Fix login", "## Problem\n\nSSO users cannot log in since the IdP moved.\n"
        ),
        "core/needs-fix.md": front("Needs the fix", depends_on="[fix-login]"),
        "core/report.md": front("Weekly report", status="ready"),
        "core/a.md": front("A", depends_on="[b]"),
        "core/b.md": front("B"),
        "core/old.md": front("Old idea", status="ready"),
        "core/prio.md": front("Prio", "Some text.\n", owner="alice", milestone="m1", labels="[x]"),
        "core/moveme.md": front("Move me"),
        "core/c.md": front("C", depends_on="[d]"),  # a cycle the branch leaves alone
        "core/d.md": front("D", depends_on="[c]"),
    }.items():
        write_task(repo, rel, text)
    commit_all(repo, "plan")
    git(repo, "checkout", "-q", "-b", "feature")
    done = front("Base model", status="completed", priority="p1", completed_at="2026-01-02")
    write_task(repo, "core/base-model.md", done)
    git(repo, "mv", "tasks/web/fix-login.md", "tasks/web/fix-sso-login.md")
    fixed = (repo / "tasks/web/fix-sso-login.md").read_text().replace("Fix login", "Fix SSO login")
    write_task(repo, "web/fix-sso-login.md", fixed)
    write_task(repo, "core/needs-fix.md", front("Needs the fix", depends_on="[fix-sso-login]"))
    write_task(repo, "core/report.md", front("Weekly report", status="ready", depends_on="[new-dep]"))
    write_task(repo, "core/new-dep.md", front("New dependency"))
    write_task(repo, "core/b.md", front("B", depends_on="[a]"))
    (repo / "tasks/core/old.md").unlink()
    prio = front("Prio", "Some more text.\n", owner="bob", milestone="m2", labels="[x, y]", priority="p1")
    write_task(repo, "core/prio.md", prio)
    git(repo, "mv", "tasks/core/moveme.md", "tasks/web/moveme.md")
    write_task(repo, "core/broken.md", "---\ntitle: Broken\nstatus: [ready\n---\n")
    write_task(repo, "web/nasty.md", front(NASTY, status="ready"))
    commit_all(repo, "feature")
    git(repo, "checkout", "-q", "main")
    write_task(repo, "core/later.md", front("Landed later", status="ready"))
    commit_all(repo, "main moves on")
    git(repo, "checkout", "-q", "feature")
    return repo


def changes_json(root: Path, *args: str) -> dict[str, Any]:
    done = task_cli(root, "changes", *args, "--json")
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def slugs(items: list[dict[str, Any]]) -> list[str]:
    return [item["slug"] for item in items]


def test_json_reports_every_kind_of_change_against_the_merge_base(pr: Path) -> None:
    found = changes_json(pr, "main..feature")
    assert found["base"]["ref"] == "main" and found["head"]["ref"] == "feature"
    assert found["base"]["commit"] == git(pr, "merge-base", "main", "feature").strip()
    assert slugs(found["added"]) == ["new-dep", "nasty"]  # broken.md is a problem, not a task
    assert slugs(found["removed"]) == ["old"]  # later.md landed on main after the branch point
    edited = {item["slug"]: item for item in found["edited"]}
    assert sorted(edited) == ["b", "base-model", "fix-sso-login", "moveme", "prio", "report"]
    renamed = edited["fix-sso-login"]
    assert renamed["renamed_from"] == {"slug": "fix-login", "path": "tasks/web/fix-login.md", "by": "body"}
    assert renamed["events"] == ["renamed", "retitled"]
    assert edited["moveme"]["events"] == ["moved"]
    assert edited["moveme"]["changes"]["path"] == {
        "from": "tasks/core/moveme.md",
        "to": "tasks/web/moveme.md",
    }
    assert edited["base-model"]["events"] == ["completed"]
    assert edited["report"]["added"] == {"depends_on": ["new-dep"]}
    prio = edited["prio"]
    assert prio["events"] == [
        "reprioritised",
        "reassigned",
        "milestone_changed",
        "labels_changed",
        "body_edited",
    ]
    assert prio["changes"]["owner"] == {"from": "alice", "to": "bob"}
    assert prio["added"] == {"labels": ["y"]} and prio["removed"] == {} and prio["body_edited"]
    counts = found["counts"]
    assert (counts["added"], counts["removed"], counts["edited"], counts["renamed"]) == (2, 1, 6, 1)


def test_the_queue_when_it_merges(pr: Path) -> None:
    queue = changes_json(pr, "main..feature")["queue"]
    assert slugs(queue["became_dispatchable"]) == ["login", "nasty"]
    assert [(item["slug"], item["blocked_by"]) for item in queue["became_blocked"]] == [
        ("report", ["new-dep"])
    ]
    assert [(item["slug"], item["reason"]) for item in queue["left_queue"]] == [
        ("base-model", "completed"),
        ("old", "removed"),
    ]
    assert queue["new_cycles"] == [["a", "b"]] and queue["resolved_cycles"] == []
    git(pr, "checkout", "-q", "-b", "unwind")
    write_task(pr, "core/b.md", front("B"))
    commit_all(pr, "b waits for nothing")
    unwound = changes_json(pr, "feature..unwind")["queue"]
    assert unwound["resolved_cycles"] == [["a", "b"]] and unwound["new_cycles"] == []


def test_a_dependency_that_follows_a_rename_is_no_change(pr: Path) -> None:
    edited = slugs(changes_json(pr, "main..feature")["edited"])
    assert "needs-fix" not in edited  # fix-login -> fix-sso-login, and its dependent followed


def test_invalid_files_are_problems_with_file_and_line_on_their_side(pr: Path) -> None:
    found = changes_json(pr, "main..feature")
    [problem] = found["problems"]
    validated = json.loads(task_cli(pr, "validate", "--ref", "feature", "--json").stdout)["problems"]
    assert problem == {"side": "head", **next(p for p in validated if p["path"] == "tasks/core/broken.md")}
    assert problem["code"] == "yaml"
    still = changes_json(pr, "feature")  # the working tree against feature: broken on both sides
    assert [(p["side"], p["path"]) for p in still["problems"]] == [("head", "tasks/core/broken.md")]
    git(pr, "checkout", "-q", "-b", "fixup")
    write_task(pr, "core/broken.md", front("Broken no more"))
    commit_all(pr, "fix the file")
    fixed = changes_json(pr, "feature..fixup")  # now the broken file is at the base
    assert [(p["side"], p["path"]) for p in fixed["problems"]] == [("base", "tasks/core/broken.md")]
    assert fixed["added"] == fixed["edited"] == []  # the file was there: no new task


def test_a_task_that_turns_unreadable_is_not_removed_and_leaves_the_queue_as_unreadable(pr: Path) -> None:
    write_task(pr, "core/login.md", "---\ntitle: Login page\nstatus: ready\ndepends_on: [base-model\n---\n")
    found = changes_json(pr, "main")  # the working tree against main's merge base
    assert "login" not in slugs(found["removed"]) + slugs(found["edited"])
    assert "login" not in slugs(found["queue"]["became_dispatchable"])
    assert ("head", "tasks/core/login.md") in [(p["side"], p["path"]) for p in found["problems"]]
    feature = changes_json(pr, "feature")  # the working tree's edit alone
    assert [(item["slug"], item["reason"]) for item in feature["queue"]["left_queue"]] == [
        ("login", "unreadable")
    ]


def test_text_output_is_grouped_and_short(pr: Path) -> None:
    done = task_cli(pr, "changes", "main..feature")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = out.splitlines()
    assert lines[0].startswith("main at merge base (") and " .. feature (" in lines[0]
    assert lines[1] == (
        "2 added, 1 removed, 6 edited (1 renamed, 1 completed, 1 reprioritised, 1 reassigned); "
        "2 become dispatchable, 1 becomes blocked, 2 leave the queue, 1 new dependency cycle"
    )
    assert lines[lines.index("removed (1):") + 1] == "  old  was ready  Old idea"
    edited = lines[lines.index("edited (6):") + 1 : lines.index("queue when this merges:")]
    assert "  fix-sso-login  renamed from fix-login (same body); title was 'Fix login'" in edited
    assert (
        "  prio           priority p2 -> p1; owner alice -> bob; milestone m1 -> m2; labels +y; body edited"
        in edited
    )
    queue = lines[lines.index("queue when this merges:") + 1 : lines.index("problems:")]
    assert queue == [
        "  becomes dispatchable  login, nasty",
        "  becomes blocked       report (waits for new-dep)",
        "  leaves the queue      base-model (completed), old (removed)",
        "  new dependency cycle  a -> b -> a",
    ]
    assert re.fullmatch(r"  head: tasks/core/broken\.md:\d+: invalid YAML .*", lines[-1])


def test_markdown_is_a_pull_request_comment_that_titles_cannot_break(pr: Path) -> None:
    done = task_cli(pr, "changes", "main..feature", "--markdown")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("### Task changes\n\n**2 added, 1 removed, 6 edited (")
    assert "2 become dispatchable, 1 becomes blocked, 2 leave the queue, 1 new dependency cycle." in out
    assert "**New dependency cycle:** `a` → `b` → `a`" in out
    prio = "priority p2 → p1; owner alice → bob; milestone m1 → m2; labels +y; body edited"
    assert f"| edited | `prio` | Prio | {prio} |" in out
    nasty = [line for line in out.splitlines() if "`nasty`" in line]
    assert len(nasty) == 2  # added, and dispatchable when it merges
    for line in nasty:
        assert r"Pipe \| &lt;b&gt;bold&lt;/b&gt; @&#8203;octocat \*x\* \`y\` \$z\$" in line
        assert "<b>" not in line and len(re.findall(r"(?<!\\)\|", line)) == 5  # four cells, no more
    tables = [line for line in out.splitlines() if line.startswith("|")]
    assert all(len(re.findall(r"(?<!\\)\|", line)) == line.count(" | ") + 2 for line in tables)


def test_markdown_folds_long_lists(repo: Path) -> None:
    write_task(repo, "keep.md", front("Keep"))
    commit_all(repo)
    git(repo, "checkout", "-q", "-b", "many")
    for number in range(12):
        write_task(repo, f"t{number:02}.md", front(f"Task {number}"))
    commit_all(repo)
    out = task_cli(repo, "changes", "main..many", "--markdown").stdout
    assert "<details><summary>12 task changes</summary>" in out and out.rstrip().endswith("</details>")


def test_the_working_tree_is_the_default_head_and_nothing_is_checked_out(pr: Path) -> None:
    write_task(pr, "core/untracked.md", front("Not committed yet", status="ready"))
    status = git(pr, "status", "--porcelain")
    branch = git(pr, "rev-parse", "--abbrev-ref", "HEAD")
    found = changes_json(pr)  # base_ref (main) to the working tree
    assert found["head"] == {"ref": None, "commit": None}
    assert "untracked" in slugs(found["added"]) and "later" not in slugs(found["removed"])
    assert changes_json(pr, "main..")["head"]["ref"] == "HEAD"  # git's meaning: main..HEAD
    assert "untracked" not in slugs(changes_json(pr, "main..")["added"])
    assert (
        git(pr, "status", "--porcelain") == status and git(pr, "rev-parse", "--abbrev-ref", "HEAD") == branch
    )


def test_no_changes_is_exit_0(pr: Path) -> None:
    done = task_cli(pr, "changes", "feature..feature")
    assert done.returncode == 0 and "no task changed; no change to the queue" in done.stdout
    done = task_cli(pr, "changes", "feature..feature", "--markdown")
    assert done.returncode == 0 and "**no task changed**; no change to the queue." in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope..main"], "git ref 'nope' names no commit"),
        (["main..nope"], "git ref 'nope' names no commit"),
        (["main..feature..x"], "'main..feature..x' is not a range"),
        (["main....feature"], "'main....feature' is not a range"),
        ([""], "the range is empty"),
        (["main", "--json", "--markdown"], "--json and --markdown are two formats"),
    ],
)
def test_a_bad_range_or_unknown_ref_is_exit_2(pr: Path, args: list[str], message: str) -> None:
    done = task_cli(pr, "changes", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and message in done.stderr


def test_an_unknown_base_ref_names_the_setting_and_unrelated_histories_are_exit_2(pr: Path) -> None:
    (pr / "taskfiles.toml").write_text('base_ref = "origin/main"\n')
    done = task_cli(pr, "changes")
    assert done.returncode == 2 and "'origin/main' (the configured base_ref) names no commit" in done.stderr
    git(pr, "checkout", "-q", "--orphan", "elsewhere")
    commit_all(pr, "no shared history")
    done = task_cli(pr, "changes", "main..elsewhere")
    assert done.returncode == 2 and "main and elsewhere share no commit" in done.stderr


# -- renames ---------------------------------------------------------------------------------------


def branch_off(repo: Path, base: dict[str, str], head: dict[str, str | None]) -> dict[str, Any]:
    """Commit ``base`` on main, apply ``head`` (None deletes) on a branch; compare them."""
    for rel, text in base.items():
        write_task(repo, rel, text)
    commit_all(repo)
    git(repo, "checkout", "-q", "-b", "topic")
    for rel, change in head.items():
        if change is None:
            (repo / "tasks" / rel).unlink()
        else:
            write_task(repo, rel, change)
    commit_all(repo)
    return compare(load_config(repo), "main..topic").to_dict()


TEMPLATE = "## Problem\n\n## Context\n\n## Plan\n\n"


@pytest.mark.parametrize(
    ("base", "head", "renamed"),
    [
        # the same title, the body rewritten: paired by title
        ({"x.md": front("Same", "one\n")}, {"x.md": None, "y.md": front("Same", "two\n")}, "title"),
        # task new's empty sections are no evidence: not a rename
        ({"x.md": front("One", TEMPLATE)}, {"x.md": None, "y.md": front("Two", TEMPLATE)}, None),
        # a body two tasks share pairs neither
        (
            {"x.md": front("One", "shared\n"), "z.md": front("Three", "shared\n")},
            {"x.md": None, "y.md": front("Two", "shared\n")},
            None,
        ),
        # moved to another workstream folder under the same slug: the same task, moved
        ({"x.md": front("One")}, {"x.md": None, "ws/x.md": front("One")}, "moved"),
    ],
    ids=["same-title", "template-body", "shared-body", "moved-folder"],
)
def test_what_pairs_a_gone_task_with_a_new_one(
    repo: Path, base: dict[str, str], head: dict[str, str | None], renamed: str | None
) -> None:
    found = branch_off(repo, base, head)
    if renamed == "moved":
        assert [item["events"] for item in found["edited"]] == [["moved"]] and found["added"] == []
    elif renamed is None:
        assert found["edited"] == [] and slugs(found["added"]) == ["y"] and "x" in slugs(found["removed"])
    else:
        [item] = found["edited"]
        assert item["renamed_from"]["by"] == renamed and found["added"] == found["removed"] == []


def test_runtime_keys_an_older_tool_left_are_compared_and_move_the_queue(repo: Path) -> None:
    claimed = "---\ntitle: T\nstatus: in_progress\nclaimed_by: bot\n---\n"
    found = branch_off(repo, {"t.md": claimed}, {"t.md": front("T", status="ready")})
    [item] = found["edited"]
    assert item["events"] == ["other_keys"] and "legacy_runtime" in item["changes"]
    assert slugs(found["queue"]["became_dispatchable"]) == ["t"]
