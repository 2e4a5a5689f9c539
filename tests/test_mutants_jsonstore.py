"""The JSON store's behaviours that mutation testing (issue 16) found untested.

Real files in tmp_path; the clock is the only fake. A log follower's waits are
bounded by count, not by seconds: ``Waits`` is the poll interval, and a follower
that waits more often than the attempt's end allows fails at once instead of
hanging the suite.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from taskfiles import atomic
from taskfiles.errors import RegistryError, UsageError
from taskfiles.registry import CycleRecord, Event, RegistryChange, RegistryEntry, eventlog
from taskfiles.registry.dump import Dump
from taskfiles.registry.interface import GcReport
from taskfiles.registry.jsonstore import JsonRegistry, _before, _released_before, _scope, _wanted
from taskfiles.registry.repair import RepairReport
from taskfiles.registry.rollup import Removed

from .conftest import TEST_ACTOR, ManualClock, take

T0 = "2025-03-01T12:00:00.000000Z"  # the ManualClock's start, as the registry writes it


@pytest.fixture
def reg(tmp_path: Path, clock: ManualClock) -> JsonRegistry:
    return JsonRegistry(tmp_path / "registry", clock=clock, actor=TEST_ACTOR)


def running(reg: JsonRegistry, slug: str = "fix-login") -> int:
    lease = reg.claim(slug, worker="w1").lease
    reg.start(slug, lease, pid=os.getpid(), worktree=f".worktrees/{slug}", branch=f"task/{slug}")
    return lease


class Waits:
    """A poll interval of 0 s that counts the follower's waits (``time.sleep`` reads it
    through ``__index__``) and fails the test on the wait past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def __index__(self) -> int:
        self.count += 1
        if self.count > self.limit:
            raise AssertionError(f"the follower waited past its limit of {self.limit}: it should have ended")
        return 0

    @property
    def poll(self) -> float:
        return cast(float, self)


def test_a_follower_ends_within_one_wait_of_the_attempts_end(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "one", lease=lease)
    waits = Waits(limit=1)
    follower = reg.follow_logs("fix-login", poll=waits.poll)
    assert next(follower).message == "one"  # already written: no wait
    reg.log("fix-login", "two", lease=lease)
    reg.finish("fix-login", lease, 0)
    assert [r.message for r in follower] == ["two"]  # one wait, then the end is seen
    assert waits.count == 1


def test_a_follower_of_an_attempt_that_is_over_reads_once_and_never_waits(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "only", lease=lease)
    reg.finish("fix-login", lease, 1)
    waits = Waits(limit=0)
    assert [r.message for r in reg.follow_logs("fix-login", poll=waits.poll)] == ["only"]
    assert waits.count == 0


# -- log stats, dump and load --------------------------------------------------------------------


def test_the_stats_of_an_attempt_that_logged_nothing_count_no_bytes(reg: JsonRegistry) -> None:
    reg.claim("quiet", worker="w1")
    stats = reg.log_stats("quiet")
    assert (stats.attempt, stats.total, stats.bytes) == (1, 0, 0)


def _copied(reg: JsonRegistry, entries: dict[str, RegistryEntry], leases: dict[str, int]) -> None:
    rows = {slug: entry.to_dict() for slug, entry in entries.items()}
    reg.load(Dump(rows, leases, (), seq=7))


def test_a_dump_gives_each_entry_the_highest_lease_of_its_history_and_its_own(reg: JsonRegistry) -> None:
    entries = {"a": RegistryEntry("a", "released", 3), "b": RegistryEntry("b", "released", 2)}
    _copied(reg, entries, {"a": 5})  # 'b' from a registry that kept no lease history
    assert dict(reg.dump().leases) == {"a": 5, "b": 2}


def test_a_loaded_snapshot_names_the_time_and_the_journal_it_covers(reg: JsonRegistry) -> None:
    _copied(reg, {"a": RegistryEntry("a", "released", 1)}, {"a": 1})
    written = json.loads(reg.data.read_bytes())
    assert (written["seq"], written["updated_at"], written["journal"]) == (7, T0, 0)


@pytest.mark.parametrize(
    "held", [["registry.json"], ["events.jsonl"], ["logs"], ["rollups.json"], ["registry.json", "logs"]]
)
def test_load_refuses_a_folder_that_holds_any_part_of_a_registry(reg: JsonRegistry, held: list[str]) -> None:
    reg.root.mkdir()
    for name in held:
        (reg.root / name).mkdir() if name == "logs" else (reg.root / name).write_text("{}")
    with pytest.raises(RegistryError) as refused:
        reg.load(Dump({}, {}, ()))
    listed = ", ".join(held)
    assert str(refused.value) == f"{reg.root} already holds a registry ({listed}); copy into an empty folder"
    assert sorted(p.name for p in reg.root.iterdir()) == sorted({*held, "registry.lock"})


# -- gc's log retention --------------------------------------------------------------------------


def _log_file(reg: JsonRegistry, name: str, content: bytes, mtime: datetime) -> None:
    path = reg.root / "logs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def test_log_retention_keeps_a_log_whose_last_line_is_exactly_as_old_as_the_cutoff(
    reg: JsonRegistry, clock: ManualClock
) -> None:
    lease = running(reg, "edge")
    reg.log("edge", "at the cutoff", lease=lease)
    reg.finish("edge", lease, 0)
    clock.advance(days=2)
    assert reg.gc(30, log_retention_days=2).logs_removed == ()
    clock.advance(seconds=1)
    assert reg.gc(30, log_retention_days=2).logs_removed == ("logs/edge/1.log",)


def test_log_retention_dates_a_log_without_a_readable_line_by_its_file(
    reg: JsonRegistry, clock: ManualClock
) -> None:
    reg.claim("live", worker="w1")  # the folder exists, and gc has an entry to keep
    cutoff = clock.now - timedelta(days=1)
    _log_file(reg, "s/1.log", b"not json\n", cutoff)  # kept: not older than the cutoff
    _log_file(reg, "s/2.log", b"not json\n", cutoff - timedelta(seconds=1))
    _log_file(reg, "s/3.log", b"", cutoff + timedelta(seconds=1))
    assert reg.gc(30, log_retention_days=1).logs_removed == ("logs/s/2.log",)


def test_a_copy_keeps_every_event_as_it_was_and_every_attempts_log(
    reg: JsonRegistry, tmp_path: Path, clock: ManualClock
) -> None:
    lease = running(reg, "a")
    reg.log("a", "first", lease=lease)
    reg.finish("a", lease, 1)
    reg.retry("a")
    again = reg.claim("a", worker="w1").lease
    reg.log("a", "second", lease=again)
    reg.claim("gone", worker="w1")
    reg.release("gone")
    reg.prune("gone", reason="its file was deleted")
    copy = JsonRegistry(tmp_path / "copy", clock=clock, actor=TEST_ACTOR)
    copy.load(reg.dump())
    assert [e.to_dict() for e in copy.events().events] == [e.to_dict() for e in reg.events().events]
    assert any(e.removed for e in copy.events().events) and any(e.lease == 2 for e in copy.events().events)
    assert [[r.message for r in copy.logs("a", attempt=n).records] for n in (1, 2)] == [["first"], ["second"]]


def test_a_copy_with_a_malformed_rollup_is_refused_before_anything_is_written(reg: JsonRegistry) -> None:
    with pytest.raises(RegistryError, match=r"^the registry copied holds a malformed rollup: .+"):
        reg.load(Dump({}, {}, (), rollup={"runs": [{"seq": "not a number"}]}))
    assert sorted(p.name for p in reg.root.iterdir()) == ["registry.lock"]


# -- a corrupt registry.json ---------------------------------------------------------------------


def test_a_corrupt_registry_names_its_backup_and_when_it_was_saved(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w1")
    reg.checkpoint()
    reg.checkpoint()  # the first snapshot is now the backup
    saved = datetime(2025, 2, 1, 8, 30, tzinfo=UTC)
    os.utime(reg.backup, (saved.timestamp(), saved.timestamp()))
    reg.data.write_bytes(b"{")
    with pytest.raises(RegistryError) as caught:
        reg.entries()
    problem = str(caught.value).partition(": ")[2].partition(". The file")[0]
    assert str(caught.value) == (
        f"{reg.data}: {problem}. The file was left untouched; the last good copy is {reg.backup} "
        "(saved 2025-02-01T08:30:00.000000Z); run 'task registry repair' to rebuild the registry "
        "from it and events.jsonl"
    )
    reg.backup.unlink()
    with pytest.raises(RegistryError) as caught:
        reg.entries()
    assert f"untouched; there is no backup ({reg.backup} is missing); run 'task registry repair'" in str(
        caught.value
    )


def test_repair_records_what_it_did_in_the_next_transaction(reg: JsonRegistry, clock: ManualClock) -> None:
    lease = running(reg, "a")
    reg.heartbeat("a", lease, note="busy")
    reg.checkpoint()
    reg.checkpoint()  # the first snapshot is now the backup
    seq, backup = reg.snapshot().seq, reg.backup.read_bytes()
    reg.data.write_bytes(b"{")
    clock.advance(hours=1)
    report = reg.repair()
    written = json.loads(reg.data.read_bytes())
    assert (written["seq"], written["updated_at"]) == (seq + 1, "2025-03-01T13:00:00.000000Z")
    assert reg.backup.read_bytes() == backup  # still the last good copy from before
    repaired = reg.events().events[-1]
    assert (repaired.type, repaired.seq, reg.snapshot().seq) == ("registry.repaired", seq + 1, seq + 1)
    assert repaired.details == {
        "problem": report.problem,
        "from_backup": True,
        "replayed": report.events_replayed,
    }
    assert report.moved_aside == str(reg.root / "registry.json.corrupt-2025-03-01T130000.000000Z")
    assert Path(report.moved_aside).read_bytes() == b"{"


def test_repair_keeps_what_only_the_backup_holds_once_gc_dropped_silent_lines(
    reg: JsonRegistry, clock: ManualClock
) -> None:
    lease = running(reg, "a")
    reg.heartbeat("a", lease)
    clock.advance(minutes=5)
    reg.heartbeat("a", lease, cost_usd=0.5)  # a second heartbeat records no event
    reg.gc(0)  # archives every event and drops the journal lines that record none
    want = reg.entries()
    reg.data.write_bytes(b"{")
    reg.repair()
    assert reg.entries() == want
    line = json.loads(reg.events_path.read_bytes().splitlines()[-1])
    assert [sorted(change) for change in line["changes"]] == [["details", "lease", "slug", "type"]]


def test_repair_of_a_readable_registry_with_a_malformed_entry_keeps_its_leases(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    doc = json.loads(reg.data.read_bytes())
    doc["entries"]["a"]["heartbeats"] = "many"
    doc["leases"]["z"] = 9  # issued, as far as this file knows: never to be issued again
    reg.data.write_text(json.dumps(doc, indent=2))
    report = reg.repair()
    assert (report.needed, report.registry, report.warnings) == (True, str(reg.data), ())
    assert reg.claim("z", worker="w").lease == 10


def test_repair_of_a_missing_registry_moves_nothing_aside_and_reports_unreadable_lines(
    reg: JsonRegistry,
) -> None:
    reg.claim("a", worker="w")
    reg.checkpoint()
    reg.checkpoint()
    with reg.events_path.open("ab") as journal_file:
        journal_file.write(b"not json\n")
    reg.data.unlink()
    report = reg.repair()
    assert (report.needed, report.moved_aside, report.from_backup) == (True, None, True)
    assert len(report.warnings) == 1 and "events.jsonl" in report.warnings[0]
    assert set(reg.entries()) == {"a"}


# -- what a changed path means to the live feed --------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "scope"),
    [
        ("registry.json", ("registry", None)),
        ("events.jsonl", ("registry", None)),
        ("snapshot.json", ("cycle", None)),
        ("logs", ("logs", None)),
        ("logs/fix-login", ("logs", "fix-login")),
        ("logs/fix-login/2.log", ("logs", "fix-login")),
        ("logs/fix-login/2.log.tmp", None),
        ("logs/fix-login/2.lock", None),
        ("logs/fix-login/.#2.log", None),
        ("registry.lock", None),
        ("registry.json.tmp", None),
        ("rollups.json", None),
        ("old/registry.json", None),
        ("registry.json/x", None),  # only the folder's own files
        ("", None),
    ],
)
def test_a_changed_path_touches_the_registry_the_cycle_or_a_slugs_logs(
    tmp_path: Path, rel: str, scope: tuple[str, str | None] | None
) -> None:
    assert _scope(tmp_path, str(tmp_path / rel)) == scope


def test_a_path_outside_the_folder_is_not_the_stores(tmp_path: Path) -> None:
    assert _scope(tmp_path / "registry", str(tmp_path / "registry.json")) is None


# -- files that cannot be read -------------------------------------------------------------------


def test_an_unreadable_registry_file_names_itself_and_what_to_do(reg: JsonRegistry) -> None:
    reg.root.mkdir()
    reg.data.mkdir()
    with pytest.raises(RegistryError) as caught:
        reg.entries()
    assert str(caught.value) == (
        f"cannot read {reg.data}: Is a directory; check the folder, or set TASKFILES_REGISTRY or registry_dir"
    )


def test_an_unreadable_event_log_or_attempt_log_names_itself(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    (reg.root / "logs" / "a" / "1.log").mkdir(parents=True)
    with pytest.raises(RegistryError) as caught:
        reg.logs("a")
    assert str(caught.value) == "cannot read the log of 'a': Is a directory"
    reg.events_path.unlink()
    reg.events_path.mkdir()
    with pytest.raises(RegistryError) as caught:
        reg.events()
    assert str(caught.value) == f"cannot read {reg.events_path}: Is a directory"


def test_rollups_are_empty_before_gc_and_a_malformed_file_says_what_to_do(reg: JsonRegistry) -> None:
    assert len(reg.rollups()) == 0
    reg.root.mkdir()
    for text, why in [("[]", "not a JSON object"), ("{", "Expecting property name")]:
        reg.rollups_path.write_text(text)
        with pytest.raises(RegistryError) as caught:
            reg.rollups()
        message = str(caught.value)
        assert message.startswith(f"{reg.rollups_path} cannot be read ({why}")
        assert message.endswith(
            "); it holds the run history gc folded for 'task metrics': restore it from a backup, "
            "or move it aside to start that history over"
        )


def _refusal_without_registry_json(reg: JsonRegistry) -> str:
    """What a fresh reader says once registry.json is deleted."""
    reg.data.unlink()
    with pytest.raises(RegistryError) as caught:
        JsonRegistry(reg.root).entries()
    return str(caught.value)


def test_a_missing_registry_json_with_a_journal_not_from_the_start_is_refused(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    reg.claim("b", worker="w")
    rest = reg.events_path.read_bytes().split(b"\n", 1)[1]
    reg.events_path.write_bytes(rest)
    assert _refusal_without_registry_json(reg) == (
        f"{reg.data} is missing but events.jsonl holds history; run 'task registry repair' to rebuild it "
        "(starting empty would reuse leases)"
    )


def test_a_missing_registry_json_names_every_copy_that_holds_history(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    reg.checkpoint()
    reg.checkpoint()
    (reg.root / "events-2025-01.jsonl.gz").write_bytes(b"")
    assert _refusal_without_registry_json(reg) == (
        f"{reg.data} is missing but registry.json.bak, events-2025-01.jsonl.gz exists; run 'task registry "
        "repair' to rebuild it (starting empty would reuse leases)"
    )


# -- which events and entries a read or gc takes ---------------------------------------------------


def _event(time: str, slug: str | None = "a") -> Event:
    return Event(time, "task.note", slug, None, TEST_ACTOR)


NOON = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "slug", "since", "wanted"),
    [
        (_event(T0), None, None, True),
        (_event("not a time"), None, None, True),
        (_event("not a time"), None, NOON, False),
        (_event(T0), "a", NOON, True),
        (_event(T0), "b", None, False),
        (_event(T0, slug=None), "a", None, False),
        (_event(T0), None, NOON.replace(tzinfo=None), True),  # a naive time is UTC
        (_event(T0), None, NOON.replace(tzinfo=None) + timedelta(microseconds=1), False),
    ],
)
def test_an_event_is_read_for_its_slug_from_since_on(
    event: Event, slug: str | None, since: datetime | None, wanted: bool
) -> None:
    assert _wanted(event, slug, since) is wanted


@pytest.mark.parametrize(
    ("time", "folded"), [("2025-03-01T11:59:59.999999Z", True), (T0, False), ("not a time", False)]
)
def test_gc_folds_the_events_before_its_cutoff_and_none_it_cannot_date(time: str, folded: bool) -> None:
    assert _before(_event(time), NOON) is folded


def test_gc_prunes_the_entries_released_before_its_cutoff_in_slug_order() -> None:
    old = "2025-03-01T11:00:00.000000Z"
    rows: dict[str, dict[str, Any]] = {
        "z": {"state": "released", "updated_at": old},
        "b": {"state": "released", "updated_at": T0},  # at the cutoff: not before it
        "c": {"state": "claimed", "updated_at": old},
        "d": {"state": "released", "updated_at": None},
        "a": {"state": "released", "updated_at": old},
    }
    assert _released_before(rows, NOON) == ["a", "z"]


# -- why a write failed ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (OSError(errno.EROFS, "Read-only file system"), "read-only or not permitted (Read-only file system)"),
        (OSError(errno.EACCES, "Permission denied"), "read-only or not permitted (Permission denied)"),
        (OSError(errno.EPERM, "Not permitted"), "read-only or not permitted (Not permitted)"),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left (No space left on device)"),
        (OSError(errno.EFBIG, "File too large"), "no space left (File too large)"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "no space left (Disk quota exceeded)"),
        (OSError(errno.EIO, "Input/output error", "events.jsonl"), "Input/output error (events.jsonl)"),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    ],
)
def test_a_failed_write_says_why_and_what_to_do(reg: JsonRegistry, error: OSError, why: str) -> None:
    assert str(reg._write_error(error)) == (
        f"cannot write registry at {reg.root}: {why}; free space or set TASKFILES_REGISTRY or "
        "registry_dir to a writable folder"
    )


# -- one batch of the live feed --------------------------------------------------------------------


def test_a_batch_of_log_and_cycle_paths_reads_no_events(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    tail = eventlog.Tail(reg.events_path, from_start=True)
    names = ("logs/b/1.log", "snapshot.json", "registry.lock", "logs/c/1.log.tmp")
    paths = {str(reg.root / name) for name in names}
    change = reg._change(paths, tail, appeared=False, first=False)
    assert (change.scopes, change.slugs) == (frozenset({"logs", "cycle"}), frozenset({"b"}))
    assert change.events == ()
    assert [e.slug for e in tail.read()] == ["a"]  # still unread


@pytest.mark.parametrize(
    ("paths", "appeared", "first"),
    [({"events.jsonl"}, False, False), (set(), True, False), (set(), False, True)],
    ids=["journal-changed", "folder-appeared", "first-batch"],
)
def test_a_batch_reads_the_new_events_when_the_journal_changed_the_folder_appeared_or_first(
    reg: JsonRegistry, paths: set[str], appeared: bool, first: bool
) -> None:
    reg.claim("a", worker="w")
    tail = eventlog.Tail(reg.events_path, from_start=True)
    change = reg._change({str(reg.root / p) for p in paths}, tail, appeared, first)
    assert (change.scopes, change.slugs) == (frozenset({"registry"}), frozenset({"a"}))
    assert [e.type for e in change.events] == ["task.claimed"]


def test_a_first_batch_with_nothing_new_touches_nothing(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    tail = eventlog.Tail(reg.events_path)  # from now on
    change = reg._change(set(), tail, appeared=False, first=True)
    assert (change.scopes, change.slugs, change.events) == (frozenset(), frozenset(), ())


# -- gc's defaults and the rollup it folds first -------------------------------------------------


def test_gc_by_default_prunes_what_was_released_over_30_days_ago(
    reg: JsonRegistry, clock: ManualClock
) -> None:
    reg.claim("a", worker="w")
    reg.release("a")
    clock.advance(days=30, seconds=1)
    assert reg.gc().entries_removed == ("a",)


def _ran(reg: JsonRegistry, slug: str, worker: str = "w") -> None:
    lease = reg.claim(slug, worker=worker).lease
    reg.start(slug, lease, pid=os.getpid(), worktree="w", branch="b")
    reg.heartbeat(slug, lease, cost_usd=0.25)
    reg.finish(slug, lease, 0)
    reg.release(slug)


def test_gc_folds_runs_and_removed_entries_into_a_compact_utf8_rollup(
    reg: JsonRegistry, clock: ManualClock
) -> None:
    _ran(reg, "a", worker="wörker")
    clock.advance(days=40)
    report = reg.gc(30)
    rolled = reg.rollups()
    assert report.rolled_up == len(rolled) == 2
    assert [(r.slug, r.ok) for r in rolled.runs] == [("a", True)]
    assert rolled.removed == (Removed("a", 1, "2025-04-10T12:00:00.000000Z", 0.25),)
    data = reg.rollups_path.read_bytes()
    assert "wörker".encode() in data and b", " not in data and b'": ' not in data


def test_gc_writes_an_empty_rollup_the_first_time_and_leaves_it_alone_with_nothing_new(
    reg: JsonRegistry,
) -> None:
    reg.claim("a", worker="w")
    assert reg.gc(30) == GcReport((), (), 0, 0, None, (), rolled_up=0)
    assert len(reg.rollups()) == 0 and reg.rollups_path.exists()
    before = reg.rollups_path.stat().st_ino
    reg.gc(30)
    assert reg.rollups_path.stat().st_ino == before


def test_a_first_fold_reads_the_archives_of_a_gc_from_before_rollups(
    reg: JsonRegistry, clock: ManualClock
) -> None:
    _ran(reg, "a")
    clock.advance(days=40)
    reg.gc(30)  # archives the run's events
    reg.rollups_path.unlink()  # as a version before rollups left it
    reg.gc(30)
    assert [r.slug for r in reg.rollups().runs] == ["a"]


# -- the lock a write takes ----------------------------------------------------------------------


def _each(*calls: Callable[[], object]) -> Iterator[object]:
    for call in calls:
        yield call()


def test_log_lines_and_cycle_records_share_the_lock_with_other_loggers(reg: JsonRegistry) -> None:
    lease = running(reg, "a")
    record = CycleRecord(generated_at=T0, counts={"ready": 1})
    with atomic.locked(reg.lock, shared=True):  # another worker, appending its log line
        # Under an exclusive lock these would wait for it: take() fails instead of hanging.
        written = take(_each(lambda: reg.log("a", "x", lease=lease), lambda: reg.write_cycle(record)), 2)
    assert written == [1, None]
    assert [r.message for r in reg.logs("a").records] == ["x"] and reg.read_cycle() == record


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ({"older_than_days": -1}, "older_than_days must not be negative, not -1"),
        ({"log_retention_days": -0.5}, "log_retention_days must not be negative, not -0.5"),
    ],
)
def test_gc_refuses_negative_days_naming_the_value(
    reg: JsonRegistry, days: dict[str, float], message: str
) -> None:
    with pytest.raises(UsageError) as refused:
        reg.gc(**days)
    assert str(refused.value) == message


def test_gc_reports_the_journal_lines_it_could_not_read(reg: JsonRegistry, clock: ManualClock) -> None:
    reg.claim("a", worker="w")
    with reg.events_path.open("ab") as journal_file:
        journal_file.write(b"not json\n")
    clock.advance(days=40)
    report = reg.gc(30)
    assert len(report.warnings) == 1 and "events.jsonl" in report.warnings[0]


def _ignored_first(root: Path) -> tuple[set[str], str]:
    """A log path and a path the feed ignores, in a set that yields the ignored one first (a
    set's order is its hashes' order: try names until it does), and the log's slug."""
    for n in range(64):
        slug, ignored = f"s{n}", str(root / f"logs/a/{n}.log.tmp")
        paths = {str(root / "logs" / slug / "1.log"), ignored}
        if next(iter(paths)) == ignored:
            return paths, slug
    raise AssertionError("no ignored path came first")


def test_a_batch_goes_on_past_a_path_it_ignores(reg: JsonRegistry) -> None:
    tail = eventlog.Tail(reg.events_path)
    paths, slug = _ignored_first(reg.root)
    change = reg._change(paths, tail, False, False)
    assert (change.scopes, change.slugs) == (frozenset({"logs"}), frozenset({slug}))


# -- a live feed started before the store exists -------------------------------------------------


class _Stop(threading.Event):
    """The feed's stop event, which also says when the feed first waited for the folder."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.set()
        return super().wait(timeout)


def _first_change(
    feed: Iterator[RegistryChange], ready: threading.Event, write: Callable[[], object]
) -> list[RegistryChange]:
    """The feed's first change, read in a thread while ``write`` runs once the feed is ``ready``
    (empty when none came in 30 s: take fails in the thread instead of hanging)."""
    first: list[RegistryChange] = []
    reader = threading.Thread(target=lambda: first.extend(take(feed, 1, timeout=30)), daemon=True)
    reader.start()
    assert ready.wait(30), "the feed never got ready"
    write()
    reader.join(40)
    return first


def test_a_feed_started_before_the_folder_exists_says_the_registry_came_into_being(reg: JsonRegistry) -> None:
    stop = _Stop()
    feed = reg.watch(stop)
    first = _first_change(feed, stop.waited, reg.checkpoint)  # the folder, registry.json, no event
    assert [(c.scopes, c.slugs, c.events) for c in first] == [(frozenset({"registry"}), frozenset(), ())]
    reg.write_cycle(CycleRecord(generated_at=T0))
    (then,) = take(feed, 1, timeout=30)
    stop.set()
    assert (then.scopes, then.events) == (frozenset({"cycle"}), ())  # only the first batch says more


def test_repair_of_a_store_never_written_or_readable_is_not_needed_and_names_the_file(
    reg: JsonRegistry,
) -> None:
    assert reg.repair() == RepairReport(needed=False, registry=str(reg.data))
    assert not reg.root.exists()
    reg.claim("a", worker="w")
    assert reg.repair() == RepairReport(needed=False, registry=str(reg.data))


def test_the_unreleased_entries_of_a_malformed_registry_are_refused_naming_it(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    doc = json.loads(reg.data.read_bytes())
    doc["entries"]["a"]["heartbeats"] = "many"
    reg.data.write_text(json.dumps(doc, indent=2))
    with pytest.raises(RegistryError, match=r"registry\.json: registry entry 'a' is malformed"):
        JsonRegistry(reg.root).unreleased()


def test_a_reader_that_knew_the_journal_refuses_a_transaction_missing_after_it(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    assert set(reg.entries()) == {"a"}  # read: this handle goes on from here
    last = json.loads(reg.events_path.read_bytes().splitlines()[-1])
    last["seq"] += 2  # the one between is missing
    with reg.events_path.open("ab") as journal_file:
        journal_file.write(json.dumps(last, separators=(",", ":")).encode() + b"\n")
    with pytest.raises(RegistryError, match=r"does not continue .*transactions after it are missing"):
        reg.entries()


def test_a_snapshot_knows_which_slugs_it_holds(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    entries = reg.snapshot().entries
    assert "a" in entries and "b" not in entries


class _Watched(_Stop):
    """A stop event that also says when watchfiles is polling it: its watch is in place."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0
        self.watching = threading.Event()

    def is_set(self) -> bool:
        self.checks += 1
        if self.checks > 1:  # the first is the feed's own loop; then watchfiles' while it waits
            self.watching.set()
        return super().is_set()


def test_a_feed_of_a_folder_that_exists_says_only_what_changed_from_the_first_batch(
    reg: JsonRegistry,
) -> None:
    reg.claim("a", worker="w")
    stop = _Watched()
    feed = reg.watch(stop)
    first = _first_change(feed, stop.watching, lambda: reg.write_cycle(CycleRecord(generated_at=T0)))
    stop.set()
    assert [(c.scopes, c.events) for c in first] == [(frozenset({"cycle"}), ())]


def test_a_checkpoint_names_the_time_of_the_last_write(reg: JsonRegistry, clock: ManualClock) -> None:
    reg.claim("a", worker="w")
    clock.advance(hours=1)
    reg.claim("b", worker="w")
    clock.advance(hours=1)
    reg.checkpoint()
    written = json.loads(reg.data.read_bytes())
    assert (written["seq"], written["updated_at"]) == (2, "2025-03-01T13:00:00.000000Z")


def test_a_write_whose_snapshot_cannot_be_written_is_kept_in_the_journal(reg: JsonRegistry) -> None:
    (reg.root / "registry.json.tmp" / "in-the-way").mkdir(parents=True)  # the snapshot's temporary
    assert reg.claim("a", worker="w").lease == 1  # committed: the snapshot waits for a later write
    assert not reg.data.exists()
    assert JsonRegistry(reg.root).get("a").state == "claimed"


def test_a_killed_writers_temporary_snapshot_is_reused_not_left_beside_it(reg: JsonRegistry) -> None:
    reg.root.mkdir()
    (reg.root / "registry.json.tmp").write_bytes(b"half a snapshot")
    reg.claim("a", worker="w")
    assert sorted(p.name for p in reg.root.iterdir()) == ["events.jsonl", "registry.json", "registry.lock"]
