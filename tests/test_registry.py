"""The runtime registry: state machine, fencing, events, logs, gc, corruption and repair.

Real files in tmp_path; the clock is the only fake. Concurrency proofs (several
processes) are in test_registry_concurrency.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskfiles import config as config_module
from taskfiles.dispatch import hostfiles
from taskfiles.dispatch.hostfiles import HostFiles
from taskfiles.errors import ConflictError, NotFoundError, RegistryError, StaleLeaseError, UsageError
from taskfiles.process import is_alive, pid_start_time
from taskfiles.registry import Actor, Change, Plan, RegistryEntry, Snapshot, open_registry
from taskfiles.registry.document import Codec
from taskfiles.registry.jsonstore import JsonRegistry

ACTOR = Actor("tester", "host-1", 4242)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reg(tmp_path: Path, clock: Clock) -> JsonRegistry:
    return JsonRegistry(tmp_path / "registry", clock=clock, actor=ACTOR)


def files(reg: JsonRegistry) -> dict[str, bytes]:
    """Every file of the registry, by relative path (to prove nothing changed)."""
    return {
        p.relative_to(reg.root).as_posix(): p.read_bytes()
        for p in sorted(reg.root.rglob("*"))
        if p.is_file() and p.name != "registry.lock"
    }


def running(reg: JsonRegistry, slug: str = "fix-login") -> int:
    lease = reg.claim(slug, worker="w1", owner="core").lease
    reg.start(slug, lease, pid=os.getpid(), worktree=f".worktrees/{slug}", branch=f"task/{slug}")
    return lease


# -- the worker's path ---------------------------------------------------------------------------


def test_claim_to_release_records_each_step_with_time_and_actor(reg: JsonRegistry, clock: Clock) -> None:
    claimed = reg.claim("fix-login", worker="w1", owner="core", max_attempts=2, task_blob="abc123")
    assert (claimed.state, claimed.lease, claimed.attempt, claimed.max_attempts) == ("claimed", 1, 1, 2)
    assert (claimed.host, claimed.claimed_at) == ("host-1", "2025-03-01T12:00:00.000000Z")
    clock.advance(seconds=5)
    started = reg.start("fix-login", 1, pid=123, pid_start_time=456, worktree="wt", branch="task/fix-login")
    assert (started.state, started.pid, started.pid_start_time) == ("running", 123, 456)
    assert started.started_at == started.heartbeat_at == "2025-03-01T12:00:05.000000Z"
    finished = reg.finish("fix-login", 1, 0)
    assert (finished.state, finished.exit_code, finished.consecutive_failures) == ("exited", 0, 0)
    released = reg.release("fix-login", reason="completed on main")
    assert released.state == "released"
    page = reg.events()
    assert [e.type for e in page.events] == ["task.claimed", "task.started", "task.exited", "task.released"]
    assert all(e.actor == ACTOR and e.slug == "fix-login" and e.lease == 1 for e in page.events)
    assert page.events[0].details == {"worker": "w1", "owner": "core", "attempt": 1}
    assert page.events[-1].entry is not None and page.events[-1].entry["state"] == "released"
    assert page.warnings == ()


def test_failure_is_recorded_and_a_retry_is_a_new_attempt_with_a_new_lease(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.heartbeat("fix-login", lease, cost_usd=0.5)
    failed = reg.finish("fix-login", lease, 2, error="tests failed")
    assert (failed.state, failed.last_error, failed.failure_class) == ("failed", "tests failed", "exit_2")
    assert failed.consecutive_failures == 1
    with pytest.raises(ConflictError, match="task retry fix-login"):
        reg.claim("fix-login", worker="w2")
    reg.retry("fix-login", reason="flaky", fresh=True)
    again = reg.claim("fix-login", worker="w2")
    assert (again.lease, again.attempt, again.fresh) == (2, 2, True)
    assert (again.cost_usd, again.total_cost_usd) == (0, 0.5)
    assert reg.start("fix-login", 2).fresh is False


def test_leases_never_repeat_across_release_and_gc(reg: JsonRegistry, clock: Clock) -> None:
    assert reg.claim("a", worker="w").lease == 1
    reg.release("a")
    assert reg.claim("a", worker="w").lease == 2
    reg.release("a")
    clock.advance(days=40)
    assert reg.gc(older_than_days=30).entries_removed == ("a",)
    assert reg.find("a") is None
    assert reg.claim("a", worker="w").lease == 3
    assert reg.snapshot().leases == {"a": 3}


def test_backoff_holds_a_claim_until_its_time(reg: JsonRegistry, clock: Clock) -> None:
    lease = running(reg)
    reg.finish("fix-login", lease, 1)
    reg.schedule_retry("fix-login", at=clock.now + timedelta(minutes=10), reason="backoff", lease=lease)
    with pytest.raises(ConflictError, match="backing off until 2025-03-01T12:10:00"):
        reg.claim("fix-login", worker="w")
    assert reg.claim_first(["fix-login"], worker="w") is None
    clock.advance(minutes=10)
    assert reg.claim("fix-login", worker="w").lease == lease + 1


def test_claim_first_takes_the_first_free_candidate(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    reg.claim("c", worker="w")
    reg.park("c", reason="flaky")
    got = reg.claim_first(["a", "b", "c"], worker="w2", task_blobs={"b": "blob-b"})
    assert got is not None and (got.slug, got.task_blob, got.worker) == ("b", "blob-b", "w2")
    assert reg.claim_first(["a", "b", "c"], worker="w2") is None


def test_heartbeats_add_cost_and_only_news_becomes_an_event(reg: JsonRegistry, clock: Clock) -> None:
    lease = running(reg)
    for n in range(5):
        clock.advance(seconds=30)
        entry = reg.heartbeat("fix-login", lease, cost_usd=0.01, note="halfway" if n == 3 else None)
    assert (entry.heartbeats, entry.cost_usd, entry.total_cost_usd) == (5, 0.05, 0.05)
    assert (entry.progress, entry.heartbeat_at) == ("halfway", "2025-03-01T12:02:30.000000Z")
    beats = [e for e in reg.events().events if e.type == "task.heartbeat"]
    assert [e.details.get("note") for e in beats] == [None, "halfway"]  # the first, and the noted one


# -- fencing -------------------------------------------------------------------------------------


def test_a_superseded_lease_cannot_heartbeat_log_start_or_finish(reg: JsonRegistry) -> None:
    old = running(reg)
    reg.log("fix-login", "old worker output", lease=old)
    reg.stop("fix-login", reason="timed out")
    reg.retry("fix-login")
    new = reg.claim("fix-login", worker="w2").lease
    before = files(reg)
    message = f"lease {old} for 'fix-login' was superseded by lease {new}; this worker must stop"
    with pytest.raises(StaleLeaseError) as caught:
        reg.heartbeat("fix-login", old, note="still here", cost_usd=1.0)
    assert str(caught.value) == message
    for attempt in (
        lambda: reg.log("fix-login", "late output", lease=old),
        lambda: reg.finish("fix-login", old, 0),
        lambda: reg.start("fix-login", old, pid=1),
        lambda: reg.note("fix-login", "late", lease=old),
        lambda: reg.progress("fix-login", 50, lease=old),
    ):
        with pytest.raises(StaleLeaseError, match="must stop"):
            attempt()
    assert files(reg) == before
    assert reg.heartbeat("fix-login", new).heartbeats == 1  # the successor is unaffected


def test_a_stopped_or_released_lease_is_over(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.stop("fix-login", reason="operator")
    with pytest.raises(
        StaleLeaseError, match=r"is over: the task is stopped \(operator\); this worker must stop"
    ):
        reg.heartbeat("fix-login", lease)
    other = running(reg, "other")
    reg.release("other")
    with pytest.raises(StaleLeaseError, match="released"):
        reg.finish("other", other, 0)


def test_a_lease_never_issued_is_a_usage_error(reg: JsonRegistry) -> None:
    running(reg)
    with pytest.raises(UsageError, match="lease 7 for 'fix-login' was never issued; the current lease is 1"):
        reg.heartbeat("fix-login", 7)


# -- operators ------------------------------------------------------------------------------------

TRANSITIONS = [
    # (setup states to walk through, action, expected state or error)
    ("running", "stop", "stopped"),
    ("claimed", "stop", "stopped"),
    ("exited", "stop", ConflictError),
    ("failed", "retry", "retry_wait"),
    ("stopped", "retry", "retry_wait"),
    ("exited", "retry", "retry_wait"),
    ("running", "retry", ConflictError),
    ("released", "retry", ConflictError),
    ("failed", "park", "parked"),
    ("running", "park", "parked"),
    ("parked", "park", ConflictError),
    ("parked", "unpark", "retry_wait"),
    ("failed", "unpark", ConflictError),
    ("parked", "retry", "retry_wait"),
    ("failed", "release", "released"),
    ("running", "release", "released"),
]


def _into(reg: JsonRegistry, state: str) -> None:
    lease = reg.claim("t", worker="w").lease
    if state == "claimed":
        return
    reg.start("t", lease)
    steps = {
        "exited": lambda: reg.finish("t", lease, 0),
        "failed": lambda: reg.finish("t", lease, 3),
        "parked": lambda: reg.park("t", reason="circuit open"),
        "stopped": lambda: reg.stop("t", reason="operator"),
        "released": lambda: reg.release("t"),
    }
    if state in steps:
        steps[state]()


@pytest.mark.parametrize(("state", "action", "expected"), TRANSITIONS)
def test_operator_transitions(reg: JsonRegistry, state: str, action: str, expected: object) -> None:
    _into(reg, state)
    assert reg.get("t").state == state
    act: Callable[[], RegistryEntry] = {
        "stop": lambda: reg.stop("t", reason="r"),
        "retry": lambda: reg.retry("t", reason="r"),
        "park": lambda: reg.park("t", reason="r"),
        "unpark": lambda: reg.unpark("t"),
        "release": lambda: reg.release("t"),
    }[action]
    if isinstance(expected, type):
        before = files(reg)
        with pytest.raises(expected):
            act()
        assert files(reg) == before
    else:
        assert act().state == expected


def test_unpark_closes_the_circuit_and_makes_the_task_claimable(reg: JsonRegistry) -> None:
    for _ in range(3):
        lease = reg.claim("t", worker="w").lease
        reg.finish("t", lease, 1)
        reg.retry("t") if _ < 2 else None
    reg.park("t", reason="same failure 3 times")
    assert reg.get("t").parked_reason == "same failure 3 times"
    with pytest.raises(ConflictError, match="task unpark t"):
        reg.claim("t", worker="w")
    entry = reg.unpark("t", reason="fixed the flake")
    assert (entry.state, entry.parked_reason, entry.consecutive_failures) == ("retry_wait", None, 0)
    assert reg.claim("t", worker="w").lease == 4


def test_update_hook_applies_a_custom_change(reg: JsonRegistry) -> None:
    lease = running(reg)

    def gone(entry: RegistryEntry, s: Snapshot) -> Change:
        return Change(entry.slug, replace(entry, state="failed", failure_class="worker_gone"), "task.failed")

    assert reg.update("fix-login", gone).failure_class == "worker_gone"
    assert reg.events().events[-1].type == "task.failed"
    with pytest.raises(StaleLeaseError):
        reg.heartbeat("fix-login", lease)


def test_transact_refuses_a_plan_that_reuses_a_lease(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    reg.release("a")
    before = files(reg)

    def reuse(s: Snapshot) -> Plan[None]:
        return Plan((Change("a", RegistryEntry("a", "claimed", 1), "task.claimed"),), None)

    with pytest.raises(RegistryError, match="lease 1 was issued before"):
        reg.transact(reuse)
    assert files(reg) == before


# -- runtime facts ----------------------------------------------------------------------------------


def test_runtime_facts_are_kept_on_the_entry_and_in_events(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.note("fix-login", "looking at the parser")
    reg.progress("fix-login", 40, "parser done", lease=lease)
    reg.blocker("fix-login", "needs a staging database")
    reg.evidence("fix-login", "pytest -q", 0, "212 passed")
    reg.artifact("fix-login", "https://ci.example/run/1")
    entry = reg.artifact("fix-login", "https://ci.example/run/1")
    assert (entry.progress, entry.progress_percent) == ("parser done", 40)
    assert entry.blocker == "needs a staging database"
    assert entry.artifacts == ("https://ci.example/run/1",)
    assert [(e.command, e.exit_code, e.summary, e.who) for e in entry.evidence] == [
        ("pytest -q", 0, "212 passed", "tester")
    ]
    assert reg.blocker("fix-login", None).blocker is None
    types = [e.type for e in reg.events("fix-login").events][2:]
    facts = ["task.note", "task.progress", "task.blocker", "task.evidence", "task.artifact"]
    assert types == [*facts, "task.artifact", "task.blocker"]
    assert reg.events("fix-login").events[-1].details == {"cleared": True}


@pytest.mark.parametrize("percent", [-1, 101, 50.5, True])
def test_progress_must_be_a_percentage(reg: JsonRegistry, percent: object) -> None:
    running(reg)
    with pytest.raises(UsageError, match="whole percentage"):
        reg.progress("fix-login", percent)  # type: ignore[arg-type]


def test_negative_cost_is_refused(reg: JsonRegistry) -> None:
    lease = running(reg)
    with pytest.raises(UsageError, match="cost_usd"):
        reg.heartbeat("fix-login", lease, cost_usd=-1)


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.heartbeat("nope", 1),
        lambda r: r.start("nope", 1),
        lambda r: r.finish("nope", 1, 0),
        lambda r: r.note("nope", "x"),
        lambda r: r.stop("nope"),
        lambda r: r.retry("nope"),
        lambda r: r.park("nope", reason="x"),
        lambda r: r.unpark("nope"),
        lambda r: r.release("nope"),
        lambda r: r.get("nope"),
        lambda r: r.log("nope", "x"),
        lambda r: r.logs("nope"),
    ],
)
def test_unknown_slug_is_not_found(reg: JsonRegistry, call: object) -> None:
    reg.claim("known", worker="w")
    with pytest.raises(NotFoundError, match="'nope'"):
        call(reg)  # type: ignore[operator]


@pytest.mark.parametrize("slug", ["../etc", "a/b", "", ".hidden", "x y"])
def test_a_slug_that_could_escape_the_logs_folder_is_refused(reg: JsonRegistry, slug: str) -> None:
    with pytest.raises(UsageError, match="is not a task slug"):
        reg.claim(slug, worker="w")


def test_malformed_event_lines_are_skipped_with_their_line_numbers(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    with open(reg.events_path, "ab") as handle:
        handle.write(b'{"not json\n[1, 2]\n{"type": "task.note"}\n{"time": "2025-03-01T12:00:00Z", "ty')
    reg.note("a", "after the torn line")  # the torn last line must not swallow this event
    page = reg.events()
    assert [e.type for e in page.events] == ["task.claimed", "task.note"]
    path = str(reg.events_path)
    assert page.warnings[0].startswith(f"{path}:2: not valid JSON")
    assert page.warnings[1] == f"{path}:3: not a JSON object; line skipped"
    assert page.warnings[2] == f"{path}:4: not an event (needs 'time' and 'type'); line skipped"
    assert page.warnings[3].startswith(f"{path}:5: not valid JSON")
    assert len(page.warnings) == 4


def test_a_missing_registry_reads_as_empty(tmp_path: Path) -> None:
    reg = JsonRegistry(tmp_path / "nothing-yet")
    assert reg.entries() == {} and reg.events().events == () and not reg.root.exists()


def test_registry_under_a_file_cannot_be_written_and_says_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file where the registry's parent should be\n")
    reg = JsonRegistry(blocker / "registry")
    with pytest.raises(RegistryError, match=r"registry\.json: Not a directory; check the folder"):
        reg.entries()
    with pytest.raises(RegistryError) as caught:
        reg.claim("a", worker="w")
    message = str(caught.value)
    assert message.startswith(f"cannot write registry at {blocker / 'registry'}: ")
    assert message.endswith("set TASKFILES_REGISTRY or registry_dir to a writable folder")
    assert blocker.read_text().startswith("a regular file")


@contextlib.contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """``chattr +i``: not even root may create or rename files in ``folder``."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode:
        pytest.skip("this file system or user cannot set the immutable attribute")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_registry_folder_fails_clearly_and_loses_nothing(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "line", lease=lease)
    before = files(reg)
    with immutable(reg.root):
        calls: list[Callable[[], RegistryEntry]] = [
            lambda: reg.heartbeat("fix-login", lease),
            lambda: reg.claim("other", worker="w"),
        ]
        for call in calls:
            with pytest.raises(
                RegistryError, match=r"cannot write registry at .*: read-only or not permitted"
            ):
                call()
        assert reg.get("fix-login").heartbeats == 0  # reads still work
    assert files(reg) == before
    assert reg.heartbeat("fix-login", lease).heartbeats == 1


def test_a_read_only_mount_fails_clearly_and_loses_nothing(reg: JsonRegistry) -> None:
    """A real read-only file system (EROFS): a read-only bind mount in a private namespace."""
    lease = running(reg)
    before = files(reg)
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    code = (
        "import sys; from pathlib import Path; from taskfiles.registry.jsonstore import JsonRegistry; "
        "from taskfiles.errors import RegistryError\n"
        "r = JsonRegistry(Path(sys.argv[1]))\n"
        "try:\n    r.heartbeat('fix-login', int(sys.argv[2]))\n"
        "except RegistryError as e:\n    print(e); sys.exit(7)\n"
    )
    root = str(reg.root)
    mount = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1"'
    script = f'{mount} && exec "{sys.executable}" -c "$2" "$1" "$3"'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", root, code, str(lease)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 7) or "mount:" in done.stderr:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    assert done.returncode == 7, done.stdout + done.stderr
    assert f"cannot write registry at {root}: read-only or not permitted" in done.stdout
    assert "(Read-only file system)" in done.stdout
    assert files(reg) == before


# -- corruption and repair ---------------------------------------------------------------------------


def test_a_corrupt_registry_is_refused_never_overwritten_and_repair_rebuilds_it(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.heartbeat("fix-login", lease, note="step 1", cost_usd=0.2)
    reg.claim("other", worker="w2")
    reg.release("other")
    reg.claim("third", worker="w3")
    want = reg.entries()
    garbage = b'{"version":1,"entries":{"fix-login":{"state":'
    reg.data.write_bytes(garbage)
    for call in (
        lambda: reg.heartbeat("fix-login", lease),
        lambda: reg.claim("new", worker="w"),
        lambda: reg.entries(),
        lambda: reg.gc(),
    ):
        with pytest.raises(RegistryError) as caught:
            call()
        message = str(caught.value)
        assert str(reg.data) in message and "not valid JSON" in message
        assert str(reg.backup) in message and "'task registry repair'" in message
    assert reg.data.read_bytes() == garbage
    report = reg.repair()
    assert report.needed and report.from_backup and report.problem and "not valid JSON" in report.problem
    assert report.moved_aside and Path(report.moved_aside).read_bytes() == garbage
    assert reg.entries() == want
    assert reg.claim("third-2", worker="w").lease == 1
    assert reg.claim_first(["third"], worker="w") is None  # its live claim survived
    assert reg.events().events[-2].type == "registry.repaired"
    assert reg.repair().needed is False


def test_repair_without_a_backup_replays_the_whole_event_log(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.finish("fix-login", lease, 1, error="boom")
    reg.claim("b", worker="w")
    want = reg.entries()
    reg.data.write_bytes(b"\x00\x00garbage")
    reg.backup.unlink()
    report = reg.repair()
    assert not report.from_backup
    assert any("rebuilt from the event log alone" in note for note in report.unrecovered)
    assert reg.entries() == want
    assert reg.snapshot().leases == {"fix-login": 1, "b": 1}


def test_repair_reports_heartbeats_that_left_no_event(reg: JsonRegistry, clock: Clock) -> None:
    lease = running(reg)
    reg.backup.unlink()  # force the next write to refresh the backup at this point
    reg.heartbeat("fix-login", lease)  # first heartbeat: an event
    for _ in range(3):
        clock.advance(seconds=10)
        reg.heartbeat("fix-login", lease)  # silent
    reg.note("fix-login", "evented")
    reg.data.write_text("{")
    report = reg.repair()
    assert any("3 write(s) between the backup" in note for note in report.unrecovered)
    assert any("fix-login" in note and "next one" in note for note in report.unrecovered)
    assert reg.get("fix-login").progress == "evented"


def test_a_missing_registry_with_history_is_refused_because_leases_would_restart(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    reg.release("a")
    reg.data.unlink()
    with pytest.raises(RegistryError, match=r"missing but .* exist.*would reuse leases"):
        reg.claim("a", worker="w")
    assert reg.repair().needed
    assert reg.claim("a", worker="w").lease == 2


def test_a_malformed_entry_is_refused_with_the_file_named(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    doc = json.loads(reg.data.read_bytes())
    doc["entries"]["a"]["heartbeats"] = "many"
    reg.data.write_text(json.dumps(doc, indent=2))
    with pytest.raises(RegistryError, match=r"registry\.json: registry entry 'a' is malformed.*'heartbeats'"):
        reg.heartbeat("a", 1)
    assert reg.repair().needed


def test_a_hand_formatted_registry_is_read_and_rewritten_in_its_layout(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    reg.claim("b", worker="w")
    reg.data.write_text(json.dumps(json.loads(reg.data.read_bytes()), indent=4))
    assert reg.heartbeat("b", 1).heartbeats == 1
    assert reg.data.read_bytes().count(b"\n") == 6  # header, leases, "entries":{, two entries, }}
    assert set(reg.entries()) == {"a", "b"}


# -- logs -----------------------------------------------------------------------------------------------


def test_logs_read_back_by_attempt_level_and_source(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "compiling", lease=lease, source="stdout")
    messages = ["warn: slow", "line\nwith newline"]
    reg.log_many("fix-login", messages, lease=lease, level="warning", source="stderr")
    reg.log("fix-login", "operator remark", level="error", source="operator")
    reg.finish("fix-login", lease, 1)
    reg.retry("fix-login")
    second = reg.claim("fix-login", worker="w").lease
    reg.log("fix-login", "second attempt", lease=second)
    page = reg.logs("fix-login", attempt=1)
    assert [r.message for r in page.records] == [
        "compiling",
        "warn: slow",
        "line\nwith newline",
        "operator remark",
    ]
    assert page.records[0].lease == lease and page.records[3].lease is None
    assert [r.message for r in reg.logs("fix-login", attempt=1, level="warning").records] == [
        "warn: slow",
        "line\nwith newline",
        "operator remark",
    ]
    assert [r.message for r in reg.logs("fix-login", attempt=1, source="stdout").records] == ["compiling"]
    current = reg.logs("fix-login")
    assert (current.attempt, [r.message for r in current.records]) == (2, ["second attempt"])
    assert (reg.root / "logs" / "fix-login" / "2.log").is_file()
    with pytest.raises(NotFoundError, match="attempt 9 of 'fix-login' has no log"):
        reg.logs("fix-login", attempt=9)
    with pytest.raises(UsageError, match="log level 'loud'"):
        reg.log("fix-login", "x", level="loud")


def test_bad_log_lines_are_skipped_with_warnings(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "good", lease=lease)
    path = reg.root / "logs" / "fix-login" / "1.log"
    with open(path, "ab") as handle:
        handle.write(b'plain text\n{"time": 1}\n')
    reg.log("fix-login", "also good", lease=lease)
    page = reg.logs("fix-login")
    assert [r.message for r in page.records] == ["good", "also good"]
    assert page.warnings[0].startswith(f"{path}:2: not valid JSON")
    assert page.warnings[1].startswith(f"{path}:3: not a log line")


def test_follow_logs_yields_everything_then_ends_with_the_attempt(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "one", lease=lease)
    follower = reg.follow_logs("fix-login", poll=0.01)
    assert next(follower).message == "one"
    reg.log("fix-login", "two", lease=lease, level="error")
    reg.finish("fix-login", lease, 0)
    assert [r.message for r in follower] == ["two"]


def test_follow_events_from_now_and_since(reg: JsonRegistry, clock: Clock) -> None:
    reg.claim("a", worker="w")
    live = reg.follow_events(poll=0.01)
    clock.advance(hours=1)
    reg.note("a", "hello")
    event = next(live)
    assert (event.type, event.details) == ("task.note", {"text": "hello"})
    history = reg.follow_events(slug="a", since=clock.now - timedelta(minutes=1), poll=0.01)
    assert next(history).type == "task.note"


def test_events_filter_by_slug_and_since(reg: JsonRegistry, clock: Clock) -> None:
    reg.claim("a", worker="w")
    clock.advance(hours=1)
    reg.claim("b", worker="w")
    reg.note("a", "later")
    assert [e.type for e in reg.events("a").events] == ["task.claimed", "task.note"]
    assert [e.slug for e in reg.events(since=clock.now).events] == ["b", "a"]


def test_gc_prunes_released_tasks_logs_and_archives_old_events(reg: JsonRegistry, clock: Clock) -> None:
    old = running(reg, "old")
    reg.log("old", "old output", lease=old)
    host = HostFiles(reg.root)
    host.write_prompt("old", 1, "Do old.")
    with host.worker_lock("old"):
        pass
    reg.finish("old", old, 0)
    reg.release("old")
    live = running(reg, "live")
    reg.log("live", "live output", lease=live)
    host.write_prompt("live", 1, "Do live.")
    follower = reg.follow_events(since=clock.now - timedelta(days=1), poll=0.01)
    seen = [next(follower).type for _ in range(6)]
    clock.advance(days=31)
    reg.note("live", "recent")
    report = hostfiles.gc(reg, host, older_than_days=30)
    assert report.entries_removed == ("old",)
    assert report.logs_removed == ("logs/old", "prompts/old", "workers/old")
    assert report.log_bytes_removed > 0 and report.events_archived == 6 and report.archive
    assert not any((reg.root / kind / "old").exists() for kind in ("logs", "prompts", "workers"))
    assert (reg.root / "logs" / "live").is_dir() and (reg.root / "prompts" / "live").is_dir()
    assert [e.type for e in reg.events().events] == ["task.note", "task.pruned"]
    assert seen[0] == "task.claimed"
    assert [next(follower).type, next(follower).type] == ["task.note", "task.pruned"]  # no replays
    reg.note("live", "after gc")
    assert next(follower).details == {"text": "after gc"}
    with pytest.raises(UsageError):
        reg.gc(older_than_days=-1)


def test_repair_after_gc_still_finds_archived_history(reg: JsonRegistry, clock: Clock) -> None:
    lease = running(reg, "keep")
    clock.advance(days=40)
    reg.gc(older_than_days=30)
    want = reg.entries()
    reg.data.write_text("garbage")
    reg.backup.unlink()
    reg.repair()
    assert reg.entries() == want
    reg.heartbeat("keep", lease)


# -- the file layout ------------------------------------------------------------------------------------


def test_the_registry_file_is_plain_json_one_entry_a_line(reg: JsonRegistry) -> None:
    running(reg, "b")
    reg.claim("a", worker="w")
    lines = reg.data.read_bytes().split(b"\n")
    assert lines[0].startswith(b'{"version":1,"seq":3,') and lines[2] == b'"entries":{'
    assert lines[3].startswith(b'"b":{') and lines[4].startswith(b'"a":{') and lines[5] == b"}}"
    doc = json.loads(reg.data.read_bytes())
    assert doc["leases"] == {"a": 1, "b": 1} and doc["entries"]["b"]["state"] == "running"


def _act(reg: JsonRegistry, op: str, slug: str) -> None:
    entry = reg.find(slug)
    if op == "claim":
        reg.claim(slug, worker="w")
    elif op == "gc":
        reg.gc(0)
    elif entry is None:
        return
    elif op in ("heartbeat", "finish") and entry.is_live:
        reg.heartbeat(slug, entry.lease, cost_usd=0.01) if op == "heartbeat" else reg.finish(
            slug, entry.lease, 1
        )
    elif op in ("release", "retry", "stop", "note"):
        getattr(reg, op)(slug, *(["n"] if op == "note" else []))


OPS = st.lists(
    st.tuples(
        st.sampled_from(["claim", "heartbeat", "finish", "release", "retry", "stop", "note", "gc"]),
        st.sampled_from("abcde"),
    ),
    max_size=25,
)


@example(ops=[("claim", "a"), ("release", "a"), ("gc", "a")])  # found by hypothesis: no entries left
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_two_writers_always_leave_a_file_json_reads_the_same(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str]]
) -> None:
    """Each writer keeps its own cache of the file; both must always agree with plain JSON."""
    root = tmp_path_factory.mktemp("reg") / "registry"
    writers = [JsonRegistry(root, actor=ACTOR), JsonRegistry(root, actor=ACTOR)]
    for n, (op, slug) in enumerate(ops):
        with contextlib.suppress(ConflictError):
            _act(writers[n % 2], op, slug)
        if not root.joinpath("registry.json").exists():
            continue
        data = root.joinpath("registry.json").read_bytes()
        plain = json.loads(data)
        assert Codec().parse(data).leases == plain["leases"]
        for reader in (*writers, JsonRegistry(root)):
            assert {s: e.to_dict() for s, e in reader.entries().items()} == plain["entries"]


# -- odds and ends ----------------------------------------------------------------------------------


def test_open_registry_follows_config_and_the_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = open_registry(config_module.load(repo))
    assert isinstance(reg, JsonRegistry) and reg.root == (repo / "registry").resolve()
    monkeypatch.setenv("TASKFILES_REGISTRY", str(tmp_path / "elsewhere"))
    moved = open_registry(config_module.load(repo))
    assert isinstance(moved, JsonRegistry) and moved.root == (tmp_path / "elsewhere").resolve()


def test_actor_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKFILES_ACTOR", "agent-7")
    reg = JsonRegistry(tmp_path / "registry")
    reg.claim("a", worker="w")
    actor = reg.events().events[0].actor
    assert (actor.who, actor.pid) == ("agent-7", os.getpid())


def test_pid_start_time_tells_a_reused_pid_apart() -> None:
    mine = pid_start_time(os.getpid())
    assert isinstance(mine, int) and mine == pid_start_time(os.getpid())
    assert is_alive(os.getpid(), mine) and not is_alive(os.getpid(), mine + 1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert pid_start_time(child.pid) is None and not is_alive(child.pid)


def test_pid_start_time_reads_a_command_name_with_spaces_and_parens(tmp_path: Path) -> None:
    fields = " ".join(str(n) for n in range(3, 53))
    (tmp_path / "99").mkdir()
    (tmp_path / "99" / "stat").write_text(f"99 (odd) name (x)) {fields}\n")
    assert pid_start_time(99, proc=tmp_path) == 22
