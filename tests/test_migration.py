"""``task migrate``: legacy runtime keys leave the task files for the registry, line by line."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from taskfiles import config as config_module
from taskfiles.cli import app
from taskfiles.registry import open_registry

from .conftest import commit_all, write_task

pytestmark = pytest.mark.planning

runner = CliRunner()

FULL = """\
---
title: Full legacy claim
status: in_progress
priority: p1
claimed_by: bot-7
started_at: 2001-01-01T09:00:00Z
heartbeat_at: 2001-01-01T09:30:00Z
attempt: 2
owner: alice
---

## Plan

Keep this body, even the line below.
status: in_progress
"""
WORKER_ONLY = "---\ntitle: Worker only\nstatus: ready\nworker: w1\n---\n\nBody.\n"
COMMENTED = """\
---
# Planning header: keep me
title: "Quoted: title"   # a comment after a value
status: 'in_progress'  # set by the old tool
claimed_by: 'bot-9'    # who
claimed_at: "2001-02-03T04:05:06Z"
labels: [a, b]   # trailing
---
Body line one.
"""
COMMENTED_AFTER = """\
---
# Planning header: keep me
title: "Quoted: title"   # a comment after a value
status: 'ready'  # set by the old tool
labels: [a, b]   # trailing
---
Body line one.
"""
DONE = "---\ntitle: Shipped\nstatus: completed\ncompleted_at: '2026-01-05'\nclaimed_by: bot-1\n---\n"
CLEAN = "---\ntitle: Clean\nstatus: ready\n---\n"
LEGACY = {"full.md": FULL, "worker.md": WORKER_ONLY, "commented.md": COMMENTED, "done.md": DONE}
MOVED = {
    "full": ["status", "claimed_by", "started_at", "heartbeat_at", "attempt"],
    "worker": ["worker"],
    "commented": ["status", "claimed_by", "claimed_at"],
    "done": ["claimed_by"],
}


def run(root: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["-C", str(root), *args])
    assert result.exit_code == code, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    return result.stdout if code == 0 else result.stderr


def run_json(root: Path, *args: str) -> Any:
    return json.loads(run(root, *args, "--json"))


@pytest.fixture
def legacy(repo: Path) -> Path:
    """A repository whose committed task files carry runtime keys from an older tool."""
    for name, text in {**LEGACY, "clean.md": CLEAN}.items():
        write_task(repo, name, text)
    commit_all(repo)
    return repo


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "tasks").iterdir())}


def line_diff(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines removed, lines added) between two versions of a file."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True)):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def test_show_and_status_read_legacy_files_before_migration(legacy: Path) -> None:
    shown = run_json(legacy, "show", "full")
    assert shown["status"] == "ready" and shown["runtime"] is None
    assert shown["legacy_runtime"] == {
        "status": "in_progress",
        "claimed_by": "bot-7",
        "started_at": "2001-01-01T09:00:00Z",
        "heartbeat_at": "2001-01-01T09:30:00Z",
        "attempt": 2,
    }
    assert "claimed_by: bot-7  (runtime key; run 'task migrate')" in run(legacy, "show", "full")
    rows = {r["slug"]: r for r in run_json(legacy, "status")["tasks"]}
    for slug in ("full", "worker", "commented"):
        assert (rows[slug]["bucket"], rows[slug]["state"]) == ("needs_attention", "legacy_in_progress")
        assert [s["kind"] for s in rows[slug]["signals"]] == ["legacy_runtime_keys"]
    assert (rows["done"]["bucket"], rows["clean"]["bucket"]) == ("done", "ready")
    assert "legacy_in_progress" in run(legacy, "status", "--working-tree")


def test_dry_run_reports_every_file_and_key_and_changes_nothing(legacy: Path) -> None:
    before = snapshot(legacy)
    report = run_json(legacy, "migrate", "--dry-run")
    assert report["dry_run"] is True
    assert {f["slug"]: f["keys"] for f in report["files"]} == MOVED
    assert {f["slug"]: f["claim"] for f in report["files"]} == {
        "full": True,
        "worker": True,
        "commented": True,
        "done": False,
    }
    text = run(legacy, "migrate", "--dry-run")
    assert "tasks/full.md: would move status, claimed_by, started_at, heartbeat_at, attempt" in text
    assert snapshot(legacy) == before
    assert not (legacy / "registry").exists()


def test_migrate_moves_keys_into_the_registry_and_files_only_lose_those_lines(legacy: Path) -> None:
    before = {name: (legacy / "tasks" / name).read_text() for name in LEGACY}
    report = run_json(legacy, "migrate")
    assert report["dry_run"] is False and {f["slug"]: f["keys"] for f in report["files"]} == MOVED
    for name, old in before.items():
        new = (legacy / "tasks" / name).read_text()
        removed, added = line_diff(old, new)
        keys = MOVED[name.removesuffix(".md")]
        status_lines = [line for line in removed if line.startswith("status:")]
        assert sorted(line.split(":", 1)[0] for line in removed) == sorted(keys), name
        expected_added = [line.replace("in_progress", "ready") for line in status_lines]
        assert added == expected_added, name
    assert (legacy / "tasks" / "commented.md").read_text() == COMMENTED_AFTER
    assert (legacy / "tasks" / "clean.md").read_text() == CLEAN
    assert run_json(legacy, "validate")["problems"] == []


def test_migrated_claims_are_registry_entries_with_fresh_leases_and_events(legacy: Path) -> None:
    run(legacy, "migrate")
    entries = open_registry(config_module.load(legacy)).entries()
    full, worker, commented = entries["full"], entries["worker"], entries["commented"]
    assert (full.state, full.lease, full.attempt, full.worker) == ("running", 1, 2, "bot-7")
    assert full.started_at == "2001-01-01T09:00:00.000000Z"
    assert full.heartbeat_at == "2001-01-01T09:30:00.000000Z"
    assert (worker.state, worker.worker, worker.lease) == ("claimed", "w1", 1)
    assert (commented.state, commented.worker) == ("claimed", "bot-9")
    assert commented.claimed_at == "2001-02-03T04:05:06.000000Z"
    assert entries["done"].state == "released"  # nothing to claim; the entry carries the event
    migrated = {e["slug"]: e for e in run_json(legacy, "events") if e["type"] == "task.migrated"}
    assert migrated["full"]["details"] == {
        "path": "tasks/full.md",
        "keys": {
            "status": "in_progress",
            "claimed_by": "bot-7",
            "started_at": "2001-01-01T09:00:00Z",
            "heartbeat_at": "2001-01-01T09:30:00Z",
            "attempt": 2,
        },
        "claim": True,
    }
    assert migrated["done"]["details"]["keys"] == {"claimed_by": "bot-1"}
    assert migrated["done"]["details"]["claim"] is False
    assert all(e["actor"]["who"] and e["lease"] == 1 for e in migrated.values())
    # The fresh lease works, and the old tool's stale heartbeat now reads as stalled.
    assert run_json(legacy, "heartbeat", "worker", "--lease", "1")["state"] == "claimed"
    commit_all(legacy, "migrate")
    full_row = run_json(legacy, "status", "full")["tasks"][0]
    assert (full_row["state"], [s["kind"] for s in full_row["signals"]]) == ("running", ["stalled"])


def test_a_second_run_has_nothing_to_migrate(legacy: Path) -> None:
    run(legacy, "migrate")
    files, registry = snapshot(legacy), (legacy / "registry" / "registry.json").read_bytes()
    assert "nothing to migrate" in run(legacy, "migrate")
    assert run_json(legacy, "migrate")["files"] == []
    assert snapshot(legacy) == files
    assert (legacy / "registry" / "registry.json").read_bytes() == registry


def test_a_live_claim_in_the_registry_is_kept_and_reported(legacy: Path) -> None:
    open_registry(config_module.load(legacy)).claim("full", worker="new-dispatcher")
    report = {f["slug"]: f for f in run_json(legacy, "migrate")["files"]}
    assert report["full"]["claim"] is False
    assert report["full"]["skipped_claim"] == "registry already holds a live claim (lease 1)"
    entry = open_registry(config_module.load(legacy)).get("full")
    assert (entry.worker, entry.lease) == ("new-dispatcher", 1)
    assert "status:" in (legacy / "tasks" / "full.md").read_text()  # the status line stays, as ready
    assert "claimed_by" not in (legacy / "tasks" / "full.md").read_text()


def test_a_file_too_unusual_to_edit_stops_the_migration_before_any_change(legacy: Path) -> None:
    write_task(
        legacy, "alias.md", "---\ntitle: Alias\nstatus: ready\nclaimed_by: &who bot\nowner: *who\n---\n"
    )
    before = snapshot(legacy)
    stderr = run(legacy, "migrate", code=1)
    assert stderr.startswith("error: tasks/alias.md: ") and "nothing was migrated" in stderr
    assert snapshot(legacy) == before
    assert not (legacy / "registry" / "registry.json").exists()


def test_a_bad_max_attempts_is_a_config_error_before_any_change(legacy: Path) -> None:
    (legacy / "taskfiles.toml").write_text('[worker]\nmax_attempts = "many"\n', encoding="utf-8")
    before = snapshot(legacy)
    stderr = run(legacy, "migrate", code=2)
    assert stderr.startswith("error: ") and "max_attempts must be a whole number" in stderr
    assert snapshot(legacy) == before and not (legacy / "registry" / "registry.json").exists()
