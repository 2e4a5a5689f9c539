"""The JSON store's own files: registry.json, its backup, events.jsonl, logs/, archives.

What a store must do is the contract in test_registry.py (run on this store too);
here is how ``JsonRegistry`` does it on disk, and what it does when the disk goes
wrong: torn or hand-edited files, a corrupt registry and ``repair``, read-only
folders and mounts, the file layout and ``Codec``. Real files in tmp_path; the clock
is the only fake.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings

from taskfiles import config as config_module
from taskfiles.errors import ConflictError, RegistryError, StaleLeaseError
from taskfiles.registry import (
    Change,
    CycleRecord,
    Plan,
    RegistryEntry,
    Snapshot,
    eventlog,
    existing_registry,
    journal,
    open_registry,
)
from taskfiles.registry.document import Codec
from taskfiles.registry.jsonstore import JsonRegistry
from taskfiles.registry.repair import rebuild

from .conftest import REGISTRY_OPS, TEST_ACTOR, ManualClock, registry_op

ACTOR = TEST_ACTOR


@pytest.fixture
def reg(tmp_path: Path, clock: ManualClock) -> JsonRegistry:
    """The JSON store in tmp_path/registry (the contract tests get it through store_factory)."""
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


# -- refusals touch no file -------------------------------------------------------------------------


def _reuse(s: Snapshot) -> Plan[None]:
    return Plan((Change("a", RegistryEntry("a", "claimed", 1), "task.claimed"),), None)


REFUSED: list[tuple[str, Callable[[JsonRegistry, int], object], type[Exception]]] = [
    ("stale heartbeat", lambda r, n: r.heartbeat("fix-login", n, note="late", cost_usd=1.0), StaleLeaseError),
    ("stale log", lambda r, n: r.log("fix-login", "late output", lease=n), StaleLeaseError),
    ("stale finish", lambda r, n: r.finish("fix-login", n, 0), StaleLeaseError),
    ("stale note", lambda r, n: r.note("fix-login", "late", lease=n), StaleLeaseError),
    ("conflicting claim", lambda r, n: r.claim("fix-login", worker="w3"), ConflictError),
    ("conflicting stop", lambda r, n: r.stop("a"), ConflictError),
    ("lease reuse", lambda r, n: r.transact(_reuse), RegistryError),
]


@pytest.mark.parametrize(("call", "error"), [(c, e) for _, c, e in REFUSED], ids=[n for n, _, _ in REFUSED])
def test_a_refused_write_leaves_every_file_byte_for_byte(
    reg: JsonRegistry, call: Callable[[JsonRegistry, int], object], error: type[Exception]
) -> None:
    reg.claim("a", worker="w")
    reg.release("a")
    old = running(reg)
    reg.log("fix-login", "old worker output", lease=old)
    reg.stop("fix-login", reason="timed out")
    reg.retry("fix-login")
    reg.claim("fix-login", worker="w2")
    before = files(reg)
    with pytest.raises(error):
        call(reg, old)
    assert files(reg) == before


# -- the file layout ------------------------------------------------------------------------------------


def test_the_registry_file_is_plain_json_one_entry_a_line(reg: JsonRegistry) -> None:
    running(reg, "b")
    reg.claim("a", worker="w")
    reg.checkpoint()
    lines = reg.data.read_bytes().split(b"\n")
    journal_bytes = reg.events_path.stat().st_size
    assert lines[0].startswith(b'{"version":2,"seq":3,"updated_at":') and lines[2] == b'"entries":{'
    assert f'"journal":{journal_bytes},'.encode() in lines[0]
    assert lines[3].startswith(b'"b":{') and lines[4].startswith(b'"a":{') and lines[5] == b"}}"
    doc = json.loads(reg.data.read_bytes())
    assert doc["leases"] == {"a": 1, "b": 1} and doc["entries"]["b"]["state"] == "running"


def test_each_attempt_logs_to_its_own_file(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "first", lease=lease)
    reg.finish("fix-login", lease, 1)
    reg.retry("fix-login")
    second = reg.claim("fix-login", worker="w").lease
    reg.log_many("fix-login", ["second", "and more"], lease=second, source="stderr")
    folder = reg.root / "logs" / "fix-login"
    assert sorted(p.name for p in folder.iterdir()) == ["1.log", "2.log"]
    lines = [json.loads(line) for line in (folder / "2.log").read_text().splitlines()]
    assert [(line["message"], line["source"], line["lease"]) for line in lines] == [
        ("second", "stderr", 2),
        ("and more", "stderr", 2),
    ]


def test_the_journal_is_one_transaction_a_line_with_only_what_changed(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.heartbeat("fix-login", lease)  # the first heartbeat of an attempt is an event
    reg.heartbeat("fix-login", lease)  # the rest are silent writes
    reg.finish("fix-login", lease, 0)
    lines = [json.loads(line) for line in reg.events_path.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert [[c.get("type") for c in line["changes"]] for line in lines] == [
        ["task.claimed"],
        ["task.started"],
        ["task.heartbeat"],
        [None],
        ["task.exited"],
    ]
    assert lines[0]["actor"] == {"who": "tester", "host": "host-1", "pid": 4242}
    assert lines[3]["changes"][0]["set"] == {"heartbeats": 2}  # the clock did not move
    row: dict[str, object] = {}
    for line in lines:
        row = journal.patch(row, line["changes"][0])
    assert row == reg.get("fix-login").to_dict()
    assert [e.type for e in reg.events().events] == [
        "task.claimed",
        "task.started",
        "task.heartbeat",
        "task.exited",
    ]


def test_write_cycle_replaces_snapshot_json_and_a_torn_one_reads_as_none(reg: JsonRegistry) -> None:
    reg.write_cycle(CycleRecord(generated_at="2025-03-01T12:00:00.000000Z", counts={"ready": 1}))
    path = reg.root / "snapshot.json"
    assert json.loads(path.read_bytes())["counts"] == {"ready": 1}
    assert sorted(p.name for p in reg.root.iterdir()) == ["registry.lock", "snapshot.json"]
    path.write_text('{"generated_at": "2025-')
    assert reg.read_cycle() is None
    path.write_text("[1, 2]")
    assert reg.read_cycle() is None


def test_snapshot_json_keeps_the_task_rows_last_and_a_reader_without_rows_parses_only_before(
    reg: JsonRegistry,
) -> None:
    rows = {"a": {"bucket": "ready", "state": "ready"}, "b": {"bucket": "done", "state": "completed"}}
    record = CycleRecord(
        generated_at="2025-03-01T12:00:00.000000Z", host="h", tasks=rows, ready_since={"a": "x"}
    )
    reg.write_cycle(record)
    path = reg.root / "snapshot.json"
    head, rest = path.read_bytes().split(b"\n")
    assert rest.startswith(b'"tasks":') and json.loads(head + b"\n" + rest) == record.to_dict()
    path.write_bytes(head + b'\n"tasks":{"a": not JSON}}')  # the rows line is not read without rows
    assert reg.read_cycle(rows=False) == replace(record, tasks={})
    assert reg.read_cycle() is None
    for indent in (None, 1, 0):  # as earlier versions or a person wrote it
        path.write_text(json.dumps(record.to_dict(), indent=indent))
        assert reg.read_cycle() == record
        assert reg.read_cycle(rows=False) == replace(record, tasks={})


# -- torn and hand-edited files -------------------------------------------------------------------


def test_malformed_event_lines_are_skipped_with_their_line_numbers(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    with open(reg.events_path, "ab") as handle:
        handle.write(b'{"not json\n[1, 2]\n{"type": "task.note"}\n{"time": "2025-03-01T12:00:00Z", "ty')
    reg.note("a", "after the torn line")  # the torn last line is no line: the next write cuts it off
    page = reg.events()
    assert [e.type for e in page.events] == ["task.claimed", "task.note"]
    path = str(reg.events_path)
    assert page.warnings[0].startswith(f"{path}:2: not valid JSON")
    assert page.warnings[1] == f"{path}:3: not a JSON object; line skipped"
    assert page.warnings[2] == (
        f"{path}:4: not an event or a transaction (needs 'time' and 'type' or 'changes'); line skipped"
    )
    assert len(page.warnings) == 3
    assert b'"2025-03-01T12:00:00Z", "ty' not in reg.events_path.read_bytes()


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


def test_reading_a_missing_registry_creates_nothing(tmp_path: Path) -> None:
    reg = JsonRegistry(tmp_path / "nothing-yet")
    assert reg.entries() == {} and reg.events().events == () and reg.read_cycle() is None
    assert reg.repair().needed is False
    assert not reg.root.exists()  # neither reading nor a needless repair creates the folder


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
    """``chattr +i`` (Linux) or ``chflags uchg`` (macOS, the BSDs): no one may create or rename
    files in ``folder``."""
    on, off = (
        (["chattr", "+i"], ["chattr", "-i"])
        if shutil.which("chattr")
        else (["chflags", "uchg"], ["chflags", "nouchg"])
    )
    if shutil.which(on[0]) is None:
        pytest.skip("neither chattr nor chflags is installed")
    if subprocess.run([*on, str(folder)], capture_output=True, check=False).returncode:
        pytest.skip("this file system or user cannot set the immutable attribute")
    try:
        yield
    finally:
        subprocess.run([*off, str(folder)], check=True)


def test_a_read_only_registry_folder_fails_clearly_and_loses_nothing(reg: JsonRegistry) -> None:
    lease = running(reg)
    reg.log("fix-login", "line", lease=lease)
    before = files(reg)
    with immutable(reg.root), immutable(reg.events_path):
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
    reg.checkpoint()
    reg.checkpoint()  # the first snapshot is now the backup
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
    reg.backup.unlink(missing_ok=True)
    report = reg.repair()
    assert not report.from_backup
    assert any("rebuilt from the event log alone" in note for note in report.unrecovered)
    assert reg.entries() == want
    assert reg.snapshot().leases == {"fix-login": 1, "b": 1}


def test_repair_recovers_heartbeats_that_left_no_event(reg: JsonRegistry, clock: ManualClock) -> None:
    lease = running(reg)
    reg.checkpoint()
    reg.checkpoint()  # a backup as of here
    reg.heartbeat("fix-login", lease)  # first heartbeat: an event
    for _ in range(3):
        clock.advance(seconds=10)
        reg.heartbeat("fix-login", lease)  # silent, but in the journal
    reg.note("fix-login", "evented")
    clock.advance(seconds=10)
    reg.heartbeat("fix-login", lease)
    want = reg.entries()
    reg.data.write_text("{")
    report = reg.repair()
    assert report.from_backup and report.unrecovered == ()
    assert reg.entries() == want and want["fix-login"].heartbeats == 5


def test_repair_of_a_registry_from_before_the_journal_reports_the_heartbeats_it_lacks(
    reg: JsonRegistry,
) -> None:
    """Older versions wrote one event a line with the whole entry, and nothing for a plain
    heartbeat: those lines still replay, and the missing writes are named."""
    claimed = {"slug": "a", "state": "claimed", "lease": 1, "attempt": 1, "max_attempts": 3}
    running_row = {**claimed, "state": "running", "heartbeats": 1}
    noted = {**running_row, "progress": "half way", "heartbeats": 3}
    events: list[dict[str, object]] = [
        {"time": "2025-03-01T12:00:00Z", "type": "task.claimed", "slug": "a", "lease": 1, "seq": 1},
        {"time": "2025-03-01T12:00:01Z", "type": "task.started", "slug": "a", "lease": 1, "seq": 2},
        {"time": "2025-03-01T12:00:09Z", "type": "task.note", "slug": "a", "lease": 1, "seq": 5},
    ]  # seq 3 and 4: heartbeats that left no line
    for event, row in zip(events, (claimed, running_row, noted), strict=True):
        event["entry"] = row
    reg.root.mkdir()
    reg.events_path.write_text("".join(json.dumps(e) + "\n" for e in events))
    reg.data.write_text(json.dumps({"version": 1, "seq": 4, "entries": {"a": {}}, "leases": {}}))
    report = reg.repair()
    assert any("2 write(s) between the backup (write 0)" in note for note in report.unrecovered)
    assert reg.get("a").to_dict() == RegistryEntry.from_dict(noted).to_dict()
    assert reg.snapshot().leases == {"a": 1}


def test_a_missing_registry_json_is_read_from_a_whole_journal_and_refused_without_one(
    reg: JsonRegistry, clock: ManualClock
) -> None:
    reg.claim("a", worker="w")
    reg.release("a")
    reg.data.unlink()
    assert JsonRegistry(reg.root).get("a").state == "released"  # the journal holds every write
    assert reg.claim("a", worker="w").lease == 2
    reg.release("a")
    clock.advance(days=40)
    reg.gc(older_than_days=30)  # the journal's first lines are archived now
    reg.data.unlink()
    with pytest.raises(RegistryError, match=r"missing but .* exists.*would reuse leases"):
        JsonRegistry(reg.root).claim("a", worker="w")
    assert reg.repair().needed
    assert reg.claim("a", worker="w").lease == 3


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
    reg.checkpoint()
    reg.data.write_text(json.dumps(json.loads(reg.data.read_bytes()), indent=4))
    assert reg.heartbeat("b", 1).heartbeats == 1
    reg.checkpoint()
    assert reg.data.read_bytes().count(b"\n") == 6  # header, leases, "entries":{, two entries, }}
    assert set(reg.entries()) == {"a", "b"}


# -- gc on disk ----------------------------------------------------------------------------------------


def test_gc_removes_logs_folders_archives_events_and_leaves_the_hosts_files_alone(
    reg: JsonRegistry, clock: ManualClock
) -> None:
    old = running(reg, "old")
    reg.log("old", "old output", lease=old)
    for kind in ("prompts", "workers"):  # HostFiles' folders beside the store (test_hostfiles.py)
        (reg.root / kind / "old").mkdir(parents=True)
        (reg.root / kind / "old" / "1.out").write_text("host file")
    reg.finish("old", old, 0)
    reg.release("old")
    live = running(reg, "live")
    reg.log("live", "live output", lease=live)
    for slug in ("gone", "gone-lately"):  # entries pruned, logs left behind
        lease = running(reg, slug)
        reg.log(slug, "orphan output", lease=lease)
        reg.stop(slug)
        reg.prune(slug, reason="task file deleted")
    clock.advance(days=31)
    long_ago = (clock.now - timedelta(days=40)).timestamp()
    os.utime(reg.root / "logs" / "gone" / "1.log", (long_ago, long_ago))
    reg.note("live", "recent")
    report = reg.gc(older_than_days=30)
    assert report.logs_removed == ("logs/gone", "logs/old")  # released, or orphaned and untouched
    logs = reg.root / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["gone-lately", "live"]
    assert all((reg.root / kind / "old" / "1.out").is_file() for kind in ("prompts", "workers"))
    assert report.archive == str(reg.root / "events-20250401.jsonl.gz")
    archived = gzip.decompress(Path(report.archive).read_bytes()).splitlines()
    assert len(archived) == report.events_archived == 14
    assert {json.loads(line)["time"] for line in archived} == {"2025-03-01T12:00:00.000000Z"}
    kept = [e.type for e in reg.events().events]
    assert kept == ["task.note", "task.pruned"]
    reg.claim("next", worker="w")
    reg.release("next")
    clock.advance(seconds=1)
    assert reg.gc(0).events_archived == 4  # a second run the same day appends to the same archive
    assert len(gzip.decompress(Path(report.archive).read_bytes()).splitlines()) == 14 + 4


def test_the_backup_is_the_last_good_registry_json(reg: JsonRegistry) -> None:
    reg.claim("a", worker="w")
    assert not reg.backup.exists()  # nothing to keep yet
    first = reg.data.read_bytes()
    reg.claim("b", worker="w")
    assert reg.data.read_bytes() == first  # a write is a journal line; the snapshot waits
    reg.checkpoint()
    assert reg.backup.read_bytes() == first
    assert set(Codec().parse(reg.backup.read_bytes()).rows) == {"a"}


def test_repair_after_gc_still_finds_archived_history(reg: JsonRegistry, clock: ManualClock) -> None:
    lease = running(reg, "keep")
    clock.advance(days=40)
    reg.gc(older_than_days=30)
    want = reg.entries()
    reg.data.write_text("garbage")
    reg.backup.unlink()
    reg.repair()
    assert reg.entries() == want
    reg.heartbeat("keep", lease)


SILENT_FIELDS = ("heartbeats", "heartbeat_at", "updated_at", "cost_usd", "total_cost_usd")


def _loud(row: dict[str, object], collected: bool) -> dict[str, object]:
    """``row`` without what only silent writes set, once a gc may have dropped them."""
    return {k: v for k, v in row.items() if k not in SILENT_FIELDS} if collected else row


@example(ops=[("claim", "a"), ("release", "a"), ("gc", "a")])  # found by hypothesis: no entries left
@example(ops=[("claim", "a"), ("heartbeat", "a"), ("heartbeat", "a"), ("gc", "a")])  # found in CI
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=REGISTRY_OPS)
def test_two_writers_always_leave_a_file_json_reads_the_same(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str]]
) -> None:
    """Each writer keeps its own cache of the file; both must always agree with plain JSON,
    and with the history replayed: wholly until a gc (``gc(0)`` drops every silent write,
    such as a second heartbeat, which the checkpoint covers), then but for what only silent
    writes change."""
    root = tmp_path_factory.mktemp("reg") / "registry"
    writers = [JsonRegistry(root, actor=ACTOR), JsonRegistry(root, actor=ACTOR)]
    collected = False
    for n, (op, slug) in enumerate(ops):
        with contextlib.suppress(ConflictError):
            registry_op(writers[n % 2], op, slug)
        collected = collected or op == "gc"
        if not root.joinpath("registry.json").exists():
            continue
        lines, _ = eventlog.history_lines(root, root / "events.jsonl")
        replayed = rebuild(None, lines).document
        want = {s: RegistryEntry.from_dict(row).to_dict() for s, row in replayed.rows.items()}
        fresh = {s: e.to_dict() for s, e in JsonRegistry(root).entries().items()}
        assert {s: _loud(row, collected) for s, row in fresh.items()} == {
            s: _loud(row, collected) for s, row in want.items()
        }
        for reader in (*writers, JsonRegistry(root)):
            assert {s: e.to_dict() for s, e in reader.entries().items()} == fresh
            assert reader.snapshot().leases == replayed.leases
            kept = {s: e for s, e in reader.entries().items() if e.state != "released"}
            assert reader.unreleased() == kept  # read past the released lines unparsed
        if n % 3 == 0:
            writers[n % 2].checkpoint()
            data = root.joinpath("registry.json").read_bytes()
            plain = json.loads(data)
            assert Codec().parse(data).leases == plain["leases"] == replayed.leases
            assert plain["entries"] == fresh


# -- the front door ---------------------------------------------------------------------------------


def test_open_registry_follows_config_and_the_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = open_registry(config_module.load(repo))
    assert isinstance(reg, JsonRegistry) and reg.root == (repo / "registry").resolve()
    monkeypatch.setenv("TASKFILES_REGISTRY", str(tmp_path / "elsewhere"))
    moved = open_registry(config_module.load(repo))
    assert isinstance(moved, JsonRegistry) and moved.root == (tmp_path / "elsewhere").resolve()


def test_existing_registry_is_none_and_creates_nothing_until_something_was_recorded(repo: Path) -> None:
    config = config_module.load(repo)
    assert existing_registry(config) is None and not config.registry_dir.exists()
    open_registry(config).claim("a", worker="w")
    found = existing_registry(config)
    assert found is not None and set(found.entries()) == {"a"}
