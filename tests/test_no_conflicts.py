"""The central proof: runtime state in the registry never causes a merge conflict.

A repository with main and one branch per task; each branch edits only its own
task file (progress notes, then ``task complete``), and main moves on meanwhile.
Workers run in linked worktrees and go through claim/start/heartbeat/log/finish
many times, through the real CLI. Nothing tracked changes, and every branch
merges into main cleanly.

Beside it, the same work with the claim state written into frontmatter (as an
in-house tool would: ``status: in_progress``, ``claimed_by``, ``heartbeat_at`` on
main when it dispatches, and in the branch as the worker heartbeats) makes every
merge conflict: the two sides change the same lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from taskfiles import config as config_module
from taskfiles.cli import app
from taskfiles.plan import frontmatter
from taskfiles.registry import open_registry

from .conftest import git

runner = CliRunner()
SLUGS = ("api-pagination", "login-flow", "search-index", "audit-log")
ROUNDS = 3
HEARTBEATS = 3
TASK = (
    "---\ntitle: {title}\nstatus: ready\npriority: p2\n---\n\n"
    "## Plan\n\nDo it.\n\n## Implementation progress\n"
)


def task(root: Path, *args: str) -> str:
    """One real ``task`` command in ``root``; it must succeed."""
    result = runner.invoke(app, ["-C", str(root), *args])
    assert result.exit_code == 0, f"task {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def tracked_state(root: Path) -> tuple[str, dict[str, bytes]]:
    """``git status --porcelain`` and the bytes of every file under tasks/."""
    status = git(root, "status", "--porcelain", "--untracked-files=all")
    files = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted((root / "tasks").rglob("*"))
        if p.is_file()
    }
    return status, files


def merge(main: Path, branch: str) -> subprocess.CompletedProcess[str]:
    """``git merge --no-ff branch`` on main, however it ends."""
    return subprocess.run(
        ["git", "merge", "--no-ff", "--no-edit", branch],
        cwd=main,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """main with one ready task per slug and the registry ignored, as 'task init' sets it up."""
    main = tmp_path / "main"
    main.mkdir()
    git(main, "init", "-q", "-b", "main")
    task(main, "init", str(main))
    for slug in SLUGS:
        (main / "tasks" / f"{slug}.md").write_text(TASK.format(title=slug.replace("-", " ").capitalize()))
    git(main, "add", "-A")
    git(main, "commit", "-q", "-m", "queue")
    return main


def start_branches(main: Path) -> dict[str, Path]:
    """A branch task/<slug> and a linked worktree for each task, as the dispatcher makes them."""
    worktrees = {}
    for slug in SLUGS:
        path = main.parent / "wt" / slug
        git(main, "worktree", "add", "-q", "-b", f"task/{slug}", str(path))
        worktrees[slug] = path
    return worktrees


def branch_work(worktree: Path, slug: str, step: int) -> None:
    """The worker's own edit to its own task file, committed in its branch."""
    path = worktree / "tasks" / f"{slug}.md"
    with path.open("a") as handle:
        handle.write(f"- step {step}: done\n")
    git(worktree, "commit", "-q", "-am", f"{slug}: step {step}")


def main_moves_on(main: Path, n: int) -> None:
    """Main gains commits meanwhile (new tasks), so every merge is a real merge."""
    (main / "tasks" / f"new-{n}.md").write_text(TASK.format(title=f"New {n}"))
    git(main, "add", "tasks")
    git(main, "commit", "-q", "-m", f"new task {n}")


def test_registry_runtime_state_never_touches_tracked_files_and_branches_merge_cleanly(project: Path) -> None:
    main = project
    worktrees = start_branches(main)
    before = tracked_state(main)
    for round_ in range(ROUNDS):
        for slug in SLUGS:
            wt = worktrees[slug]
            lease = task(main, "claim", slug, "--worker", f"worker-{slug}").strip()
            task(wt, "start", slug, "--lease", lease, "--worktree", str(wt), "--branch", f"task/{slug}")
            for beat in range(HEARTBEATS):
                task(wt, "heartbeat", slug, "--lease", lease, "--note", f"beat {beat}", "--cost-usd", "0.01")
            task(wt, "log", slug, f"round {round_}", "--lease", lease, "--source", "agent")
            task(wt, "progress", slug, str(30 * (round_ + 1)), "--lease", lease)
            task(wt, "finish", slug, "--lease", lease, "--exit-code", "1" if round_ < ROUNDS - 1 else "0")
            if round_ < ROUNDS - 1:
                task(main, "retry", slug)
            assert tracked_state(main) == before  # after every command batch, not only at the end
            assert git(wt, "status", "--porcelain", "--untracked-files=all") == ""
        main_moves_on(main, round_)
        before = tracked_state(main)
        for slug in SLUGS:
            branch_work(worktrees[slug], slug, round_)
    for slug in SLUGS:
        task(worktrees[slug], "complete", slug, "--by", f"worker-{slug}")
        git(worktrees[slug], "commit", "-q", "-am", f"complete {slug}")
    assert tracked_state(main) == before
    # Every task ran every round, through one registry seen from every worktree.
    statuses = {r["slug"]: r for r in _status(main)}
    assert all(statuses[slug]["entry"]["attempt"] == ROUNDS for slug in SLUGS)
    for slug in SLUGS:
        done = merge(main, f"task/{slug}")
        assert done.returncode == 0, f"merging task/{slug} conflicted:\n{done.stdout}{done.stderr}"
    assert git(main, "diff", "--name-only", "--diff-filter=U") == ""
    for slug in SLUGS:
        text = (main / "tasks" / f"{slug}.md").read_text()
        assert "status: completed" in text and f"- step {ROUNDS - 1}: done" in text
        assert "in_progress" not in text and "heartbeat" not in text


@pytest.mark.planning
def test_claim_state_in_frontmatter_makes_the_same_merges_conflict(project: Path) -> None:
    main = project
    worktrees = start_branches(main)
    clock = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    for round_ in range(ROUNDS):
        for slug in SLUGS:
            stamp = clock + timedelta(hours=round_)
            # The dispatcher records its claim on main, as such tools do, and commits it.
            in_house_tool(main, slug, status="in_progress", claimed_by=f"worker-{slug}", heartbeat_at=stamp)
            # The worker heartbeats into its own copy of the file, in its branch.
            for beat in range(HEARTBEATS):
                later = stamp + timedelta(seconds=30 * (beat + 1))
                in_house_tool(worktrees[slug], slug, status="in_progress", heartbeat_at=later)
            branch_work(worktrees[slug], slug, round_)
        main_moves_on(main, round_)
    for slug in SLUGS:
        task(worktrees[slug], "complete", slug, "--by", f"worker-{slug}")
        git(worktrees[slug], "commit", "-q", "-am", f"complete {slug}")
    conflicted = []
    for slug in SLUGS:
        done = merge(main, f"task/{slug}")
        if done.returncode != 0:
            conflicted.append(git(main, "diff", "--name-only", "--diff-filter=U").split())
            assert "<<<<<<<" in (main / "tasks" / f"{slug}.md").read_text()
            git(main, "merge", "--abort")
    assert conflicted == [[f"tasks/{slug}.md"] for slug in SLUGS]


def in_house_tool(root: Path, slug: str, **keys: object) -> None:
    """What a tool that keeps claim state in frontmatter does: edit the keys, commit."""
    path = root / "tasks" / f"{slug}.md"
    values = {k: v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, datetime) else v for k, v in keys.items()}
    path.write_text(frontmatter.set_keys(path.read_text(), values))
    git(root, "commit", "-q", "-am", f"{slug}: {', '.join(keys)}")


def _status(main: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(task(main, "status", "--json", "--working-tree"))["tasks"]
    return rows


def test_the_task_console_script_in_a_linked_worktree_writes_the_main_registry(project: Path) -> None:
    main = project
    worktrees = start_branches(main)
    slug = SLUGS[0]
    lease = task(main, "claim", slug).strip()
    script = Path(sys.executable).parent / "task"
    done = subprocess.run(
        [script, "heartbeat", slug, "--lease", lease, "--note", "from the worktree"],
        cwd=worktrees[slug],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not (worktrees[slug] / "registry" / "registry.json").exists()
    assert open_registry(config_module.load(main)).get(slug).progress == "from the worktree"
    assert git(worktrees[slug], "status", "--porcelain", "--untracked-files=all") == ""
