"""The runtime commands (claim .. gc, status, registry repair), through the real CLI.

Real git repositories in tmp_path, real registry files, CliRunner in process and,
for the race, real ``task`` processes. The store itself is proven in test_registry*.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from taskfiles import config as config_module
from taskfiles.cli import app
from taskfiles.dispatch.cycle import CycleResult
from taskfiles.registry import Actor, CycleRecord, open_registry
from taskfiles.state import BUCKETS

from .conftest import commit_all, git, write_task
from .harness import Site

runner = CliRunner()
QUEUE = {
    "alpha.md": "---\ntitle: Alpha\nstatus: ready\npriority: p1\nowner: alice\n---\n",
    "beta.md": "---\ntitle: Beta\nstatus: ready\ndepends_on: [alpha]\nowner: bob\n---\n",
    "draft.md": "---\ntitle: Draft\nstatus: not_started\n---\n",
    "shipped.md": "---\ntitle: Shipped\nstatus: completed\ncompleted_at: '2026-01-01'\n---\n",
    "gamma.md": "---\ntitle: Gamma\nstatus: ready\npriority: p3\n---\n",
    "legacy.md": "---\ntitle: Legacy\nstatus: in_progress\nclaimed_by: old-bot\n---\n",
}


STABLE_KEYS = {"slug", "lease", "state", "attempt", "max_attempts", "worker", "owner", "claimed_at"}
REPORT_KEYS = {
    "generated_at",
    "ref",
    "counts",
    "capacity",
    "cycle",
    "hosts",
    "attention",
    "tasks",
    "warnings",
    "registry_error",
    "skipped",
}
ROW_KEYS = {
    "slug",
    "bucket",
    "state",
    "lease",
    "attempt",
    "signals",
    "owner",
    "entry",
    "blocked_by",
    "detail",
}


def invoke(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """``task -C root ARGS`` in process."""
    return runner.invoke(app, ["-C", str(root), *args], env=env)


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a command that must succeed; return stdout."""
    result = invoke(root, *args, env=env)
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    return result.stdout


def run_json(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run a command with --json and parse its stdout."""
    return json.loads(run(root, *args, "--json", env=env))


def fail(root: Path, *args: str, code: int, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail with ``code``; return its stderr (one 'error:' line)."""
    result = invoke(root, *args, env=env)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    return result.stderr


@pytest.fixture
def queue(repo: Path) -> Path:
    """A repository with a small committed queue on main."""
    for name, text in QUEUE.items():
        write_task(repo, name, text)
    commit_all(repo)
    return repo


def registry_files(root: Path) -> dict[str, bytes]:
    """Every file under registry/ (to prove a refused write changed nothing)."""
    folder = root / "registry"
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def events(root: Path, slug: str | None = None) -> list[dict[str, Any]]:
    """The event log as JSON objects."""
    found: list[dict[str, Any]] = run_json(root, "events", *([slug] if slug else []))
    return found


# -- claim -------------------------------------------------------------------------------------


def test_claim_prints_the_lease_and_json_has_the_stable_keys(queue: Path) -> None:
    result = invoke(queue, "claim", "alpha", "--worker", "w1")
    assert result.exit_code == 0 and result.stdout == "1\n"
    assert "claimed 'alpha' for w1 (attempt 1)" in result.stderr
    claimed = run_json(queue, "claim", "gamma", env={"TASKFILES_WORKER": "agent-9"})
    assert set(claimed) >= STABLE_KEYS
    assert [claimed[k] for k in ("slug", "lease", "state", "worker")] == ["gamma", 1, "claimed", "agent-9"]


@pytest.mark.parametrize(
    ("slug", "code", "message"),
    [
        ("beta", 4, "'beta' waits for alpha (ready); its dependencies must be completed first"),
        ("draft", 4, "'draft' is not_started, not ready; run 'task ready' and land it first"),
        ("shipped", 4, "'shipped' is completed, not ready; it is finished"),
        (
            "legacy",
            4,
            "claimed in its frontmatter by an older tool (status: in_progress, claimed_by: old-bot)",
        ),
        ("ghost", 3, "no task with slug 'ghost'"),
    ],
)
def test_claim_refusals_are_clear_and_change_nothing(queue: Path, slug: str, code: int, message: str) -> None:
    stderr = fail(queue, "claim", slug, code=code)
    assert stderr.startswith("error: ") and message in stderr
    assert not (queue / "registry" / "registry.json").exists()


def test_a_live_claim_is_refused_with_who_holds_it(queue: Path) -> None:
    run(queue, "claim", "alpha", "--worker", "w1")
    stderr = fail(queue, "claim", "alpha", "--worker", "w2", code=4)
    assert "'alpha' has a live claim (lease 1, claimed by w1" in stderr and "task stop alpha" in stderr


@pytest.mark.parametrize("key", ["heartbeat_at: 2001-01-01T00:00:00Z", "attempt: 2"])
def test_a_ready_task_with_runtime_keys_is_refused_like_the_heartbeat_skips_it(queue: Path, key: str) -> None:
    write_task(queue, "stale.md", f"---\ntitle: Stale\nstatus: ready\npriority: p0\n{key}\n---\n")
    commit_all(queue)
    row = run_json(queue, "status", "stale")["tasks"][0]
    assert row["bucket"] == "needs_attention"
    stderr = fail(queue, "claim", "stale", code=4)
    assert (
        stderr.startswith("error: 'stale' has runtime keys in its frontmatter") and "'task migrate'" in stderr
    )
    assert run_json(queue, "next", "--claim")["slug"] == "alpha"  # p0 stale is skipped, not claimed


# -- the worker's side -------------------------------------------------------------------------


def test_start_heartbeat_finish_release_and_costs_accumulate(queue: Path) -> None:
    lease = run(queue, "claim", "alpha").strip()
    env = {"TASKFILES_LEASE": lease}
    started = run_json(queue, "start", "alpha", "--worktree", "/tmp/wt", "--branch", "task/alpha", env=env)
    assert (started["state"], started["pid"], started["branch"]) == ("running", None, "task/alpha")
    run(queue, "heartbeat", "alpha", "--lease", lease, "--cost-usd", "0.5")
    beat = run_json(queue, "heartbeat", "alpha", "--cost-usd", "0.25", "--note", "tests pass", env=env)
    assert (beat["cost_usd"], beat["total_cost_usd"], beat["heartbeats"]) == (0.75, 0.75, 2)
    assert beat["progress"] == "tests pass"
    finished = run_json(queue, "finish", "alpha", "--exit-code", "0", env=env)
    assert (finished["state"], finished["exit_code"]) == ("exited", 0)
    assert run_json(queue, "release", "alpha", "--reason", "merged")["state"] == "released"
    again = run_json(queue, "claim", "alpha")
    assert (again["lease"], again["attempt"], again["cost_usd"], again["total_cost_usd"]) == (2, 2, 0.0, 0.75)
    beat = run_json(queue, "heartbeat", "alpha", "--lease", "2", "--cost-usd", "0.1")
    assert (beat["cost_usd"], beat["total_cost_usd"]) == (0.1, 0.85)
    types = [e["type"] for e in events(queue, "alpha")]
    assert types == [
        "task.claimed",
        "task.started",
        "task.heartbeat",  # the first of the attempt
        "task.heartbeat",  # the one with a note
        "task.exited",
        "task.released",
        "task.claimed",
        "task.heartbeat",
    ]


def test_start_with_a_pid_records_it_for_worker_gone(queue: Path) -> None:
    lease = run(queue, "claim", "alpha").strip()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run(queue, "start", "alpha", "--lease", lease, "--pid", str(sleeper.pid))
        assert run_json(queue, "status", "alpha")["tasks"][0]["bucket"] == "active"
    finally:
        sleeper.kill()
        sleeper.wait()
    row = run_json(queue, "status", "alpha")["tasks"][0]
    assert row["bucket"] == "needs_attention" and [s["kind"] for s in row["signals"]] == ["worker_gone"]


def test_a_superseded_lease_exits_5_and_changes_nothing(queue: Path) -> None:
    run(queue, "claim", "alpha")
    run(queue, "start", "alpha", "--lease", "1")
    run(queue, "stop", "alpha", "--reason", "taking over")
    run(queue, "retry", "alpha")
    assert run(queue, "claim", "alpha").strip() == "2"
    before = registry_files(queue)
    for args in (
        ["heartbeat", "alpha"],
        ["start", "alpha"],
        ["finish", "alpha", "--exit-code", "0"],
        ["log", "alpha", "still here"],
        ["note", "alpha", "late note"],
    ):
        stderr = fail(queue, *args, code=5, env={"TASKFILES_LEASE": "1"})
        assert "lease 1 for 'alpha' was superseded by lease 2; this worker must stop" in stderr, args
    assert registry_files(queue) == before


def test_a_stopped_lease_exits_5_naming_the_reason(queue: Path) -> None:
    run(queue, "claim", "alpha")
    run(queue, "stop", "alpha", "--reason", "wrong approach")
    stderr = fail(queue, "heartbeat", "alpha", "--lease", "1", code=5)
    assert "the task is stopped (wrong approach); this worker must stop" in stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["heartbeat", "gamma", "--lease", "1"], 3, "'gamma' has no registry entry"),
        (["heartbeat", "alpha", "--lease", "7"], 2, "lease 7 for 'alpha' was never issued"),
        (["heartbeat", "alpha", "--lease", "1", "--cost-usd", "-1"], 2, "non-negative number of dollars"),
        (["progress", "alpha", "101"], 2, "whole percentage from 0 to 100"),
        (["blocker", "alpha"], 2, "give the blocker's text, or --clear"),
        (["log", "alpha", "x", "--level", "loud"], 2, "log level 'loud' is not one of"),
        (["events", "--since", "yesterday"], 2, "is not an ISO time"),
        (["logs", "alpha", "--attempt", "9"], 3, "attempt 9 of 'alpha' has no log"),
        (["release", "ghost"], 3, "no task with slug 'ghost'"),
        (["unpark", "alpha"], 4, "'alpha' is claimed, not parked"),
        (["stop", "gamma"], 3, "'gamma' was never claimed"),
    ],
)
def test_bad_runtime_input_is_a_clear_error(queue: Path, args: list[str], code: int, message: str) -> None:
    run(queue, "claim", "alpha")
    stderr = fail(queue, *args, code=code)
    assert message in stderr


# -- runtime facts and operators ---------------------------------------------------------------


def test_facts_are_events_with_the_actor_and_land_on_the_entry(queue: Path) -> None:
    env = {"TASKFILES_ACTOR": "agent-7"}
    run(queue, "claim", "alpha", env=env)
    run(queue, "note", "alpha", "reading the code", "--lease", "1", env=env)
    run(queue, "progress", "alpha", "40", "halfway", env=env)
    run(queue, "blocker", "alpha", "needs API credentials", env=env)
    blocked = run_json(queue, "show", "alpha")["entry"]
    assert blocked["blocker"] == "needs API credentials"
    assert run_json(queue, "status", "alpha")["tasks"][0]["detail"] == "blocked: needs API credentials"
    run(queue, "blocker", "alpha", "--clear", env=env)
    proof = ["--command", "make test", "--exit-code", "0", "--summary", "12 passed"]
    run(queue, "evidence", "alpha", *proof, env=env)
    run(queue, "artifact", "alpha", "https://example.invalid/pr/5", env=env)
    facts = [e for e in events(queue, "alpha") if e["type"] != "task.claimed"]
    assert [e["type"] for e in facts] == [
        "task.note",
        "task.progress",
        "task.blocker",
        "task.blocker",
        "task.evidence",
        "task.artifact",
    ]
    assert {e["actor"]["who"] for e in facts} == {"agent-7"}
    assert all(e["actor"]["pid"] > 0 and e["actor"]["host"] and e["lease"] == 1 for e in facts)
    assert facts[1]["details"] == {"percent": 40, "message": "halfway"}
    assert facts[3]["details"] == {"cleared": True}
    assert facts[4]["details"] == {"command": "make test", "exit_code": 0, "summary": "12 passed"}
    entry = run_json(queue, "show", "alpha")["entry"]
    assert (entry["progress"], entry["progress_percent"], entry["blocker"]) == ("halfway", 40, None)
    assert entry["evidence"][0]["command"] == "make test" and entry["evidence"][0]["who"] == "agent-7"
    assert entry["artifacts"] == ["https://example.invalid/pr/5"]


def test_stop_retry_park_unpark(queue: Path) -> None:
    run(queue, "claim", "alpha")
    stopped = run_json(queue, "stop", "alpha", "--reason", "wrong branch")
    assert (stopped["state"], stopped["stop_reason"]) == ("stopped", "wrong branch")
    row = run_json(queue, "status", "alpha")["tasks"][0]
    assert [row["bucket"], row["state"]] == ["needs_attention", "stopped"]
    assert [s["kind"] for s in row["signals"]] == ["stopped"]
    assert "run 'task retry alpha'" in fail(queue, "claim", "alpha", code=4)
    retried = run_json(queue, "retry", "alpha", "--fresh", "--reason", "start over")
    assert (retried["state"], retried["fresh"]) == ("retry_wait", True)
    assert run_json(queue, "status", "alpha")["tasks"][0]["state"] == "retry_due"
    assert run_json(queue, "claim", "alpha")["attempt"] == 2
    parked = run_json(queue, "park", "alpha", "--reason", "needs a design decision")
    assert parked["state"] == "parked"
    row = run_json(queue, "status", "alpha")["tasks"][0]
    assert row["signals"] == [
        {"kind": "parked", "reason": "needs a design decision", "since": parked["updated_at"]}
    ]
    assert "run 'task unpark alpha'" in fail(queue, "claim", "alpha", code=4)
    assert run_json(queue, "unpark", "alpha")["state"] == "retry_wait"
    assert run_json(queue, "claim", "alpha")["lease"] == 3
    retry_event = next(e for e in events(queue, "alpha") if e["type"] == "task.retry_scheduled")
    assert retry_event["details"]["fresh"] is True and retry_event["details"]["reason"] == "start over"


# -- logs and events ---------------------------------------------------------------------------


def test_log_and_logs_by_attempt_level_and_source(queue: Path) -> None:
    run(queue, "claim", "alpha")
    env = {"TASKFILES_LEASE": "1"}
    run(queue, "log", "alpha", "cloning", env=env)
    run(queue, "log", "alpha", "3 tests failed", "--level", "warning", "--source", "tests", env=env)
    run(queue, "log", "alpha", "crashed", "--level", "error", "--source", "agent", env=env)
    run(queue, "finish", "alpha", "--exit-code", "1", "--error", "tests failed", env=env)
    run(queue, "retry", "alpha")
    run(queue, "claim", "alpha")
    run(queue, "log", "alpha", "second try", "--lease", "2")
    assert run(queue, "logs", "alpha").splitlines()[0].endswith("info    agent    second try")
    first = run_json(queue, "logs", "alpha", "--attempt", "1")
    assert first["attempt"] == 1
    assert [r["message"] for r in first["records"]] == ["cloning", "3 tests failed", "crashed"]
    assert first["records"][0]["lease"] == 1 and first["records"][0]["who"]
    warnings = run_json(queue, "logs", "alpha", "--attempt", "1", "--level", "warning")
    assert [r["message"] for r in warnings["records"]] == ["3 tests failed", "crashed"]
    tests_only = run_json(queue, "logs", "alpha", "--attempt", "1", "--source", "tests")
    assert [r["level"] for r in tests_only["records"]] == ["warning"]
    assert (queue / "registry" / "logs" / "alpha" / "2.log").is_file()


def test_events_filter_by_slug_and_since_and_print_text(queue: Path) -> None:
    run(queue, "claim", "alpha")
    run(queue, "claim", "gamma")
    run(queue, "release", "alpha")
    every = events(queue)
    assert [(e["type"], e["slug"]) for e in every] == [
        ("task.claimed", "alpha"),
        ("task.claimed", "gamma"),
        ("task.released", "alpha"),
    ]
    assert {"time", "type", "slug", "lease", "actor", "details", "seq"} <= set(every[0])
    since = run_json(queue, "events", "--since", every[1]["time"])
    assert [e["type"] for e in since] == ["task.claimed", "task.released"]
    assert [e["slug"] for e in events(queue, "gamma")] == ["gamma"]
    text = run(queue, "events", "alpha").splitlines()
    assert len(text) == 2 and "task.released" in text[1] and "alpha lease=1 by " in text[1]


def test_malformed_event_lines_are_skipped_with_a_warning(queue: Path) -> None:
    run(queue, "claim", "alpha")
    with (queue / "registry" / "events.jsonl").open("a") as handle:
        handle.write("{not json\n")
    run(queue, "claim", "gamma")
    result = invoke(queue, "events", "--json")
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2
    assert result.stderr.startswith("warning: ") and "events.jsonl:2: not valid JSON" in result.stderr


def test_gc_prunes_released_entries_and_logs_and_never_reuses_a_lease(queue: Path) -> None:
    run(queue, "claim", "alpha")
    run(queue, "log", "alpha", "some output", "--lease", "1")
    for kind, name in (("prompts", "1.md"), ("workers", "1.out")):  # what the heartbeat left here
        (queue / "registry" / kind / "alpha").mkdir(parents=True)
        (queue / "registry" / kind / "alpha" / name).write_text("x\n")
    run(queue, "release", "alpha")
    run(queue, "claim", "gamma")
    report = run_json(queue, "gc", "--older-than", "0")
    assert report["entries_removed"] == ["alpha"]
    assert report["logs_removed"] == ["logs/alpha", "prompts/alpha", "workers/alpha"]
    assert report["log_bytes_removed"] > 0 and report["events_archived"] >= 3
    assert not any((queue / "registry" / kind / "alpha").exists() for kind in ("logs", "prompts", "workers"))
    assert "removed 0 released entries" in run(queue, "gc")
    assert run_json(queue, "claim", "alpha")["lease"] == 2
    assert run_json(queue, "heartbeat", "gamma", "--lease", "1")["state"] == "claimed"


# -- a corrupt registry ------------------------------------------------------------------------


def test_a_corrupt_registry_fails_clearly_and_repair_rebuilds_it(queue: Path) -> None:
    run(queue, "claim", "alpha")
    run(queue, "claim", "gamma")
    run(queue, "heartbeat", "alpha", "--lease", "1", "--note", "working")
    data = queue / "registry" / "registry.json"
    data.write_text('{"entries": {"alpha": ')
    for args in (
        ["heartbeat", "alpha", "--lease", "1"],
        ["claim", "gamma"],
        ["status"],
        ["events", "--json"],
    ):
        result = invoke(queue, *args)
        if args[0] == "events":  # the event log is its own file and still reads
            assert result.exit_code == 0
            continue
        assert result.exit_code == 6, args
        stderr = result.stderr
        assert str(data) in stderr and "registry.json.bak" in stderr and "task registry repair" in stderr
    assert data.read_text() == '{"entries": {"alpha": '  # never overwritten
    repaired = run(queue, "registry", "repair")
    assert "rebuilt 2 entries" in repaired and "registry.json.corrupt-" in repaired
    assert run_json(queue, "heartbeat", "alpha", "--lease", "1")["progress"] == "working"
    assert "'gamma' has a live claim (lease 1" in fail(queue, "claim", "gamma", code=4)
    assert "nothing to repair" in run(queue, "registry", "repair")
    assert list((queue / "registry").glob("registry.json.corrupt-*"))


# -- status ------------------------------------------------------------------------------------


def test_status_json_keys_buckets_and_filters(queue: Path) -> None:
    run(queue, "claim", "alpha", "--worker", "w1")
    run(queue, "start", "alpha", "--lease", "1")
    report = run_json(queue, "status")
    assert set(report) == REPORT_KEYS
    assert report["ref"] == "main" and report["registry_error"] is None
    assert report["cycle"]["generated_at"] is None and report["cycle"]["stale"] is True  # never ran
    assert report["capacity"] == {
        "max_parallel": 2,
        "live": 1,
        "free": 1,
        "max_parallel_per_host": None,
        "live_by_host": {Actor.current().host: 1},
    }
    assert report["hosts"] == []  # no cycle has run
    rows = {row["slug"]: row for row in report["tasks"]}
    assert all(set(row) >= ROW_KEYS for row in rows.values())
    expected = {
        "alpha": ("active", "running", 1),
        "beta": ("waiting", "waiting", None),
        "draft": ("backlog", "not_started", None),
        "gamma": ("ready", "ready", None),
        "legacy": ("needs_attention", "legacy_in_progress", None),
        "shipped": ("done", "completed", None),
    }
    assert {slug: (r["bucket"], r["state"], r["lease"]) for slug, r in rows.items()} == expected
    assert rows["beta"]["blocked_by"] == ["alpha"]
    assert rows["alpha"]["entry"]["worker"] == "w1"
    assert report["counts"] == {bucket: int(bucket != "review") for bucket in BUCKETS}
    assert report["attention"] == [
        {"slug": "legacy", "bucket": "needs_attention", "signals": rows["legacy"]["signals"]}
    ]
    assert [r["slug"] for r in run_json(queue, "status", "beta")["tasks"]] == ["beta"]
    assert [r["slug"] for r in run_json(queue, "status", "--owner", "bob")["tasks"]] == ["beta"]
    assert "no task or registry entry named 'ghost'" in fail(queue, "status", "ghost", code=3)


def test_status_reads_the_base_ref_unless_told_otherwise(queue: Path) -> None:
    write_task(queue, "draft.md", QUEUE["draft.md"].replace("not_started", "ready"))
    assert run_json(queue, "status", "draft")["tasks"][0]["bucket"] == "backlog"
    tree = run_json(queue, "status", "draft", "--working-tree")
    assert tree["ref"] is None and tree["tasks"][0]["bucket"] == "ready"


def test_status_shows_the_last_cycle_with_its_age_and_owner(queue: Path) -> None:
    registry = open_registry(config_module.load(queue))
    cycle = {
        "generated_at": "2000-01-01T00:00:00.000000Z",
        "owner": "heartbeat@ci",
        "duration_ms": 120,
        "host": "ci-1",
        "counts": {"ready": 1},
        "ready_since": {"gamma": "2000-01-01T00:00:00.000000Z"},
    }
    registry.write_cycle(CycleRecord.from_dict(cycle))
    report = run_json(queue, "status")
    assert report["cycle"]["owner"] == "heartbeat@ci" and report["cycle"]["duration_ms"] == 120
    assert report["cycle"]["age_seconds"] > 0
    gamma = next(r for r in report["tasks"] if r["slug"] == "gamma")
    assert [s["kind"] for s in gamma["signals"]] == ["pickup_overdue"]
    text = run(queue, "status")
    assert "last heartbeat cycle: 2000-01-01T00:00:00.000000Z" in text and "by heartbeat@ci" in text
    assert "gamma (needs_attention, ready)" in text and "pickup_overdue" in text


def test_status_counts_capacity_like_the_cycle_so_a_full_slot_is_not_pickup_overdue(queue: Path) -> None:
    (queue / "taskfiles.toml").write_text("[heartbeat]\nmax_parallel = 1\n", encoding="utf-8")
    open_registry(config_module.load(queue)).write_cycle(
        CycleRecord.from_dict(
            {
                "generated_at": "2000-01-01T00:00:00.000000Z",
                "ready_since": {"gamma": "2000-01-01T00:00:00.000000Z"},
            }
        )
    )
    gamma = run_json(queue, "status", "gamma")["tasks"][0]
    assert (gamma["bucket"], [s["kind"] for s in gamma["signals"]]) == ("needs_attention", ["pickup_overdue"])
    run(queue, "claim", "alpha", "--worker", "w1")  # the one slot is now busy: nothing can be dispatched
    gamma = run_json(queue, "status", "gamma")["tasks"][0]
    assert (gamma["bucket"], gamma["signals"]) == ("ready", [])


@pytest.mark.parametrize("value", ['"10m"', "-5", "true"])
def test_a_bad_limit_is_a_config_error_naming_the_key_and_a_good_value(queue: Path, value: str) -> None:
    (queue / "taskfiles.toml").write_text(f"[limits]\nstall_after_seconds = {value}\n", encoding="utf-8")
    stderr = fail(queue, "status", code=2)
    assert stderr.startswith("error: ") and "stall_after_seconds" in stderr
    assert "e.g. stall_after_seconds = 600" in stderr and "Traceback" not in stderr


def test_status_text_lists_attention_then_every_row(queue: Path) -> None:
    run(queue, "claim", "alpha")
    text = run(queue, "status")
    assert text.startswith("source: main   backlog 1  waiting 1  ready 1  active 1")
    assert "legacy_runtime_keys: runtime keys in frontmatter (claimed_by, status); run 'task migrate'" in text
    header = next(line for line in text.splitlines() if line.startswith("BUCKET"))
    assert header.split() == [
        "BUCKET",
        "STATE",
        "SLUG",
        "OWNER",
        "LEASE",
        "ATTEMPT",
        "FAILURES",
        "HOST",
        "DETAIL",
    ]


# -- next --claim, raced by real processes -----------------------------------------------------


def test_next_claim_picks_by_priority_and_skips_claimed_and_legacy(queue: Path) -> None:
    assert run(queue, "next", "--claim").strip() == "alpha\t1"
    assert run_json(queue, "next", "--claim")["slug"] == "gamma"
    assert run_json(queue, "next", "--claim") is None  # beta waits for alpha; legacy is claimed
    result = invoke(queue, "next", "--claim")
    assert result.exit_code == 0 and "no ready task" in result.stderr


def test_next_claim_records_the_tasks_owner_like_claim_does(queue: Path) -> None:
    claimed = run_json(queue, "next", "--claim")
    assert (claimed["slug"], claimed["owner"]) == ("alpha", "alice")
    assert run_json(queue, "claim", "gamma")["owner"] is None  # no owner in the file: none recorded
    assert run_json(queue, "show", "alpha")["entry"]["owner"] == "alice"


def test_next_claim_from_8_processes_never_hands_out_a_task_twice(repo: Path) -> None:
    for index in range(5):
        write_task(repo, f"t{index}.md", f"---\ntitle: T{index}\nstatus: ready\n---\n")
    commit_all(repo)
    task = Path(sys.executable).parent / "task"
    procs = [
        subprocess.Popen(
            [task, "next", "--claim", "--json"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "TASKFILES_WORKER": f"w{n}"},
        )
        for n in range(8)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    claims = [json.loads(out) for out, _ in outputs]
    won = [c for c in claims if c is not None]
    assert sorted(c["slug"] for c in won) == [f"t{i}" for i in range(5)]
    assert len({c["worker"] for c in won}) == 5 and all(c["lease"] == 1 for c in won)
    assert sum(1 for e in events(repo) if e["type"] == "task.claimed") == 5


# -- hand claims and the base ref ----------------------------------------------------------------


@pytest.mark.parametrize("claim", [["claim", "a"], ["next", "--claim"]])
def test_a_hand_claim_records_the_base_ref_blob_so_a_later_edit_is_root_task_edited(
    site: Site, claim: list[str]
) -> None:
    site.task("a")
    committed = git(site.root, "rev-parse", "main:tasks/a.md").strip()
    path = site.root / "tasks" / "a.md"
    path.write_text(path.read_text() + "\nAn edit not on main yet.\n")  # the working tree differs
    assert run_json(site.root, *claim)["slug"] == "a"
    assert site.entry("a").task_blob == committed  # main's blob, the one the heartbeat compares
    assert attention(site.cycle(dispatch=False)) == {}  # nothing changed on main yet
    commit_all(site.root, "edit a on main")
    assert attention(site.cycle(dispatch=False)) == {"a": {"root_task_edited"}}
    assert site.entry("a").state == "claimed"  # a signal for a human; the claim stands


def test_a_hand_claim_before_the_base_ref_exists_records_no_blob(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")  # nothing committed: no main
    assert run_json(repo, "claim", "a")["lease"] == 1
    assert open_registry(config_module.load(repo)).get("a").task_blob is None


def attention(result: CycleResult) -> dict[str, set[str]]:
    return {c.slug: {s.kind for s in c.signals} for c in result.attention}


@pytest.mark.parametrize(
    "command",
    [
        ["retry"],
        ["review", "--request-changes", "more tests"],
        ["stop"],
        ["park", "--reason", "hold"],
        ["unpark"],
        ["release"],
    ],
)
def test_an_operator_command_without_an_entry_says_unknown_task_or_never_claimed(
    queue: Path, command: list[str]
) -> None:
    name, *options = command
    unknown = fail(queue, name, "gama", *options, code=3)
    assert "no task with slug 'gama'" in unknown and "did you mean 'gamma'?" in unknown
    never = fail(queue, name, "draft", *options, code=3)
    assert "'draft' was never claimed" in never and "task ready draft" in never
