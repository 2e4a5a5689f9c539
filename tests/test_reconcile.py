"""Reconciliation rules without agents: the retry policy, the circuit breaker's count,
pruning, dry runs, other hosts' workers, and the settings that drive them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskfiles import config as tconfig
from taskfiles import process
from taskfiles.config import HeartbeatSettings, WorkerSettings
from taskfiles.dispatch import cycle, reconcile
from taskfiles.dispatch.scene import Scene, dispatcher_worker
from taskfiles.errors import ConfigError, ConflictError
from taskfiles.plan import source as tasksource
from taskfiles.plan.source import TaskSet
from taskfiles.registry import CycleRecord, Registry, open_registry
from taskfiles.registry.records import Actor, RegistryEntry, format_time
from taskfiles.status import Observation, Source, classify

from .conftest import ManualClock, commit_all, write_task
from .harness import make_site

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
WORKER = WorkerSettings(non_retryable=frozenset({"usage"}))
HEARTBEAT = HeartbeatSettings(
    backoff_base_seconds=60, backoff_max_seconds=600, backoff_jitter=0.5, circuit_breaker=3
)


def failed(cls: str = "exit_1", failures: int = 1, streak: int = 1, max_attempts: int = 5) -> RegistryEntry:
    return RegistryEntry(
        "fix-it",
        "failed",
        lease=failures,
        attempt=failures,
        max_attempts=max_attempts,
        failure_class=cls,
        last_error="boom",
        consecutive_failures=failures,
        failure_streak=streak,
    )


@pytest.mark.parametrize(
    ("entry", "park", "reason"),
    [
        (failed(), False, "exit_1: boom"),
        (failed("usage"), True, "usage is not retryable: boom"),
        (failed(streak=3, failures=3), True, "circuit open: exit_1 3 times in a row (boom)"),
        (failed(streak=1, failures=3, max_attempts=3), True, "retries exhausted: 3 failed attempts (boom)"),
        (failed(streak=2, failures=4), False, "exit_1: boom"),  # classes alternated: no circuit
    ],
)
def test_decide_retries_or_parks(entry: RegistryEntry, park: bool, reason: str) -> None:
    decision = reconcile.decide(entry, WORKER, HEARTBEAT, NOW)
    assert (decision.park, decision.reason) == (park, reason)
    assert (decision.at is None) == park


def test_backoff_doubles_is_capped_and_its_jitter_is_stable() -> None:
    plain = replace(HEARTBEAT, backoff_jitter=0)
    assert [reconcile.backoff_seconds(n, "x", n, plain) for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]
    jittered = [reconcile.backoff_seconds(2, f"task-{i}", 2, HEARTBEAT) for i in range(50)]
    assert all(120 <= s < 180 for s in jittered) and len(set(jittered)) > 40  # spread across tasks
    assert reconcile.backoff_seconds(2, "x", 2, HEARTBEAT) == reconcile.backoff_seconds(2, "x", 2, HEARTBEAT)
    decision = reconcile.decide(failed(failures=2, streak=1), WORKER, plain, NOW)
    assert decision.at == NOW + timedelta(seconds=120)


def test_failure_streak_counts_the_same_class_in_a_row(tmp_path: Path) -> None:
    reg = open_registry(tconfig.load(tmp_path), clock=lambda: NOW)

    def attempt(cls: str) -> RegistryEntry:
        lease = reg.claim("a", worker="w").lease
        entry = reg.fail("a", lease, failure_class=cls, error="x")
        reg.schedule_retry("a", at=NOW)
        return entry

    assert [attempt(c).failure_streak for c in ("stalled", "stalled", "exit_1", "exit_1")] == [1, 2, 1, 2]
    assert reg.get("a").consecutive_failures == 4
    reg.park("a", reason="look")
    assert reg.unpark("a").failure_streak == 0
    lease = reg.claim("a", worker="w").lease
    assert reg.finish("a", lease, 0).failure_streak == 0


def test_prune_removes_an_entry_but_keeps_its_lease_history(tmp_path: Path) -> None:
    reg = open_registry(tconfig.load(tmp_path), clock=lambda: NOW)
    lease = reg.claim("a", worker="w").lease
    with pytest.raises(ConflictError, match="task stop a"):
        reg.prune("a", reason="gone")
    reg.finish("a", lease, 0)
    assert reg.prune("a", reason="gone").state == "exited"
    assert reg.find("a") is None
    assert reg.events("a").events[-1].type == "task.pruned"
    assert reg.claim("a", worker="w").lease == lease + 1  # never reused


def _scene(root: Path, registry: Registry, *, dry_run: bool) -> Scene:
    return Scene(tconfig.load(root), registry, NOW, process.host_identity(), dry_run)


def _seen(
    scene: Scene, tasks: TaskSet, entries: Mapping[str, RegistryEntry], orphans: dict[str, str]
) -> Observation:
    """What the cycle observed: ``entries`` read before, the last record's orphan memory."""
    record = CycleRecord(generated_at=format_time(NOW), orphan_since=orphans)
    return classify(scene.config, Source(tasks, "main"), entries, record, now=scene.now)


def test_dry_run_reports_a_dead_worker_and_changes_nothing(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.task("a")
    registry = open_registry(site.config, clock=lambda: NOW)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lease = registry.claim("a", worker="w").lease
    registry.start("a", lease, pid=dead.pid, pid_start_time=1)
    before = registry.get("a")
    tasks = tasksource.load(site.config, "main")
    result = reconcile.reconcile(
        _scene(site.root, registry, dry_run=True),
        _seen(_scene(site.root, registry, dry_run=True), tasks, registry.entries(), {}),
    )
    assert [(a.kind, a.slug) for a in result.actions] == [("worker_gone", "a")]
    assert registry.get("a") == before
    result = reconcile.reconcile(
        _scene(site.root, registry, dry_run=False),
        _seen(_scene(site.root, registry, dry_run=False), tasks, registry.entries(), {}),
    )
    assert [a.kind for a in result.actions] == ["worker_gone", "retry_scheduled"]
    assert registry.get("a").state == "retry_wait"


def test_a_worker_on_another_host_is_judged_by_heartbeat_only(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.task("a")
    elsewhere = Actor("bot", "other-host", 1)
    registry = open_registry(site.config, clock=lambda: NOW, actor=elsewhere)
    lease = registry.claim("a", worker="w").lease
    registry.start("a", lease, pid=999_999_999, pid_start_time=1)  # no such pid here: not ours to judge
    tasks = tasksource.load(site.config, "main")
    here = open_registry(site.config, clock=lambda: NOW)
    assert (
        reconcile.reconcile(
            _scene(site.root, here, dry_run=False),
            _seen(_scene(site.root, here, dry_run=False), tasks, here.entries(), {}),
        ).actions
        == ()
    )
    later = open_registry(site.config, clock=lambda: NOW + timedelta(hours=1))
    scene = replace(_scene(site.root, later, dry_run=False), now=NOW + timedelta(hours=1))
    assert [a.kind for a in reconcile.reconcile(scene, _seen(scene, tasks, later.entries(), {})).actions] == [
        "stalled",
        "retry_scheduled",
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[worker]\ncommand = "claude -p {prompt_file}"',
            "command must be an argument list, not a shell string",
        ),
        ("[worker]\nmax_attempts = 0", "max_attempts must be a whole number of at least 1"),
        ("[worker]\nheartbeat_seconds = 0", "heartbeat_seconds must be greater than 0"),
        ('[worker]\nexit_codes = { "x" = "usage" }', "exit_codes must map exit codes to failure classes"),
        ("[worker]\nnon_retryable = 'usage'", "non_retryable must be a list of failure classes"),
        ("[heartbeat]\nbackoff_base_seconds = -1", "backoff_base_seconds must be 0 or more"),
        ("[heartbeat]\nremove_worktree_on_done = 'yes'", "remove_worktree_on_done must be true or false"),
        ("[heartbeat]\nworktrees_dir = '../out'", "worktrees_dir must be a folder inside the repository"),
        ("[limits]\nstall_after_seconds = 'soon'", "[limits] stall_after_seconds must be a number"),
        (
            "[limits]\nstall_after_seconds = inf",
            "stall_after_seconds must be a number of seconds, 0 or more, not inf",
        ),
        ("[heartbeat]\nbackoff_jitter = nan", "backoff_jitter must be a finite number, not nan"),
    ],
)
def test_bad_dispatch_settings_are_config_errors(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "taskfiles.toml").write_text(toml + "\n")
    cfg = tconfig.load(tmp_path)
    with pytest.raises(ConfigError) as caught:
        _ = cfg.worker, cfg.heartbeat, cfg.limits
    assert message in str(caught.value) and "taskfiles.toml" in str(caught.value)


def test_dispatch_settings_defaults_and_exit_code_classes(tmp_path: Path) -> None:
    (tmp_path / "taskfiles.toml").write_text(
        '[worker]\ncommand = ["agent", "{prompt_file}"]\n'
        'exit_codes = { "75" = "transient" }\ndeadline_seconds = 0\n'
    )
    cfg = tconfig.load(tmp_path)
    assert cfg.worker.command == ("agent", "{prompt_file}") and cfg.worker.deadline_seconds is None
    assert [cfg.worker.failure_class(c) for c in (75, 2, -9)] == ["transient", "exit_2", "signal_9"]
    assert cfg.heartbeat == HeartbeatSettings()


SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.mark.parametrize(
    ("dispatched", "own_session", "killed"),
    [
        (False, True, False),  # `task start --pid $$` in a terminal: the user's session
        (True, False, False),  # the dispatcher's claim, but the pid leads no session of its own
        (True, True, True),  # the wrapper the dispatcher started in a new session
    ],
)
def test_only_workers_the_dispatcher_started_are_killed(
    tmp_path: Path, dispatched: bool, own_session: bool, killed: bool
) -> None:
    site = make_site(tmp_path)
    site.task("a")
    registry = open_registry(site.config, clock=lambda: NOW)
    worker = dispatcher_worker(process.host_identity()) if dispatched else "me"
    stalled = subprocess.Popen(SLEEPER, start_new_session=own_session)
    try:
        lease = registry.claim("a", worker=worker).lease
        registry.start("a", lease, pid=stalled.pid, pid_start_time=process.pid_start_time(stalled.pid))
        later = open_registry(site.config, clock=lambda: NOW + timedelta(hours=1))
        scene = replace(_scene(site.root, later, dry_run=False), now=NOW + timedelta(hours=1))
        tasks = tasksource.load(site.config, "main")
        result = reconcile.reconcile(scene, _seen(scene, tasks, later.entries(), {}))
        assert [a.kind for a in result.actions] == ["stalled", "retry_scheduled"]
        assert later.get("a").state == "retry_wait"
        if killed:
            stalled.wait(timeout=30)
        assert process.is_alive(stalled.pid) is not killed
    finally:
        stalled.kill()
        stalled.wait()


def test_a_dead_worker_of_an_unreadable_task_file_frees_its_slot_but_is_not_pruned(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    write_task(site.root, "a.md", "---\ntitle: [unclosed\nstatus: ready\n---\n\nBroken.\n")
    commit_all(site.root, "break a")
    tasks = tasksource.load(site.config, "main")
    assert tasks.get("a") is None and tasks.skipped == ("tasks/a.md",)
    registry = open_registry(site.config, clock=lambda: NOW)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lease = registry.claim("a", worker="w").lease
    registry.start("a", lease, pid=dead.pid, pid_start_time=1)
    scene = replace(_scene(site.root, registry, dry_run=False), now=NOW + timedelta(days=1))
    result = reconcile.reconcile(scene, _seen(scene, tasks, registry.entries(), {"a": format_time(NOW)}))
    assert [a.kind for a in result.actions] == ["worker_gone", "retry_scheduled"]
    assert registry.get("a").state == "retry_wait" and result.orphan_since == {}


def test_releasing_an_entry_pruned_meanwhile_is_a_warning(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.task("a", status="completed")
    registry = open_registry(site.config, clock=lambda: NOW)
    registry.finish("a", registry.claim("a", worker="w").lease, 0)
    entries = registry.entries()  # read by the cycle, then another process prunes the entry
    registry.prune("a", reason="gone")
    tasks = tasksource.load(site.config, "main")
    result = reconcile.reconcile(
        _scene(site.root, registry, dry_run=False),
        _seen(_scene(site.root, registry, dry_run=False), tasks, entries, {}),
    )
    assert [a.kind for a in result.actions] == ["released"]
    assert len(result.warnings) == 1 and result.warnings[0].startswith("a: ")


def test_a_live_worker_is_killed_when_its_task_is_completed_on_the_base_ref(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    site.task("a")
    registry = open_registry(site.config, clock=lambda: NOW)
    worker = subprocess.Popen(SLEEPER, start_new_session=True)  # as the dispatcher starts a wrapper
    try:
        lease = registry.claim("a", worker=dispatcher_worker(process.host_identity())).lease
        registry.start("a", lease, pid=worker.pid, pid_start_time=process.pid_start_time(worker.pid))
        site.task("a", status="completed")  # someone landed it by hand while the worker ran
        scene = _scene(site.root, registry, dry_run=False)
        tasks = tasksource.load(site.config, "main")
        result = reconcile.reconcile(scene, _seen(scene, tasks, registry.entries(), {}))
        assert [a.kind for a in result.actions] == ["released"]
        assert registry.get("a").state == "released"
        worker.wait(timeout=30)  # killed: a released lease must not keep an agent working
        assert not process.is_alive(worker.pid)
    finally:
        worker.kill()
        worker.wait()


def test_a_task_parked_by_the_circuit_breaker_after_worker_gone_says_both(
    repo: Path, clock: ManualClock
) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    commit_all(repo)
    config = tconfig.load(repo)
    registry = open_registry(config, clock=clock)
    options = cycle.CycleOptions(dispatch=False)
    for _ in range(3):  # circuit_breaker = 3: the third worker_gone in a row parks
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        registry.start("a", registry.claim("a", worker="w").lease, pid=dead.pid, pid_start_time=1)
        started = format_time(clock())
        clock.advance(seconds=30)
        result = cycle.run_cycle(config, options, clock=clock, registry=registry)
        clock.advance(hours=2)  # past any backoff
    parked_at = format_time(clock.now - timedelta(hours=2))
    assert [a.kind for a in result.actions] == ["worker_gone", "parked"]
    [row] = result.attention
    gone, parked = row.signals
    assert (gone.kind, gone.since, parked.kind, parked.since) == ("worker_gone", started, "parked", parked_at)
    assert gone.reason == f"worker pid {dead.pid} is gone without an exit record"
    assert parked.reason.startswith("circuit open: worker_gone 3 times in a row")
    record = registry.read_cycle()
    assert record is not None
    kinds = [(s["kind"], s["since"]) for s in record.attention[0]["signals"]]
    assert kinds == [("worker_gone", started), ("parked", parked_at)]
