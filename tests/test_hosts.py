"""Several dispatch hosts on one registry, played by host identities (``TASKFILES_HOST``) on
one registry folder: which host probes and kills which pid, capacity across hosts, fetching
the base ref before a cycle reads it, and each host's last cycle in ``task status`` and on
the page. The PostgreSQL store, which keeps one cycle record a host, shows them all.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from taskfiles import config as tconfig
from taskfiles import process
from taskfiles.cli import app
from taskfiles.cli.dispatch import summary
from taskfiles.config import REGISTRY_URL_ENV, Config
from taskfiles.dispatch import launch
from taskfiles.dispatch.cycle import CycleResult
from taskfiles.dispatch.scene import Scene, dispatcher_worker
from taskfiles.errors import ConfigError
from taskfiles.process import HOST_ENV
from taskfiles.registry import Actor, CycleRecord, RegistryEntry, open_registry
from taskfiles.registry.records import format_time
from taskfiles.serve import create_app
from taskfiles.status import Capacity, Source, classify, dead_workers, observe, planning_source

from .conftest import ManualClock, StoreFactory, commit_all, git, wait_until, write_task
from .harness import Site, env_of

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
runner = CliRunner()


def no_such_pid() -> int:
    """A pid no process has on this machine: past the kernel's highest (Linux: at most 2**22,
    /proc/sys/kernel/pid_max; macOS: 99,998)."""
    return 2**22 + 1


def acted(result: CycleResult) -> set[tuple[str, str]]:
    return {(a.slug, a.kind) for a in result.actions}


def dispatched(result: CycleResult) -> list[str]:
    return [d.slug for d in result.dispatched if not d.error]


def status_json(root: Path) -> Any:
    result = runner.invoke(app, ["-C", str(root), "status", "--json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def set_heartbeat(site: Site, **settings: object) -> None:
    """Add settings to ``[heartbeat]`` of the site's taskfiles.toml (and commit it)."""
    path = site.root / "taskfiles.toml"
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    path.write_text(path.read_text().replace("[heartbeat]\n", "[heartbeat]\n" + lines), encoding="utf-8")
    commit_all(site.root, "heartbeat settings")


# -- host identity ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("box-a", "box-a"), ("  box-b \n", "box-b"), ("", None)])
def test_host_identity_is_TASKFILES_HOST_else_the_host_name(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
) -> None:
    monkeypatch.setenv(HOST_ENV, value)
    assert process.host_identity() == (expected or socket.gethostname())
    assert Actor.current().host == process.host_identity()
    monkeypatch.delenv(HOST_ENV)
    assert process.host_identity() == socket.gethostname()


def test_a_dispatched_worker_and_its_agent_write_as_the_host_that_claimed(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOST_ENV, "box-a")
    site.plan({"x": ["hang"]})
    site.task("x")
    assert dispatched(site.cycle()) == ["x"]
    entry = site.wait_started("x")
    assert (entry.host, entry.worker) == ("box-a", "heartbeat@box-a")
    assert env_of(site, "x", 1)["TASKFILES_HOST"] == "box-a"
    wait_until(lambda: site.entry("x").heartbeats > 0, 60, "the wrapper's first heartbeat")
    beats = [e for e in site.registry().events("x").events if e.type == "task.heartbeat"]
    assert beats and {e.actor.host for e in beats} == {"box-a"}  # the wrapper's own writes


# -- probing pids: only this host's ---------------------------------------------------------------


@pytest.fixture
def one_task(repo: Path) -> Config:
    write_task(repo, "x.md", "---\ntitle: X\nstatus: ready\n---\n")
    commit_all(repo)
    return tconfig.load(repo)


def signals_of(config: Config, clock: ManualClock) -> list[str]:
    seen = observe(config, open_registry(config, clock=clock), now=clock(), source=planning_source(config))
    return [s.kind for s in seen.by_slug["x"].signals]


def test_a_pid_on_another_host_is_never_probed_and_its_worker_stalls_by_heartbeat_age(
    one_task: Config, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_b = open_registry(one_task, clock=clock, actor=Actor("heartbeat", "b", 1))
    lease = on_b.claim("x", worker=dispatcher_worker("b")).lease
    on_b.start("x", lease, pid=no_such_pid(), pid_start_time=1)
    assert dead_workers(on_b.entries(), "a") == frozenset()
    assert dead_workers(on_b.entries(), "b") == {"x"}
    monkeypatch.setenv(HOST_ENV, "b")
    assert signals_of(one_task, clock) == ["worker_gone"]  # b owns the pid: it is gone
    monkeypatch.setenv(HOST_ENV, "a")
    assert signals_of(one_task, clock) == []  # a cannot see b's processes: not worker_gone
    clock.advance(seconds=one_task.limits.stall_after)
    assert signals_of(one_task, clock) == []
    clock.advance(seconds=1)
    assert signals_of(one_task, clock) == ["stalled"]  # b vanished? its heartbeat says so


@pytest.mark.parametrize(("here", "killed"), [("a", False), ("b", True)])
def test_the_heartbeat_kills_only_workers_of_its_own_host(
    site: Site, monkeypatch: pytest.MonkeyPatch, here: str, killed: bool
) -> None:
    site.task("x")
    worker = subprocess.Popen(SLEEPER, start_new_session=True)  # as the dispatcher on b started it
    try:
        on_b = open_registry(site.config, clock=site.clock, actor=Actor("heartbeat", "b", 1))
        lease = on_b.claim("x", worker=dispatcher_worker("b")).lease
        on_b.start("x", lease, pid=worker.pid, pid_start_time=process.pid_start_time(worker.pid))
        monkeypatch.setenv(HOST_ENV, here)
        assert acted(site.cycle(dispatch=False)) == set()
        site.clock.advance(site.config.limits.stall_after + 1)
        assert acted(site.cycle(dispatch=False)) == {("x", "stalled"), ("x", "retry_scheduled")}
        if killed:
            worker.wait(timeout=30)
        assert process.is_alive(worker.pid) is not killed  # b's worker: b's to stop, fenced for a
    finally:
        worker.kill()
        worker.wait()


# -- capacity across hosts ------------------------------------------------------------------------


def live(slug: str, host: str | None) -> RegistryEntry:
    return RegistryEntry(slug, "running", 1, host=host)


@pytest.mark.parametrize(
    ("entries", "max_parallel", "per_host", "free", "free_on_a", "free_on_b"),
    [
        ([], 2, None, 2, 2, 2),
        ([live("x", "b"), live("y", "b")], 2, None, 0, 0, 0),  # b's workers fill the global cap
        ([live("x", "b")], 4, 1, 3, 1, 0),
        ([live("x", "a"), live("y", "b"), live("z", None)], 4, 2, 1, 1, 1),  # no host: counts globally
        ([live("x", "a"), live("y", "a"), RegistryEntry("z", "exited", 1, host="a")], 5, 2, 3, 0, 2),
    ],
)
def test_capacity_is_global_and_capped_per_host(
    entries: list[RegistryEntry],
    max_parallel: int,
    per_host: int | None,
    free: int,
    free_on_a: int,
    free_on_b: int,
) -> None:
    capacity = Capacity.of(entries, max_parallel, per_host)
    assert (capacity.free, capacity.free_on("a"), capacity.free_on("b")) == (free, free_on_a, free_on_b)


def test_a_cycle_reads_the_registry_again_before_each_claim(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hosts dispatch from their own readings: one made before another host claimed is old."""
    site.configure(max_parallel=2)
    site.plan({slug: ["hang"] for slug in "xyz"})
    for slug in "xyz":
        site.task(slug)
    monkeypatch.setenv(HOST_ENV, "b")
    config, registry = site.config, site.registry()
    seen = observe(config, registry, now=site.clock(), source=planning_source(config))
    assert seen.capacity.free_on("b") == 2 and [t.slug for t in seen.dispatchable()] == ["x", "y", "z"]
    on_a = open_registry(config, clock=site.clock, actor=Actor("heartbeat", "a", 1))
    on_a.claim("x", worker=dispatcher_worker("a"))  # a's cycle, meanwhile
    scene = Scene(config, registry, site.clock(), "b")
    launched = launch.dispatch(scene, seen.tasks, seen.dispatchable(), seen.capacity)
    assert [d.slug for d in launched if not d.error] == ["y"]  # x was taken, and a holds a slot
    assert launch.room(scene, seen.capacity) == 0


def test_launches_that_fail_after_their_claim_stop_at_the_free_count(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every candidate may be passed to launch (a task claimed meanwhile is passed over), but a
    broken launch must not fail one attempt of each of them in one cycle."""
    site.configure(max_parallel=1)
    for slug in "xyz":
        site.task(slug)
        (site.root / ".worktrees" / slug).mkdir(parents=True)  # in the way: every launch fails
    monkeypatch.setenv(HOST_ENV, "a")
    config, registry = site.config, site.registry()
    seen = observe(config, registry, now=site.clock(), source=planning_source(config))
    scene = Scene(config, registry, site.clock(), "a")
    launched = launch.dispatch(scene, seen.tasks, seen.dispatchable(), seen.capacity)
    assert [(d.slug, "is not a git worktree" in (d.error or "")) for d in launched] == [("x", True)]
    assert {slug for slug, e in registry.entries().items() if e.failure_class == "dispatch_failed"} == {"x"}


def test_each_cycle_dispatches_what_is_free_on_all_hosts_and_on_its_own(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.configure(max_parallel=3)
    set_heartbeat(site, max_parallel_per_host=2)
    site.plan({slug: ["hang"] for slug in "pqrs"})
    for slug in "pqrs":
        site.task(slug)
    monkeypatch.setenv(HOST_ENV, "a")
    assert dispatched(site.cycle()) == ["p", "q"]  # its own cap: 2
    assert dispatched(site.cycle()) == []
    monkeypatch.setenv(HOST_ENV, "b")
    assert dispatched(site.cycle()) == ["r"]  # 3 of max_parallel 3 live on every host together
    assert dispatched(site.cycle()) == []
    capacity = status_json(site.root)["capacity"]
    assert capacity == {
        "max_parallel": 3,
        "live": 3,
        "free": 0,
        "max_parallel_per_host": 2,
        "live_by_host": {"a": 2, "b": 1},
    }


@pytest.mark.parametrize(
    ("toml", "per_host", "fetch", "timeout"),
    [
        ("", None, None, 30.0),
        ("max_parallel_per_host = 1\nfetch = true\n", 1, "origin", 30.0),
        ('fetch = "upstream"\nfetch_timeout_seconds = 5\n', None, "upstream", 5.0),
        ("fetch = false\n", None, None, 30.0),
    ],
)
def test_multi_host_settings(
    tmp_path: Path, toml: str, per_host: int | None, fetch: str | None, timeout: float
) -> None:
    (tmp_path / "taskfiles.toml").write_text("[heartbeat]\n" + toml)
    settings = tconfig.load(tmp_path).heartbeat
    assert (settings.max_parallel_per_host, settings.fetch, settings.fetch_timeout_seconds) == (
        per_host,
        fetch,
        timeout,
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("max_parallel_per_host = 0", "max_parallel_per_host must be a whole number of at least 1"),
        (
            "fetch = 'git@host:org/repo'",
            'fetch must be true (the remote "origin"), false or a remote\'s name',
        ),
        ("fetch = ''", "fetch must be true"),
        ("fetch = 1", "fetch must be true"),
        ("fetch_timeout_seconds = 0", "fetch_timeout_seconds must be greater than 0"),
    ],
)
def test_bad_multi_host_settings_are_config_errors(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "taskfiles.toml").write_text(f"[heartbeat]\n{toml}\n")
    with pytest.raises(ConfigError) as caught:
        _ = tconfig.load(tmp_path).heartbeat
    assert message in str(caught.value) and "taskfiles.toml: [heartbeat]" in str(caught.value)


# -- fetching the base ref ------------------------------------------------------------------------


@pytest.fixture
def served(site: Site, tmp_path: Path) -> tuple[Site, Path]:
    """The site as a clone of a bare server repository, its base ref ``origin/main``, fetching;
    and a second clone of the server (another host, or a person merging pull requests)."""
    server = tmp_path / "server.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(server))
    config = site.root / "taskfiles.toml"
    config.write_text(config.read_text().replace('base_ref = "main"', 'base_ref = "origin/main"'))
    commit_all(site.root, "read origin/main")
    set_heartbeat(site, fetch=True)
    site.task("x")
    git(site.root, "remote", "add", "origin", str(server))
    git(site.root, "push", "-q", "origin", "main")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(server), str(other))
    return site, other


def test_a_completion_merged_on_the_server_is_seen_after_the_fetch(
    served: tuple[Site, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    site, other = served
    monkeypatch.setenv(HOST_ENV, "a")
    registry = site.registry()
    registry.start("x", registry.claim("x", worker="w").lease)
    first = site.cycle(dispatch=False)
    assert first.fetched is not None and first.fetched.to_dict() == {
        "remote": "origin",
        "branch": "main",
        "ok": True,
        "error": None,
        "duration_ms": first.fetched.duration_ms,
    }
    assert first.counts["active"] == 1 and first.warnings == ()
    write_task(other, "x.md", "---\ntitle: Task x\nstatus: completed\ncompleted_at: '2026-01-01'\n---\n")
    write_task(other, "y.md", "---\ntitle: Y\nstatus: ready\n---\n")
    commit_all(other, "x merged elsewhere; y planned")
    git(other, "push", "-q", "origin", "main")
    result = site.cycle(dispatch=False)
    assert ("x", "released") in acted(result) and result.counts["ready"] == 1  # y
    assert git(site.root, "rev-parse", "main") != git(site.root, "rev-parse", "origin/main")


def test_a_failed_fetch_is_a_warning_and_the_cycle_goes_on(served: tuple[Site, Path], tmp_path: Path) -> None:
    site, _ = served
    site.cycle(dispatch=False)
    git(site.root, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    result = site.cycle(dispatch=False)
    assert result.ran and result.counts["ready"] == 1
    assert result.fetched is not None and not result.fetched.ok
    [warning] = result.warnings
    assert warning.startswith("fetch failed: git fetch origin main failed: fatal: ")
    assert warning.endswith("; this cycle reads origin/main as it was before")
    assert "; fetch of origin main FAILED (read origin/main as it was) (" in summary(result)
    cli = runner.invoke(app, ["-C", str(site.root), "heartbeat-cycle", "--no-dispatch"])
    assert cli.exit_code == 0 and "fetch of origin main FAILED" in cli.stdout
    assert cli.stderr.startswith("warning: fetch failed: git fetch origin main failed: fatal: ")
    assert _warnings(site)[0].startswith("fetch failed: ")  # in the cycle's record too


def _warnings(site: Site) -> list[str]:
    record = site.registry().read_cycle()
    assert record is not None
    return list(record.warnings)


def test_a_fetch_that_hangs_is_killed_after_its_timeout(
    served: tuple[Site, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    site, _ = served
    set_heartbeat(site, fetch_timeout_seconds=1)
    git(site.root, "push", "-q", "origin", "main")
    git(site.root, "remote", "set-url", "origin", "ssh://server.invalid/repo.git")
    monkeypatch.setenv("GIT_SSH_COMMAND", "sleep 120 #")  # an ssh that never answers
    result = site.cycle(dispatch=False)
    assert result.ran and result.warnings == (
        "fetch failed: git fetch origin main timed out after 1 s; "
        "this cycle reads origin/main as it was before",
    )


def test_fetch_with_a_local_base_ref_is_a_config_error(site: Site) -> None:
    set_heartbeat(site, fetch=True)
    site.task("x")
    with pytest.raises(
        ConfigError, match=r"base_ref 'main' is not one of them.*set base_ref = 'origin/<branch>'"
    ):
        site.cycle(dispatch=False)


def test_a_dry_run_does_not_fetch(served: tuple[Site, Path], tmp_path: Path) -> None:
    site, _ = served
    git(site.root, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    result = site.cycle(dry_run=True)
    assert result.fetched is None and result.warnings == ()


# -- each host's last cycle -----------------------------------------------------------------------


def cycle_at(host: str, clock: ManualClock, seconds_ago: float, duration_ms: float = 5.0) -> CycleRecord:
    stamp = format_time(clock() - timedelta(seconds=seconds_ago))
    return CycleRecord(generated_at=stamp, owner=f"cron@{host}", host=host, duration_ms=duration_ms)


def test_status_shows_each_hosts_last_cycle_newest_first(one_task: Config, clock: ManualClock) -> None:
    records = [cycle_at("a", clock, 400), cycle_at("b", clock, 10, 7.5), cycle_at("a", clock, 900)]
    source = Source(planning_source(one_task).tasks, "main")
    seen = classify(one_task, source, {}, records[1], now=clock(), hosts=records)
    assert seen.to_dict()["hosts"] == [
        {
            "host": "b",
            "generated_at": records[1].generated_at,
            "age_seconds": 10.0,
            "stale": False,
            "duration_ms": 7.5,
        },
        {
            "host": "a",
            "generated_at": records[0].generated_at,
            "age_seconds": 400.0,
            "stale": True,
            "duration_ms": 5.0,
        },
    ]
    assert seen.cycle is not None and seen.cycle.record.host == "b" and not seen.stale
    assert classify(one_task, source, {}, None, now=clock()).to_dict()["hosts"] == []


def test_the_json_store_keeps_the_last_cycle_of_any_host(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.task("x")
    for host in ("a", "b"):
        monkeypatch.setenv(HOST_ENV, host)
        site.cycle(dispatch=False)
    assert [h["host"] for h in status_json(site.root)["hosts"]] == ["b"]
    assert [r.host for r in site.registry().read_cycles()] == ["b"]


def test_a_registry_shared_by_hosts_shows_each_hosts_cycle_in_status_and_on_the_page(
    site: Site, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    monkeypatch.setenv(REGISTRY_URL_ENV, pg_url)
    site.plan({"x": ["hang"]})
    site.task("x")
    try:
        _two_hosts_on_postgres(site, monkeypatch)
    finally:
        site.kill_all()  # while the registry is still the database, which is dropped first
        monkeypatch.delenv(REGISTRY_URL_ENV)


def _two_hosts_on_postgres(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOST_ENV, "a")
    assert dispatched(site.cycle()) == ["x"]
    monkeypatch.setenv(HOST_ENV, "b")
    site.cycle()
    report = status_json(site.root)
    assert [(h["host"], h["stale"]) for h in report["hosts"]] == [("b", False), ("a", False)]
    assert set(report["hosts"][0]) == {"host", "generated_at", "age_seconds", "stale", "duration_ms"}
    text = runner.invoke(app, ["-C", str(site.root), "status"]).stdout
    assert "dispatch hosts (2), each one's last cycle:\n  b: " in text and "\n  a: " in text
    row = next(line for line in text.splitlines() if line.startswith("active"))
    assert row.split()[7] == "a"  # the HOST column: where x's worker runs
    client = TestClient(create_app(site.config, watch=False, max_age=0), base_url="http://127.0.0.1:8005")
    page = client.get("/").text
    assert page.count('<tr data-host="') == 2 and '<tr data-host="a"' in page
    assert '<td class="host">a</td>' in page
    assert [h["host"] for h in client.get("/api/status").json()["hosts"]] == ["b", "a"]


def test_read_cycles_gives_each_hosts_last_newest_first_and_read_cycle_the_first(
    store_factory: StoreFactory, clock: ManualClock
) -> None:
    """The contract every store keeps; a store with one record (JSON) keeps the last host's."""
    hosts = {host: store_factory(clock=clock, actor=Actor("heartbeat", host, 1)) for host in "ab"}
    assert hosts["a"].read_cycles() == ()
    for host, seconds_ago in (("a", 30), ("b", 20), ("a", 10)):
        hosts[host].write_cycle(cycle_at(host, clock, seconds_ago))
    cycles = store_factory(clock=clock).read_cycles()
    assert cycles[0] == store_factory().read_cycle() == cycle_at("a", clock, 10)
    assert [c.generated_at for c in cycles] == sorted((c.generated_at for c in cycles), reverse=True)
    assert len({c.host for c in cycles}) == len(cycles)  # one a host: a's later cycle replaced its first
    assert cycles[1:] in ((), (cycle_at("b", clock, 20),))
