"""The heartbeat cycle end to end: real git repositories, real worker processes, a movable clock.

Each scenario of the dispatcher is one named test. Workers are the real wrapper
(``task worker run``) running a scripted agent (``harness.AGENT``); waits poll the
registry and never assert on time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskfiles import process
from taskfiles.dispatch import cycle as heartbeat
from taskfiles.dispatch.cycle import CycleResult
from taskfiles.errors import ConfigError
from taskfiles.registry.records import format_time, parse_time

from .conftest import commit_all, git, wait_until, write_task
from .harness import Site, tree_digest

BIN = Path(sys.executable).parent


def acted(result: CycleResult) -> set[tuple[str, str]]:
    return {(a.slug, a.kind) for a in result.actions}


def dispatched(result: CycleResult) -> list[str]:
    return [d.slug for d in result.dispatched if not d.error]


def attention(result: CycleResult) -> dict[str, set[str]]:
    return {c.slug: {s.kind for s in c.signals} for c in result.attention}


def gone(pid: int) -> bool:
    return not process.session_members(pid)


# -- failures and retries ----------------------------------------------------------------------


def test_worker_killed_with_sigkill_is_worker_gone_and_retried_after_backoff(site: Site) -> None:
    site.plan({"a": ["hang", "ok"]})
    site.task("a")
    assert dispatched(site.cycle()) == ["a"]
    first = site.wait_started("a")
    assert first.pid is not None and os.getsid(first.pid) == first.pid  # a session of its own
    os.kill(first.pid, signal.SIGKILL)  # the wrapper; its agent is left behind
    wait_until(lambda: not process.is_alive(first.pid or 0, first.pid_start_time), 30, "the wrapper to die")

    found = site.cycle()
    assert {("a", "worker_gone"), ("a", "retry_scheduled")} <= acted(found)
    entry = site.entry("a")
    assert (entry.state, entry.failure_class) == ("retry_wait", "worker_gone")
    wait_until(lambda: gone(first.pid or 0), 30, "the orphaned agent to be killed")

    assert dispatched(site.cycle()) == []  # still backing off
    site.clock.advance(101)
    assert dispatched(site.cycle()) == ["a"]
    assert site.wait("a", "exited").attempt == 2


def test_a_worker_gone_and_redispatched_in_one_cycle_is_active_in_its_record(site: Site) -> None:
    toml = site.root / "taskfiles.toml"
    toml.write_text(toml.read_text().replace("backoff_base_seconds = 100", "backoff_base_seconds = 0"))
    commit_all(site.root, "retry at once")
    site.plan({"a": ["hang", "hang"]})
    site.task("a")
    assert dispatched(site.cycle()) == ["a"]
    first = site.wait_started("a")
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    wait_until(lambda: not process.is_alive(first.pid or 0, first.pid_start_time), 30, "the wrapper to die")
    found = site.cycle()  # fails the dead attempt, the retry is due at once: dispatched again
    assert {("a", "worker_gone"), ("a", "retry_scheduled")} <= acted(found)
    assert dispatched(found) == ["a"]
    assert attention(found) == {} and found.counts["active"] == 1  # the new worker is not the dead one
    assert _record(site)["tasks"]["a"] == {"bucket": "active", "state": "running"}


def test_worker_hanging_without_heartbeats_is_stalled_killed_and_retried(site: Site) -> None:
    site.plan({"a": ["hang", "ok"]})
    site.task("a")
    site.cycle()
    first = site.wait_started("a")
    site.clock.advance(601)  # past stall_after_seconds since its last heartbeat

    found = site.cycle()
    assert {("a", "stalled"), ("a", "retry_scheduled")} <= acted(found)
    assert site.entry("a").failure_class == "stalled"
    wait_until(lambda: gone(first.pid or 0), 30, "the stalled worker's session to be killed")

    site.clock.advance(101)
    assert dispatched(site.cycle()) == ["a"]
    assert site.wait("a", "exited").attempt == 2


def test_same_failure_class_three_times_in_a_row_parks_the_task(site: Site) -> None:
    site.configure(max_attempts=5, circuit_breaker=3)
    site.plan({"a": ["exit:1"]})
    site.task("a")
    runs, last = [], None
    for _ in range(8):
        last = site.cycle()
        if dispatched(last):
            runs.append(site.wait("a", "failed").attempt)
        if site.entry("a").state == "parked":
            break
        site.clock.advance(1000)
    entry = site.entry("a")
    assert runs == [1, 2, 3]
    assert (entry.state, entry.failure_class, entry.failure_streak) == ("parked", "exit_1", 3)
    assert "circuit open: exit_1 3 times in a row" in (entry.parked_reason or "")
    assert last is not None and attention(last) == {"a": {"parked"}}


def test_non_retryable_exit_code_parks_at_once(site: Site) -> None:
    site.plan({"a": ["exit:3"]})  # exit_codes maps 3 to "usage", which is non_retryable
    site.task("a")
    site.cycle()
    site.wait("a", "failed")
    found = site.cycle()
    entry = site.entry("a")
    assert ("a", "parked") in acted(found)
    assert (entry.state, entry.attempt, entry.failure_class) == ("parked", 1, "usage")
    assert entry.parked_reason and entry.parked_reason.startswith("usage is not retryable")
    assert "failing with 3" in entry.parked_reason  # the agent's last stderr line


def test_failed_dispatch_records_dispatch_failed_and_retries(site: Site) -> None:
    site.plan({"a": ["ok"]})
    site.task("a")
    (site.root / ".worktrees" / "a").mkdir(parents=True)  # in the way, and not a worktree
    found = site.cycle()
    assert found.dispatched[0].error and "not a git worktree" in found.dispatched[0].error
    assert "dispatch_failed" in attention(found)["a"]
    assert site.entry("a").failure_class == "dispatch_failed"
    assert ("a", "retry_scheduled") in acted(site.cycle())
    (site.root / ".worktrees" / "a").rmdir()
    site.clock.advance(101)
    assert dispatched(site.cycle()) == ["a"]
    site.wait("a", "exited")


# -- finishing ---------------------------------------------------------------------------------


def test_exit_0_completed_in_branch_and_squash_merged_is_released(site: Site) -> None:
    site.plan({"a": ["complete"]})
    site.task("a")
    site.cycle()
    worktree = Path(site.wait("a", "exited").worktree or "")
    assert site.cycle().counts["review"] == 1  # exited 0, not merged yet

    site.merge("a")
    assert "status: completed" in (site.root / "tasks" / "a.md").read_text()
    done = site.cycle()
    assert {("a", "released"), ("a", "worktree_removed")} <= acted(done)
    assert done.counts["done"] == 1
    assert site.entry("a").state == "released"
    assert not worktree.exists()
    assert git(site.root, "branch", "--list", "task/a").strip()  # the branch stays


def test_exit_0_without_completion_record_is_exited_unreconciled_after_grace(site: Site) -> None:
    site.plan({"a": ["ok"]})
    site.task("a")
    site.cycle()
    site.wait("a", "exited")
    assert site.cycle().counts["review"] == 1
    site.clock.advance(3601)  # review_grace_seconds
    late = site.cycle()
    assert attention(late) == {"a": {"exited_unreconciled"}}
    snap = _record(site)
    assert snap["attention"][0]["slug"] == "a"
    [signal] = snap["attention"][0]["signals"]
    exited = parse_time(site.entry("a").finished_at or "")
    assert signal["kind"] == "exited_unreconciled"
    assert signal["since"] == format_time(exited + timedelta(seconds=3600))  # when the grace ran out


def _record(site: Site) -> dict[str, Any]:
    """The last cycle record, in its JSON form."""
    record = site.registry().read_cycle()
    assert record is not None
    return record.to_dict()


# -- routing and ordering ----------------------------------------------------------------------


def test_owner_alias_routing(site: Site) -> None:
    site.plan({})
    site.task("x", owner="bot")  # bot is an alias of agents
    site.task("y", owner="core")
    site.task("z", owner="dev")  # dev is an alias of core
    assert dispatched(site.cycle(owners=("agents",))) == ["x"]
    assert dispatched(site.cycle(owners=("dev",))) == ["y", "z"]
    assert {site.entry(s).owner for s in "xyz"} == {"agents", "core"}


def test_a_dispatch_from_the_cached_reading_without_bodies_prompts_with_the_task_body(site: Site) -> None:
    site.plan({"a": ["ok"]})
    site.task("a")
    site.cycle(dispatch=False)  # fills the ref cache: the next cycle reads the tasks without bodies
    assert dispatched(site.cycle()) == ["a"]
    prompt = site.config.registry_dir / "prompts" / "a" / "1.md"
    assert prompt.read_text(encoding="utf-8").rstrip().endswith("Do a.")


def test_dependency_chain_a_b_c_is_dispatched_in_order(site: Site) -> None:
    site.plan({"a": ["complete"], "b": ["complete"], "c": ["complete"]})
    site.task("a")
    site.task("b", deps=["a"])
    site.task("c", deps=["b"])
    order = []
    for slug in "abc":
        result = site.cycle()
        order += dispatched(result)
        site.wait(slug, "exited")
        site.merge(slug)
    assert order == ["a", "b", "c"]
    assert site.cycle().counts["done"] == 3


def test_max_parallel_caps_live_workers(site: Site) -> None:
    site.plan({"a": ["hang"], "b": ["hang"], "c": ["hang"]})
    for slug in "abc":
        site.task(slug)
    assert dispatched(site.cycle(max_parallel=2)) == ["a", "b"]
    assert dispatched(site.cycle(max_parallel=2)) == []
    assert site.cycle(max_parallel=2, dispatch=False).counts["active"] == 2


# -- durable state changing under a running task -----------------------------------------------


def test_task_file_edited_on_main_mid_flight_is_root_task_edited(site: Site) -> None:
    site.plan({"a": ["hang"]})
    site.task("a")
    site.cycle()
    site.wait_started("a")
    path = site.root / "tasks" / "a.md"
    path.write_text(path.read_text() + "\nScope changed.\n")
    commit_all(site.root, "edit a on main")
    found = site.cycle()
    assert attention(found) == {"a": {"root_task_edited"}}
    assert site.entry("a").state == "running"  # a signal for a human, not a reason to kill
    edit, landed = git(site.root, "log", "-1", "--format=%H %ct").split()
    [signal] = found.attention[0].signals
    assert signal.since == format_time(datetime.fromtimestamp(int(landed), UTC))  # not the dispatch
    assert edit[:12] in signal.reason


def test_deleted_task_is_registry_orphan_and_pruned_after_grace(site: Site) -> None:
    site.plan({"a": ["ok"]})
    site.task("a")
    site.task("keep", status="not_started")
    site.cycle()
    worktree = Path(site.wait("a", "exited").worktree or "")
    git(site.root, "rm", "-q", "tasks/a.md")
    commit_all(site.root, "drop a")
    found = site.cycle()
    assert attention(found) == {"a": {"registry_orphan"}}
    assert "a" in _record(site)["orphan_since"]
    site.clock.advance(150)
    assert site.cycle().actions == ()  # still within orphan_grace_seconds (300)
    site.clock.advance(151)
    pruned = site.cycle()
    assert {("a", "pruned"), ("a", "worktree_removed")} <= acted(pruned)
    assert site.registry().find("a") is None
    assert not worktree.exists()
    assert attention(pruned) == {}


def test_pickup_overdue_when_ready_with_free_capacity_and_not_dispatched(site: Site) -> None:
    site.plan({"a": ["ok"]})
    site.task("a")
    first = site.cycle(dispatch=False)
    assert attention(first) == {}
    since = _record(site)["ready_since"]["a"]
    site.clock.advance(901)
    late = site.cycle(dispatch=False)
    assert attention(late) == {"a": {"pickup_overdue"}}
    assert _record(site)["ready_since"]["a"] == since  # carried over
    assert dispatched(site.cycle()) == ["a"]  # the signal does not hold it back
    site.wait("a", "exited")


# -- the cycle itself --------------------------------------------------------------------------


def test_dry_run_changes_nothing(site: Site) -> None:
    site.task("a")
    result = site.cycle(dry_run=True)
    assert result.would_dispatch == ("a",) and result.dispatched == ()
    registry = site.registry()
    assert registry.entries() == {} and registry.read_cycle() is None
    assert not (site.root / ".worktrees").exists()


def test_without_an_agent_command_dispatch_is_a_config_error(site: Site) -> None:
    text = (site.root / "taskfiles.toml").read_text().replace("command = ", "# command = ")
    (site.root / "taskfiles.toml").write_text(text)
    site.task("a")
    with pytest.raises(ConfigError, match=r"\[worker\] command is not set"):
        site.cycle()
    assert site.cycle(dispatch=False).counts["ready"] == 1


def test_snapshot_holds_owner_counts_states_and_ready_since(site: Site) -> None:
    site.task("a", owner="core")
    site.task("b", deps=["a"])
    result = site.cycle(dispatch=False)
    snap = _record(site)
    assert snap["generated_at"] == result.generated_at and snap["duration_ms"] >= 0
    assert snap["owner"].endswith("@" + snap["host"])
    assert snap["counts"]["ready"] == 1 and snap["counts"]["waiting"] == 1
    assert snap["tasks"]["a"] == {"bucket": "ready", "state": "ready"}
    assert snap["tasks"]["b"]["bucket"] == "waiting"
    assert set(snap["ready_since"]) == {"a"}


def test_duration_counts_building_and_writing_the_cycle_record(site: Site) -> None:
    """A timer that moves on once snapshot.json is on disk: the duration the cycle reports
    is read after the write; the one it records, just before the write (once the record is
    built and encoded: it cannot count its own storing)."""
    site.task("a")
    snapshot = site.config.registry_dir / "snapshot.json"
    readings: list[float] = []

    def timer() -> float:  # seconds: 0 at the start, 5 until the record is written, then 9
        readings.append(0.0 if not readings else 9.0 if snapshot.exists() else 5.0)
        return readings[-1]

    result = heartbeat.run_cycle(
        site.config, heartbeat.CycleOptions(dispatch=False), clock=site.clock, timer=timer
    )
    assert readings == [0.0, 5.0, 9.0]
    assert result.duration_ms == 9000.0
    assert _record(site)["duration_ms"] == json.loads(snapshot.read_text())["duration_ms"] == 5000.0


def test_unreadable_task_files_are_counted_in_the_cycle_line_and_listed_in_its_record(site: Site) -> None:
    site.task("a")
    broken = ["tasks/ops/x.md", "tasks/y.md", "tasks/z.md"]
    for path in broken:
        (site.root / path).parent.mkdir(parents=True, exist_ok=True)
        (site.root / path).write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    commit_all(site.root, "three broken files")
    line = subprocess.run(
        [BIN / "task-manager-heartbeat", "-C", str(site.root), "--no-dispatch"],
        capture_output=True,
        text=True,
    )
    assert line.returncode == 0, line.stderr
    assert "; skipped 3 unreadable task file(s) ('task validate') (" in line.stdout
    assert _record(site)["skipped"] == broken
    report = subprocess.run(
        [BIN / "task-manager-heartbeat", "-C", str(site.root), "--no-dispatch", "--json"],
        capture_output=True,
        text=True,
    )
    assert json.loads(report.stdout)["skipped"] == broken


HOLD_LOCK = """
import sys
from pathlib import Path
from taskfiles.dispatch.hostfiles import HostFiles
with HostFiles(Path(sys.argv[1])).cycle_lock() as holder:
    assert holder is None
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_two_cycles_at_once_one_runs_and_the_other_exits_0_saying_so(site: Site) -> None:
    site.task("a")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(site.config.registry_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        skipped = subprocess.run(
            [BIN / "task-manager-heartbeat", "--no-dispatch"], cwd=site.root, capture_output=True, text=True
        )
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout.strip() == f"another cycle is running (pid {holder.pid}); skipped"
    # Two real cycles started together: both exit 0, whichever order they ran in.
    both = [
        subprocess.Popen(
            [BIN / "task", "heartbeat-cycle", "--no-dispatch"],
            cwd=site.root,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate()[0] for p in both]
    assert [p.returncode for p in both] == [0, 0]
    assert all(o.startswith(("cycle ", "another cycle is running")) for o in outputs)


def test_cli_prints_one_summary_line_or_json(site: Site) -> None:
    site.task("a")
    text = subprocess.run(
        [BIN / "task-manager-heartbeat", "-C", str(site.root), "--dry-run"], capture_output=True, text=True
    )
    assert text.returncode == 0, text.stderr
    assert len(text.stdout.splitlines()) == 1 and "would dispatch a" in text.stdout
    done = subprocess.run(
        [BIN / "task", "heartbeat-cycle", "--no-dispatch", "--json"],
        cwd=site.root,
        capture_output=True,
        text=True,
    )
    report = json.loads(done.stdout)
    assert report["ran"] is True and report["counts"]["ready"] == 1
    bad = subprocess.run(
        [BIN / "task-manager-heartbeat", "--max-parallel", "0"], cwd=site.root, capture_output=True
    )
    assert bad.returncode == 2


# -- the invariant -----------------------------------------------------------------------------


def test_twenty_cycles_leave_the_main_worktree_clean_and_tasks_byte_identical(site: Site) -> None:
    site.configure(max_parallel=3)
    site.plan(
        {
            "ok": ["complete"],
            "flaky": ["exit:1", "complete"],
            "hangs": ["hang"],
            "bad": ["exit:3"],
            "edited": ["hang"],
            "doomed": ["ok"],
            "first": ["complete"],
            "second": ["complete"],
        }
    )
    for slug in ("ok", "flaky", "hangs", "bad", "edited", "doomed", "first"):
        site.task(slug, owner="bot" if slug == "edited" else None)
    site.task("second", deps=["first"])
    merged: set[str] = set()
    for number in range(20):
        before = tree_digest(site.root / "tasks")
        result = site.cycle()
        assert tree_digest(site.root / "tasks") == before, f"cycle {number} wrote under tasks/"
        assert git(site.root, "status", "--porcelain") == "", f"cycle {number} left the worktree dirty"
        for launched in result.dispatched:
            if launched.error is None and launched.slug not in ("hangs", "edited"):
                site.wait(launched.slug, "exited", "failed")
        _land_and_disturb(site, number, merged)
        site.clock.advance(120)
    assert merged == {"ok", "flaky", "first", "second"}
    assert git(site.root, "status", "--porcelain") == ""
    head = git(site.root, "ls-tree", "-r", "HEAD", "--", "tasks").splitlines()
    assert {line.split("\t")[1] for line in head} == {
        f"tasks/{p.name}" for p in (site.root / "tasks").iterdir()
    }
    final = site.cycle()
    assert final.counts["done"] == 4
    assert {"bad", "hangs"} <= set(attention(final))


def _land_and_disturb(site: Site, number: int, merged: set[str]) -> None:
    """What people do between cycles: merge finished branches, edit and delete task files."""
    registry = site.registry()
    for slug, entry in registry.entries().items():
        if entry.state == "exited" and slug not in merged and slug != "doomed":
            site.merge(slug)
            merged.add(slug)
    if number == 2:
        write_task(site.root, "edited.md", "---\ntitle: Edited\nstatus: ready\nowner: bot\n---\n\nMore.\n")
        commit_all(site.root, "edit a running task on main")
    if number == 3:
        git(site.root, "rm", "-q", "tasks/doomed.md")
        commit_all(site.root, "drop doomed")


def test_loop_runs_a_cycle_every_interval_and_survives_a_failed_cycle(site: Site) -> None:
    from taskfiles.dispatch import cycle as heartbeat

    site.task("a")
    pauses: list[float] = []
    no_dispatch = heartbeat.CycleOptions(dispatch=False)
    results = list(
        heartbeat.loop(site.config, no_dispatch, 5, clock=site.clock, sleep=pauses.append, cycles=3)
    )
    assert [r.ran for r in results if isinstance(r, CycleResult)] == [True, True, True]
    assert len(pauses) == 2 and all(0 <= p <= 5 for p in pauses)
    toml = site.root / "taskfiles.toml"
    toml.write_text(toml.read_text().replace("command = ", "# command = "))
    outcomes = list(heartbeat.loop(site.config, heartbeat.CycleOptions(), 5, sleep=pauses.append, cycles=2))
    assert [type(o).__name__ for o in outcomes] == ["ConfigError", "ConfigError"]


def test_loop_0_pauses_for_the_configured_interval(site: Site) -> None:
    from taskfiles.dispatch import cycle as heartbeat

    toml = site.root / "taskfiles.toml"
    toml.write_text(toml.read_text().replace("[heartbeat]\n", "[heartbeat]\ninterval_seconds = 600\n"))
    pauses: list[float] = []
    options = heartbeat.CycleOptions(dispatch=False)
    list(heartbeat.loop(site.config, options, 0, clock=site.clock, sleep=pauses.append, cycles=2))
    assert len(pauses) == 1 and 300 < pauses[0] <= 600
    help_text = subprocess.run(
        [BIN / "task-manager-heartbeat", "--help"], cwd=site.root, capture_output=True, text=True
    ).stdout
    assert "0: every [heartbeat] interval_seconds" in " ".join(help_text.split())
