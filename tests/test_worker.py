"""The worker wrapper with real processes: output, environment, deadline, cost cap, leases, the lock."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from taskfiles import process
from taskfiles.dispatch import worker
from taskfiles.errors import ConflictError

from .conftest import wait_until
from .harness import Site, env_of

BIN = Path(sys.executable).parent


def test_agent_gets_taskfiles_env_and_a_prompt_outside_the_worktree(site: Site) -> None:
    site.plan({"a": ["ok"]})
    site.task("a", owner="core")
    site.cycle()
    entry = site.wait("a", "exited")
    env = env_of(site, "a", 1)
    worktree = Path(env["TASKFILES_WORKTREE"])
    assert (env["TASKFILES_SLUG"], env["TASKFILES_LEASE"], env["TASKFILES_BRANCH"]) == ("a", "1", "task/a")
    assert worktree == Path(entry.worktree or "") == site.root / ".worktrees" / "a"
    assert Path(env["TASKFILES_TASK_FILE"]) == worktree / "tasks" / "a.md"
    assert Path(env["TASKFILES_REGISTRY"]) == site.config.registry_dir
    assert Path(env["TASKFILES_REPO"]) == site.root and env["TASKFILES_ACTOR"]
    prompt = Path(env["TASKFILES_PROMPT_FILE"])
    assert prompt == site.config.registry_dir / "prompts" / "a" / "1.md"
    assert not prompt.is_relative_to(worktree)
    text = prompt.read_text()
    assert "# Task a" in text and "Do a." in text and "task complete a" in text


def test_agent_output_is_teed_into_the_attempt_log(site: Site) -> None:
    site.plan({"a": ["exit:1"]})
    site.task("a")
    site.cycle()
    entry = site.wait("a", "failed")
    page = site.registry().logs("a")
    lines = {(r.level, r.source, r.message) for r in page.records}
    assert ("info", "agent", "agent a attempt 1: exit:1") in lines
    assert ("warning", "agent", "failing with 1") in lines
    assert (entry.exit_code, entry.failure_class, entry.last_error) == (1, "exit_1", "failing with 1")


def test_deadline_kills_the_agent_process_group(site: Site) -> None:
    site.configure(worker_extra="deadline_seconds = 1")
    site.plan({"a": ["hang", "ok"]})
    site.task("a")
    site.cycle()
    started = site.wait_started("a")
    entry = site.wait("a", "failed")
    assert entry.failure_class == "deadline" and entry.last_error == "deadline of 1 s passed"
    wait_until(lambda: not process.session_members(started.pid or 0), 30, "the worker session to end")
    assert any(a.kind == "retry_scheduled" for a in site.cycle().actions)  # a deadline is retryable


def test_cost_cap_stops_the_agent_and_parks_the_task(site: Site) -> None:
    site.configure(heartbeat_seconds=0.2, worker_extra="cost_cap_usd = 1.0")
    site.plan({"a": ["cost:5"]})  # reports $5 through 'task heartbeat', then hangs
    site.task("a")
    site.cycle()
    started = site.wait_started("a")
    entry = site.wait("a", "parked")
    assert entry.failure_class == "cost_cap" and entry.total_cost_usd == 5.0
    assert "passed the cost cap $1.00" in (entry.parked_reason or "")
    wait_until(lambda: not process.session_members(started.pid or 0), 30, "the worker session to end")
    result = site.cycle()
    signals = [(s.kind, s.reason) for c in result.attention for s in c.signals]
    assert result.dispatched == () and signals == [("parked", entry.parked_reason)]


def test_retired_lease_makes_the_wrapper_kill_its_agent_and_exit(site: Site) -> None:
    site.configure(heartbeat_seconds=0.2)
    site.plan({"a": ["hang"]})
    site.task("a")
    site.cycle()
    started = site.wait_started("a")
    site.registry().stop("a", reason="operator says stop")
    wait_until(lambda: not process.session_members(started.pid or 0), 30, "the wrapper and agent to exit")
    entry = site.entry("a")
    assert (entry.state, entry.stop_reason) == ("stopped", "operator says stop")  # not overwritten


def test_second_wrapper_for_the_same_task_is_refused(site: Site) -> None:
    site.plan({"a": ["hang"]})
    site.task("a")
    site.cycle()
    first = site.wait_started("a")
    second = subprocess.run(
        [BIN / "task", "worker", "run", "a", "--lease", str(first.lease)],
        cwd=site.root,
        capture_output=True,
        text=True,
    )
    assert second.returncode == 4
    assert f"another worker for 'a' is running (pid {first.pid})" in second.stderr
    assert site.entry("a").state == "running" and site.entry("a").pid == first.pid
    with pytest.raises(ConflictError, match="one worker per task"):
        worker.run(site.config, site.registry(), "a", first.lease)


def test_a_wrapper_for_another_task_in_a_busy_worktree_is_refused_naming_its_task(site: Site) -> None:
    site.plan({"other": ["hang"], "third": ["ok"]})
    site.task("other")
    site.cycle()  # dispatches other into .worktrees/other: the first real 'task worker run'
    first = site.wait_started("other")
    site.task("third", status="ready")
    lease = site.registry().claim("third", worker="me").lease
    second = subprocess.run(
        [BIN / "task", "worker", "run", "third", "--lease", str(lease), "--worktree", ".worktrees/other"],
        cwd=site.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    place = site.root / ".worktrees" / "other"
    assert second.returncode == 4, second.stderr
    assert second.stderr.startswith(
        f"error: worktree {place} is in use by the worker of 'other' (pid {first.pid}); one worker per "
        "worktree: run 'third' in a worktree of its own (--worktree), or stop that one with 'task stop other'"
    )
    assert site.entry("third").state == "claimed"  # refused before it recorded a start
    assert site.entry("other").state == "running" and site.entry("other").pid == first.pid
    site.registry().stop("other", reason="make room")
    wait_until(lambda: not process.session_members(first.pid or 0), 30, "other's worker to exit")
    done = subprocess.run(
        [BIN / "task", "worker", "run", "third", "--lease", str(lease), "--worktree", ".worktrees/other"],
        cwd=site.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr  # the worktree is free again
    assert site.entry("third").worktree == str(place)


def test_wrapper_run_by_hand_records_its_own_start(site: Site) -> None:
    site.plan({"a": ["ok"]})
    site.task("a")
    lease = site.registry().claim("a", worker="me").lease
    done = subprocess.run(
        [BIN / "task", "worker", "run", "a", "--lease", str(lease)],
        cwd=site.root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "a: exited (exit 0)"
    entry = site.entry("a")
    assert entry.state == "exited" and entry.pid is not None and entry.started_at is not None
    assert (site.config.registry_dir / "prompts" / "a" / "1.md").is_file()  # rendered by the wrapper


def test_dispatched_wrapper_without_go_does_not_start(site: Site) -> None:
    site.task("a")
    lease = site.registry().claim("a", worker="heartbeat").lease
    result = worker.run(site.config, site.registry(), "a", lease, dispatched=True, go=io.BytesIO(b""))
    assert result.outcome == "not_started" and result.status != 0
    assert site.entry("a").state == "claimed"


def test_missing_agent_program_is_command_not_found(site: Site) -> None:
    toml = site.root / "taskfiles.toml"
    toml.write_text(
        toml.read_text().replace(f'command = ["{sys.executable}"', 'command = ["/nonexistent/agent"')
    )
    site.task("a")
    lease = site.registry().claim("a", worker="me").lease
    result = worker.run(site.config, site.registry(), "a", lease)
    assert (result.outcome, result.failure_class, result.exit_code) == ("failed", "command_not_found", 127)
    assert "cannot start '/nonexistent/agent'" in (site.entry("a").last_error or "")


def test_command_placeholders_fill_whole_arguments_only() -> None:
    job = worker.Job(
        "fix-it",
        3,
        1,
        Path("/w/t"),
        "task/fix-it",
        Path("/w/t/tasks/fix-it.md"),
        Path("/r/p.md"),
        Path("/r"),
        Path("/"),
    )
    template = ("agent", "--task={task_file}", "{prompt_file}", "{branch}", "print({'a': 1})", "{unknown}")
    argv = worker.command_for(template, job)
    assert argv == [
        "agent",
        "--task=/w/t/tasks/fix-it.md",
        "/r/p.md",
        "task/fix-it",
        "print({'a': 1})",
        "{unknown}",
    ]


def test_cost_cap_is_per_attempt_so_an_unparked_task_runs_again(site: Site) -> None:
    site.configure(heartbeat_seconds=0.2, worker_extra="cost_cap_usd = 1.0")
    site.plan({"a": ["cost:5", "cost:0.5"]})
    site.task("a")
    site.cycle()
    assert site.wait("a", "parked").total_cost_usd == 5.0
    site.registry().unpark("a")
    site.cycle()
    wait_until(lambda: site.entry("a").cost_usd == 0.5, 60, "the second attempt to report its cost")
    reported = site.entry("a")
    assert (reported.attempt, reported.total_cost_usd) == (2, 5.5)
    wait_until(
        lambda: (e := site.entry("a")).state != "running" or e.heartbeat_at != reported.heartbeat_at,
        60,
        "the wrapper's next heartbeat",
    )
    assert site.entry("a").state == "running"  # $0.50 this attempt is under the $1 cap


def test_a_registry_error_stops_the_agent_before_the_wrapper_ends(site: Site) -> None:
    site.configure(heartbeat_seconds=0.2)
    site.plan({"a": ["hang"]})
    site.task("a")
    site.cycle()
    started = site.wait_started("a")
    assert len(process.session_members(started.pid or 0)) >= 2  # the wrapper and its agent
    (site.config.registry_dir / "registry.json").write_text("{ not json")
    wait_until(lambda: not process.session_members(started.pid or 0), 30, "the wrapper and agent to exit")
    out = site.config.registry_dir / "workers" / "a" / "1.out"
    assert "registry.json" in out.read_text()  # the wrapper reported the registry error
