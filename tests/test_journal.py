"""The journal is the commit point: a write is wholly there or not at all, on every error.

Faults are real where this machine allows: a file-size limit (``RLIMIT_FSIZE``,
the same short write and refusal a full disk gives) on a real ``task claim``
process, a journal that is a folder, and ``kill -9`` of writers at random
moments. Where an error cannot be made for real at one exact step (an fsync
failing, a write cut short between two calls), the step itself is made to fail:
every file operation of a write in turn, with the store and its files real.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskfiles import atomic
from taskfiles.errors import ConflictError, RegistryError
from taskfiles.registry import Change, Plan, RegistryEntry, Snapshot, eventlog, journal
from taskfiles.registry.jsonstore import JsonRegistry
from taskfiles.registry.repair import rebuild

from .conftest import TEST_ACTOR, ManualClock, commit_all, write_task

# -- what a line carries --------------------------------------------------------------------------

values = st.one_of(
    st.none(), st.integers(-5, 5), st.text(max_size=3), st.lists(st.integers(0, 3), max_size=4)
)
rows = st.dictionaries(st.sampled_from("abcdef"), values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(old=st.one_of(st.none(), rows), new=rows)
def test_a_change_turns_the_old_row_into_the_new_one(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    change = journal.diff(old, new)
    assert journal.patch(old, change) == new
    assert set(change.get("set", {})) <= set(new)  # only what is there is set


@settings(max_examples=100, deadline=None)
@given(
    window=st.lists(st.integers(), min_size=1, max_size=20),
    drop=st.integers(0, 5),
    added=st.lists(st.integers(), max_size=5),
)
def test_a_sliding_list_is_written_as_what_left_and_what_came(
    window: list[int], drop: int, added: list[int]
) -> None:
    new = window[drop:] + added
    change = journal.diff({"evidence": window}, {"evidence": new})
    assert journal.patch({"evidence": window}, change) == {"evidence": new}
    if new != window and drop < len(window):
        assert len(json.dumps(change)) <= len(json.dumps(added)) + 60  # never the whole list again


def test_a_line_costs_what_the_change_costs_not_the_entry_or_the_registry(tmp_path: Path) -> None:
    reg = JsonRegistry(tmp_path / "registry", actor=TEST_ACTOR)
    for n in range(300):
        reg.claim(f"t{n}", worker="w")
    lease = reg.claim("busy", worker="w").lease
    for n in range(150):  # past the 100 an entry keeps: the window slides
        reg.evidence("busy", f"pytest -k case_{n}", 0, "all passed", lease=lease)
    sizes = [len(line) for line in reg.events_path.read_bytes().splitlines()[-50:]]
    assert max(sizes) < 700, sizes  # one evidence item and its envelope, at 300 entries
    reg.heartbeat("busy", lease)
    reg.heartbeat("busy", lease)
    assert len(reg.events_path.read_bytes().splitlines()[-1]) < 300
    assert len(reg.get("busy").evidence) == 100


# -- every step of a write failing in turn --------------------------------------------------------

FILE_CALLS = ("open", "pwrite", "write", "fsync", "ftruncate", "replace", "link", "rename")


class Faults:
    """Make the ``at``-th file operation fail (counting from 1); a write is cut short first."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int, error: int) -> None:
        self.count, self.at, self.error, self.hit = 0, at, error, False
        for name in FILE_CALLS:
            real = getattr(os, name)
            monkeypatch.setattr(os, name, self._wrap(name, real))

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            if self.count == self.at:
                self.hit = True
                if name in ("pwrite", "write") and len(args[1]) > 1:  # a short write: half lands
                    half = memoryview(args[1])[: len(args[1]) // 2]
                    return real(args[0], half, *args[2:])
                raise OSError(self.error, os.strerror(self.error))
            if self.hit and self.count == self.at + 1 and name in ("pwrite", "write"):
                raise OSError(self.error, os.strerror(self.error))  # and the rest does not
            return real(*args, **kwargs)

        return call


def _two_entries(s: Snapshot) -> Plan[None]:
    """One transaction that changes two entries: both land or neither does."""
    changes = []
    for slug in ("left", "right"):
        entry = s.entries[slug]
        note = f"{entry.heartbeats + 1}"
        new = RegistryEntry.from_dict(
            {**entry.to_dict(), "heartbeats": entry.heartbeats + 1, "progress": note}
        )
        changes.append(Change(slug, new, "task.note", {"text": note}))
    return Plan(tuple(changes), None)


def state_of(root: Path) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """The registry as a new process reads it."""
    snap = JsonRegistry(root).snapshot()
    return {s: e.to_dict() for s, e in snap.entries.items()}, dict(snap.leases)


WRITES: dict[str, Callable[[JsonRegistry], object]] = {
    "claim": lambda r: r.claim("new", worker="w"),
    "two entries": lambda r: r.transact(_two_entries),
    "evidence": lambda r: r.evidence("left", "make test", 0, "ok", lease=1),
    "checkpoint": lambda r: r.checkpoint(),  # rewrites registry.json: the state stays as it is
}


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO, errno.EACCES], ids=["ENOSPC", "EIO", "EACCES"])
@pytest.mark.parametrize("write", list(WRITES))
def test_each_step_of_a_write_failing_leaves_the_state_before_or_after_and_a_retry_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: str, error: int
) -> None:
    step = 0
    while True:
        step += 1
        root = tmp_path / f"step-{step}"
        setup = JsonRegistry(root, actor=TEST_ACTOR)
        setup.claim("left", worker="w")
        setup.claim("right", worker="w")
        setup.checkpoint()
        setup.claim("other", worker="w")  # in the journal only, until a checkpoint
        before = state_of(root)
        with monkeypatch.context() as patched:
            faults = Faults(patched, step, error)
            try:
                WRITES[write](JsonRegistry(root, actor=TEST_ACTOR))
                failed = None
            except RegistryError as exc:
                failed = exc
        if not faults.hit:
            break  # every step has failed once
        now = state_of(root)
        if failed is None and write != "checkpoint":
            assert now != before  # acknowledged: it is there (a failed snapshot is rewritten later)
        else:
            assert now == before, f"step {step}: {failed}"  # refused: nothing of it is there
        if failed is not None:
            assert "cannot write registry" in str(failed) or "cannot read" in str(failed)
        lines = journal.lines(root.joinpath("events.jsonl").read_bytes())
        assert all(json.loads(line)["changes"] for line in lines)  # no torn or half line
        if failed:
            WRITES[write](JsonRegistry(root, actor=TEST_ACTOR))
        after = state_of(root)
        assert (after == before) == (write == "checkpoint")
        replayed = rebuild(None, eventlog.history_lines(root, root / "events.jsonl")[0]).document
        assert {s: RegistryEntry.from_dict(r).to_dict() for s, r in replayed.rows.items()} == after[0]
    assert step > 4  # the write really went through its steps (lock, open, write, fsync, ...)


# -- real refusals ---------------------------------------------------------------------------------


@pytest.fixture
def queue(repo: Path) -> Path:
    for slug in ("a", "b"):
        write_task(repo, f"{slug}.md", f"---\ntitle: Task {slug}\nstatus: ready\npriority: p1\n---\n")
    commit_all(repo)
    return repo


def task(root: Path, *args: str, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """``task -C root ARGS`` as a process, with a file-size limit if given (writes past it
    fail with EFBIG, and the one that crosses it is cut short: a full disk, for one process)."""

    def limited() -> None:
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [str(Path(sys.executable).with_name("task")), "-C", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, preexec_fn=limited, check=False)


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "registry.lock"
    }


def test_a_full_disk_refuses_the_claim_leaves_nothing_and_a_retry_claims(queue: Path) -> None:
    assert task(queue, "claim", "a").returncode == 0
    folder = queue / "registry"
    before = files_of(folder)
    size = (folder / "events.jsonl").stat().st_size
    refused = task(queue, "claim", "b", limit=size + 40)  # the line starts, and does not fit
    assert refused.returncode == 6, refused.stderr
    assert refused.stderr.startswith(f"error: cannot write registry at {folder}: no space left")
    assert files_of(folder) == before  # no claim, no event, no torn line
    assert task(queue, "claim", "b").returncode == 0
    assert {s: e.state for s, e in JsonRegistry(folder).entries().items()} == {"a": "claimed", "b": "claimed"}


def test_an_unwritable_journal_refuses_the_claim_and_keeps_the_registry(queue: Path) -> None:
    assert task(queue, "claim", "a").returncode == 0
    folder = queue / "registry"
    journal_path = folder / "events.jsonl"
    kept = journal_path.read_bytes()
    journal_path.unlink()
    journal_path.mkdir()  # cannot be opened for writing, or read
    refused = task(queue, "claim", "b")
    assert refused.returncode == 6 and str(journal_path) in refused.stderr, refused.stderr
    journal_path.rmdir()
    journal_path.write_bytes(kept)
    assert task(queue, "claim", "b").returncode == 0
    assert task(queue, "claim", "a").returncode == 4  # a's claim was never lost


# -- kill -9 ---------------------------------------------------------------------------------------


def _pair(left: str, right: str) -> Callable[[Snapshot], Plan[int]]:
    def pair(s: Snapshot) -> Plan[int]:  # one transaction, two entries, the same count on both
        count = s.entries[left].heartbeats + 1
        changes = []
        for slug in (left, right):
            row = {**s.entries[slug].to_dict(), "heartbeats": count, "progress": str(count)}
            changes.append(Change(slug, RegistryEntry.from_dict(row), "task.note", {"n": count}))
        return Plan(tuple(changes), count)

    return pair


def writer(root: Path, name: str) -> tuple[int, int]:
    """A forked process writing pairs until it is killed; it reports each acknowledged count
    on a pipe. Returns (pid, read end)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    try:  # the child: already imported, so it writes from its first millisecond
        os.close(read)
        reg, pair = JsonRegistry(root), _pair(f"{name}-l", f"{name}-r")
        os.write(write, b"0\n")
        while True:
            count = reg.transact(pair)
            os.write(write, f"{count}\n".encode())  # acknowledged
            if count % 7 == 0:
                reg.checkpoint()
    finally:
        os._exit(1)


def test_kill_9_at_random_moments_loses_no_acknowledged_write_and_halves_none(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    names = [f"w{i}" for i in range(4)]
    setup = JsonRegistry(root, actor=TEST_ACTOR)
    for name in names:
        setup.claim(f"{name}-l", worker=name)
        setup.claim(f"{name}-r", worker=name)
    rng = random.Random(9)
    acknowledged = dict.fromkeys(names, 0)
    for _ in range(50):  # 4 writers killed in each: 200 kills
        children = {name: writer(root, name) for name in names}
        with contextlib.ExitStack() as pipes:
            streams = {name: pipes.enter_context(os.fdopen(fd, "rb")) for name, (_, fd) in children.items()}
            for stream in streams.values():
                assert stream.readline() == b"0\n"  # writing now
            for pid, _ in children.values():
                time.sleep(rng.random() * 0.02)
                os.kill(pid, signal.SIGKILL)
            for name, (pid, _) in children.items():
                os.waitpid(pid, 0)
                printed = [int(line) for line in streams[name].read().split()]
                acknowledged[name] = max([acknowledged[name], *printed])
        entries = JsonRegistry(root).entries()
        for name in names:
            left, right = entries[f"{name}-l"], entries[f"{name}-r"]
            assert left.heartbeats == right.heartbeats, "a transaction was half applied"
            assert left.heartbeats >= acknowledged[name], "an acknowledged write was lost"
            acknowledged[name] = left.heartbeats
    data = (root / "events.jsonl").read_bytes()
    assert all(json.loads(line)["changes"] for line in journal.lines(data))
    assert sum(acknowledged.values()) > 100  # the writers did write between the kills


def _lines(path: Path) -> Iterator[bytes]:
    yield from journal.lines(path.read_bytes())


def test_a_reader_in_another_process_sees_each_write_once_it_returns(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A long-lived reader (the page, the heartbeat) reads only the new lines, and agrees
    with a fresh reader after every kind of write, a snapshot and a gc included."""
    root = tmp_path / "registry"
    writer, reader = JsonRegistry(root, clock=clock, actor=TEST_ACTOR), JsonRegistry(root, clock=clock)
    lease = writer.claim("a", worker="w").lease
    assert reader.get("a").state == "claimed"
    writer.start("a", lease, pid=os.getpid())
    writer.checkpoint()
    writer.heartbeat("a", lease, cost_usd=0.5)
    assert reader.get("a").cost_usd == 0.5
    writer.finish("a", lease, 0)
    writer.release("a")
    clock.advance(days=40)
    writer.gc(older_than_days=30)  # prunes a, rewrites the journal
    assert reader.find("a") is None and reader.snapshot().leases == {"a": 1}
    assert writer.claim("a", worker="w").lease == 2
    assert reader.get("a").lease == 2
    assert [json.loads(line)["seq"] for line in _lines(root / "events.jsonl")][-1] == reader.snapshot().seq


# -- what a reader must never believe ------------------------------------------------------------


def test_a_line_cut_back_after_a_failed_fsync_is_never_believed_by_a_reader_that_saw_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cut-back line was visible for a moment; a lock-free reader read it. The next
    write ends at the same offset with other bytes: the reader must notice, not build on it."""
    root = tmp_path / "registry"
    JsonRegistry(root, actor=TEST_ACTOR).claim("first", worker="w")
    reader = JsonRegistry(root)
    assert set(reader.entries()) == {"first"}
    real_fsync = os.fsync

    calls: list[int] = []

    def fails_after_a_reader_looked(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 1:  # the cut back's own fsync
            return real_fsync(fd)
        assert "aaaa" in reader.entries()  # the line is complete and visible now
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", fails_after_a_reader_looked)
        with pytest.raises(RegistryError, match="cannot write registry"):
            JsonRegistry(root, actor=TEST_ACTOR).claim("aaaa", worker="w")
    assert os.fsync is real_fsync
    JsonRegistry(root, actor=TEST_ACTOR).claim("bbbb", worker="w")  # the same length, same offset
    assert set(reader.entries()) == {"first", "bbbb"}
    with pytest.raises(ConflictError):
        reader.claim("bbbb", worker="w2")  # its lease 1 is live: never issued twice
    assert reader.claim("aaaa", worker="w2").lease == 1


def test_a_gc_cut_short_leaves_lines_twice_and_repair_counts_them_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    root = tmp_path / "registry"
    reg = JsonRegistry(root, clock=clock, actor=TEST_ACTOR)
    lease = reg.claim("a", worker="w").lease
    for n in range(3):
        reg.evidence("a", f"check {n}", 0, lease=lease)
    clock.advance(days=40)
    reg.note("a", "recent", lease=lease)
    want = reg.entries()
    real = atomic.atomic_write

    def journal_rewrite_fails(path: Path, data: bytes, **kwargs: Any) -> None:
        if path.name == "events.jsonl":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(atomic, "atomic_write", journal_rewrite_fails)
        with pytest.raises(RegistryError):
            reg.gc(older_than_days=30)  # archived, and still in the journal
    reg.gc(older_than_days=30)  # the same day: the same lines archived a second time
    (root / "registry.json").write_text("{")
    root.joinpath("registry.json.bak").unlink(missing_ok=True)
    report = JsonRegistry(root, clock=clock, actor=TEST_ACTOR).repair()
    assert report.needed
    assert JsonRegistry(root).entries() == want  # three evidence items, not six
    assert [e.type for e in JsonRegistry(root).events().events].count("task.evidence") <= 3


def test_an_archive_member_cut_short_costs_that_member_not_the_file(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    root.mkdir()
    archive = root / "events-20250101.jsonl.gz"
    first = journal.encode(1, "2025-01-01T00:00:00Z", TEST_ACTOR, [{"slug": "a", "type": "task.note"}])
    second = journal.encode(2, "2025-01-01T00:00:01Z", TEST_ACTOR, [{"slug": "a", "type": "task.note"}])
    torn = gzip.compress(second)
    archive.write_bytes(gzip.compress(first) + torn[: len(torn) // 2])
    lines, warnings = eventlog.history_lines(root, root / "events.jsonl")
    assert [line["seq"] for line in lines] == [1]
    assert warnings == [f"{archive}: a member cut short; the members before it are read"]


def test_repair_leaves_out_an_entry_whose_first_lines_are_lost_and_keeps_its_lease(
    tmp_path: Path, clock: ManualClock
) -> None:
    root = tmp_path / "registry"
    reg = JsonRegistry(root, clock=clock, actor=TEST_ACTOR)
    reg.claim("kept", worker="w")
    lease = reg.claim("torn", worker="w").lease
    clock.advance(days=40)
    reg.gc(older_than_days=30)  # the claims are archived
    reg.evidence("torn", "make test", 0, lease=lease)
    for archive in root.glob("events-*.jsonl.gz"):
        archive.unlink()  # lost, as repair warns they may be
    (root / "registry.json").write_text("{")
    root.joinpath("registry.json.bak").unlink(missing_ok=True)
    report = JsonRegistry(root, clock=clock, actor=TEST_ACTOR).repair()
    assert any("'torn' could not be rebuilt" in note for note in report.unrecovered)
    fresh = JsonRegistry(root, clock=clock, actor=TEST_ACTOR)
    assert fresh.find("torn") is None and fresh.snapshot().leases["torn"] == lease
    assert fresh.claim("torn", worker="w").lease == lease + 1  # never the lost lease again


def test_a_journal_with_a_transaction_missing_is_refused_not_read_past(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    reg = JsonRegistry(root, actor=TEST_ACTOR)
    lease = reg.claim("a", worker="w").lease
    reg.heartbeat("a", lease)
    reg.heartbeat("a", lease)  # a silent line
    reg.note("a", "after", lease=lease)
    lines = root.joinpath("events.jsonl").read_bytes().splitlines(keepends=True)
    root.joinpath("events.jsonl").write_bytes(b"".join(lines[:2] + lines[3:]))  # seq 3 gone
    with pytest.raises(RegistryError, match=r"does not continue .*registry\.json.*'task registry repair'"):
        JsonRegistry(root).entries()


def test_a_follower_loses_no_event_when_a_torn_tail_is_cut_off_and_written_over(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    reg = JsonRegistry(root, actor=TEST_ACTOR)
    reg.claim("a", worker="w")
    tail = eventlog.Tail(root / "events.jsonl")
    with open(root / "events.jsonl", "ab") as handle:
        handle.write(b'{"seq":2,"time":"2025-03-01T12:00:00Z","actor":{},"changes":[{"slug":"a","ty')
    assert tail.read() == []  # a write in progress is not a line
    reg.note("a", "the next write cuts the torn bytes off and writes here")
    reg.note("a", "and one more")
    assert [(e.type, e.seq) for e in tail.read()] == [("task.note", 2), ("task.note", 3)]


def test_a_follower_from_now_sees_nothing_old_again_after_gc_rewrites_the_journal(
    tmp_path: Path, clock: ManualClock
) -> None:
    root = tmp_path / "registry"
    reg = JsonRegistry(root, clock=clock, actor=TEST_ACTOR)
    reg.claim("old", worker="w")
    clock.advance(days=40)
    for n in range(3):
        reg.claim(f"t{n}", worker="w")
    tail = eventlog.Tail(root / "events.jsonl")  # from now on
    reg.note("t0", "new")
    reg.gc(older_than_days=30)  # archives the old claim: the journal is rewritten
    assert [(e.type, e.slug) for e in tail.read()] == [("task.note", "t0")]


def test_a_registry_json_of_the_older_format_is_rewritten_on_the_first_write(tmp_path: Path) -> None:
    """An older version still running reads registry.json alone: it must find it refused
    (format 2), never quietly behind the journal."""
    root = tmp_path / "registry"
    root.mkdir()
    row = {"slug": "a", "state": "claimed", "lease": 1, "attempt": 1, "max_attempts": 3}
    root.joinpath("registry.json").write_text(
        json.dumps({"version": 1, "seq": 1, "leases": {"a": 1}, "entries": {"a": row}})
    )
    JsonRegistry(root, actor=TEST_ACTOR).claim("b", worker="w")
    head = json.loads(root.joinpath("registry.json").read_bytes())
    assert head["version"] == 2 and set(head["entries"]) == {"a", "b"}
    assert head["journal"] == root.joinpath("events.jsonl").stat().st_size
