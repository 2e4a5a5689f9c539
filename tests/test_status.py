"""``status.observe`` and the readers that stand on it: ``task next`` with and without
``--claim``, ``task status`` (text, JSON, filters, staleness) and ``/api/status``.

Real git repositories in tmp_path, the real registry, the CLI in process and the
app through starlette's TestClient (a real HTTP client against the ASGI app).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from taskfiles import config as config_module
from taskfiles.cli import app
from taskfiles.registry import CycleRecord, Registry, open_registry
from taskfiles.registry.records import format_time
from taskfiles.serve import create_app
from taskfiles.status import observe, planning_source

from .conftest import ManualClock, commit_all, git, write_task

runner = CliRunner()


def invoke(root: Path, *args: str) -> Result:
    return runner.invoke(app, ["-C", str(root), *args])


def run_json(root: Path, *args: str) -> Any:
    result = invoke(root, *args, "--json")
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    return json.loads(result.stdout)


def _client(root: Path) -> TestClient:
    """A loopback browser on the status page of ``root``."""
    app_ = create_app(config_module.load(root), watch=False, max_age=0)
    return TestClient(app_, base_url="http://127.0.0.1:8005", client=("127.0.0.1", 50000))


def registry_of(root: Path) -> Registry:
    return open_registry(config_module.load(root))


@pytest.fixture
def pair(repo: Path) -> Path:
    """Two ready tasks: ``a`` (p0) first in dispatch order, then ``b`` (p1)."""
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\npriority: p0\nowner: alice\n---\n")
    write_task(repo, "b.md", "---\ntitle: B\nstatus: ready\npriority: p1\nowner: bob\n---\n")
    commit_all(repo)
    return repo


def _claimed(reg: Registry) -> int:
    return reg.claim("a", worker="w").lease


def _running(reg: Registry) -> None:
    reg.start("a", _claimed(reg))


def _parked(reg: Registry) -> None:
    reg.park("a", reason="flaky", lease=_claimed(reg))


def _stopped(reg: Registry) -> None:
    _claimed(reg)
    reg.stop("a", reason="wrong approach")


def _failed(reg: Registry) -> None:
    reg.finish("a", _claimed(reg), 1, error="boom")


def _review(reg: Registry) -> None:
    reg.finish("a", _claimed(reg), 0)


def _backing_off(reg: Registry) -> None:
    lease = _claimed(reg)
    reg.finish("a", lease, 1)
    reg.schedule_retry("a", at=datetime.now(UTC) + timedelta(hours=1), lease=lease)


def _retry_due(reg: Registry) -> None:
    lease = _claimed(reg)
    reg.finish("a", lease, 1)
    reg.schedule_retry("a", at=datetime.now(UTC) - timedelta(seconds=1), lease=lease)


def _released(reg: Registry) -> None:
    reg.finish("a", _claimed(reg), 0)
    reg.release("a")


@pytest.mark.parametrize(
    ("put_a", "expected"),
    [
        (None, "a"),
        (_claimed, "b"),
        (_running, "b"),
        (_parked, "b"),
        (_stopped, "b"),
        (_failed, "b"),  # exited non-zero: the next heartbeat decides, nobody may take it now
        (_review, "b"),  # exited 0: waiting for the merge
        (_backing_off, "b"),
        (_retry_due, "a"),
        (_released, "a"),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)).strip("_"),
)
def test_next_names_the_task_next_claim_takes(
    pair: Path, put_a: Callable[[Registry], object] | None, expected: str
) -> None:
    if put_a is not None:
        put_a(registry_of(pair))
    named = run_json(pair, "next")
    assert named is not None and named["slug"] == expected
    claimed = run_json(pair, "next", "--claim", "--worker", "w2")
    assert claimed is not None and claimed["slug"] == expected


def test_next_with_nothing_takeable_says_so_and_claim_agrees(pair: Path) -> None:
    reg = registry_of(pair)
    _running(reg)
    reg.claim("b", worker="w")
    assert run_json(pair, "next") is None
    assert run_json(pair, "next", "--claim") is None
    result = invoke(pair, "next")
    assert result.exit_code == 0 and "no ready task" in result.stderr


def test_next_for_an_owner_skips_other_owners_tasks(pair: Path) -> None:
    assert run_json(pair, "next", "--owner", "bob")["slug"] == "b"
    _claimed(registry_of(pair))
    assert run_json(pair, "next", "--owner", "alice") is None


def test_next_in_a_repository_where_nothing_ran_creates_no_registry(pair: Path) -> None:
    assert run_json(pair, "next")["slug"] == "a"
    assert not (pair / "registry").exists()


# -- counts follow the rows, wherever they are shown ------------------------------------------


@pytest.fixture
def team(repo: Path) -> Path:
    """Erin owns one task in review and one ready; others own the rest."""
    tasks = {
        "e1.md": "---\ntitle: E1\nstatus: ready\nowner: erin\n---\n",
        "e2.md": "---\ntitle: E2\nstatus: ready\nowner: erin\n---\n",
        "f1.md": "---\ntitle: F1\nstatus: ready\nowner: finn\n---\n",
        "f2.md": "---\ntitle: F2\nstatus: ready\nowner: finn\n---\n",
        "g1.md": "---\ntitle: G1\nstatus: not_started\nowner: gus\n---\n",
    }
    for name, text in tasks.items():
        write_task(repo, name, text)
    commit_all(repo)
    reg = registry_of(repo)
    for slug in ("e1", "f1", "f2"):
        reg.finish(slug, reg.claim(slug, worker="w").lease, 0)  # review
    return repo


def _bucket_tally(rows: list[dict[str, Any]]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for row in rows:
        tally[row["bucket"]] = tally.get(row["bucket"], 0) + 1
    return tally


def test_status_owner_counts_equal_its_rows_in_json_and_text(team: Path) -> None:
    report = run_json(team, "status", "--owner", "erin")
    assert [row["slug"] for row in report["tasks"]] == ["e1", "e2"]
    assert {k: v for k, v in report["counts"].items() if v} == _bucket_tally(report["tasks"])
    assert report["counts"]["review"] == 1 and report["counts"]["ready"] == 1
    text = invoke(team, "status", "--owner", "erin").stdout
    header = text.splitlines()[0]
    assert "review 1" in header and "ready 1" in header and "backlog 0" in header
    whole = run_json(team, "status")
    assert whole["counts"]["review"] == 3 and len(whole["tasks"]) == 5


def test_api_status_owner_counts_equal_its_rows(team: Path) -> None:
    with _client(team) as client:
        narrowed = client.get("/api/status", params={"owner": "erin"}).json()
        whole = client.get("/api/status").json()
    assert [row["slug"] for row in narrowed["tasks"]] == ["e1", "e2"]
    assert {k: v for k, v in narrowed["counts"].items() if v} == _bucket_tally(narrowed["tasks"])
    assert whole["counts"]["review"] == 3


# -- a stale heartbeat is shown by every reader -------------------------------------------------


def _cycle_at(root: Path, when: datetime) -> None:
    registry_of(root).write_cycle(CycleRecord(generated_at=format_time(when), owner="cron@ci"))


def test_status_without_any_cycle_is_stale_and_says_so(pair: Path) -> None:
    cycle = run_json(pair, "status")["cycle"]
    assert cycle["stale"] is True and cycle["generated_at"] is None
    text = invoke(pair, "status").stdout
    assert "last heartbeat cycle: never" in text
    assert "warning: no heartbeat cycle has run; is cron running task-manager-heartbeat?" in text


@pytest.mark.parametrize("minutes_ago, stale", [(30, True), (0, False)])
def test_status_cycle_stale_in_json_text_and_api(pair: Path, minutes_ago: int, stale: bool) -> None:
    _cycle_at(pair, datetime.now(UTC) - timedelta(minutes=minutes_ago))
    cycle = run_json(pair, "status")["cycle"]
    assert cycle["stale"] is stale and cycle["owner"] == "cron@ci" and cycle["stale_after"] == 180
    text = invoke(pair, "status").stdout
    assert ("warning: the heartbeat is stale" in text) is stale
    with _client(pair) as client:
        assert client.get("/api/status").json()["cycle"]["stale"] is stale


@pytest.mark.parametrize(
    "toml",
    ["[limits]\ncycle_stale_seconds = 3600\n", "[serve]\ncycle_stale_seconds = 3600\n"],
    ids=["limits", "old-serve-key"],
)
def test_cycle_stale_seconds_moves_the_limit(pair: Path, toml: str) -> None:
    (pair / "taskfiles.toml").write_text(toml, encoding="utf-8")
    _cycle_at(pair, datetime.now(UTC) - timedelta(minutes=30))
    cycle = run_json(pair, "status")["cycle"]
    assert cycle["stale"] is False and cycle["stale_after"] == 3600


# -- the observation itself ---------------------------------------------------------------------


def test_observe_reads_once_and_everything_follows_the_rows(team: Path) -> None:
    config = config_module.load(team)
    seen = observe(config, registry_of(team), now=datetime.now(UTC), source=planning_source(config))
    assert seen.capacity.live == 0 and seen.capacity.free == config.heartbeat.max_parallel
    assert [t.slug for t in seen.dispatchable()] == ["e2"]  # the others are in review or backlog
    erin = seen.only(config, owner="erin")
    assert [c.slug for c in erin.rows] == ["e1", "e2"] and sum(erin.counts.values()) == 2
    assert erin.to_dict()["counts"] == erin.counts
    assert erin.attention == [c for c in erin.rows if c.signals or c.bucket == "needs_attention"]


def test_next_warns_of_unreadable_files_and_needs_a_readable_registry(pair: Path) -> None:
    write_task(pair, "broken.md", "---\ntitle: [unclosed\nstatus: ready\n---\n")
    result = invoke(pair, "next")
    assert result.exit_code == 0 and result.stdout.startswith("a\t")
    assert "warning: skipped 1 unreadable task file(s): tasks/broken.md; run 'task validate'" in result.stderr
    _claimed(registry_of(pair))
    (pair / "registry" / "registry.json").write_text("{not json", encoding="utf-8")
    refused = invoke(pair, "next")
    assert refused.exit_code == 6 and refused.stderr.startswith("error: ") and "registry" in refused.stderr


# -- unreadable task files: every reader says which it skipped ------------------------------------

BROKEN = (
    "---\ntitle: [unclosed\nstatus: ready\n---\n",  # YAML syntax
    "",  # empty
    "no frontmatter at all\n",
    "---\ntitle: Unclosed frontmatter\n",
    "---\nstatus: ready\n---\n",  # no title
    "---\ntitle: Bad status\nstatus: done\n---\n",
)


@pytest.fixture
def littered(repo: Path) -> tuple[Path, list[str]]:
    """52 task files at the base ref, 30 of which cannot be read; and those 30 paths, sorted."""
    for n in range(22):
        write_task(repo, f"good/g{n:02}.md", f"---\ntitle: Good {n}\nstatus: ready\n---\n")
    broken = []
    for n in range(30):
        rel = f"{'ops/' if n % 2 else ''}bad-{n:02}.md"
        (repo / "tasks" / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / "tasks" / rel).write_text(BROKEN[n % len(BROKEN)], encoding="utf-8")
        broken.append(f"tasks/{rel}")
    commit_all(repo)
    return repo, sorted(broken)


def test_status_names_the_files_it_skipped_in_json_and_text(littered: tuple[Path, list[str]]) -> None:
    root, broken = littered
    report = run_json(root, "status")
    assert report["skipped"] == broken and len(report["tasks"]) == 22
    note = (
        f"skipped 30 unreadable task file(s): {', '.join(broken[:3])} and 27 more; "
        "run 'task validate' to see why"
    )
    assert report["warnings"] == [note]
    assert run_json(root, "status", "--owner", "nobody")["skipped"] == broken  # rows narrow, files do not
    assert f"warning: {note}" in invoke(root, "status").stdout.splitlines()
    with _client(root) as client:
        assert client.get("/api/status").json()["skipped"] == broken
        assert client.get("/api/tasks").json()["skipped"] == broken
        banner = client.get("/").text.split('id="skipped-files"', 1)[1].split("</div>", 1)[0]
    assert "30 task file(s) cannot be read" in banner and "and 27 more" in banner
    assert all(f"<code>{path}</code>" in banner for path in broken[:3])
    assert "task validate" in banner and 'href="/api/status"' in banner


def test_status_with_every_file_readable_skips_nothing(pair: Path) -> None:
    report = run_json(pair, "status")
    assert report["skipped"] == [] and report["warnings"] == []
    with _client(pair) as client:
        assert 'id="skipped-files"' not in client.get("/").text


# -- signals: since is when each condition became true --------------------------------------------


def _commit_at(root: Path, when: datetime, message: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Commit everything with this committer time; the commit id."""
    monkeypatch.setenv("GIT_COMMITTER_DATE", when.isoformat())
    try:
        return commit_all(root, message)
    finally:
        monkeypatch.delenv("GIT_COMMITTER_DATE")


def _signals(root: Path, clock: ManualClock, slug: str) -> list[tuple[str, str | None]]:
    config = config_module.load(root)
    seen = observe(config, open_registry(config, clock=clock), now=clock(), source=planning_source(config))
    return [(s.kind, s.since) for s in seen.row(slug).signals]


def _dispatched(root: Path, clock: ManualClock, slug: str) -> None:
    """Claim ``slug`` with its blob at main, as the heartbeat does, and start it."""
    blob = git(root, "rev-parse", f"main:tasks/{slug}.md").strip()
    reg = open_registry(config_module.load(root), clock=clock)
    reg.start(slug, reg.claim(slug, worker="w", task_blob=blob).lease)


def test_root_task_edited_since_the_merge_that_landed_the_edit(
    repo: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = clock() - timedelta(days=3)
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n\nFirst scope.\n")
    _commit_at(repo, t0, "add a", monkeypatch)
    _dispatched(repo, clock, "a")
    assert _signals(repo, clock, "a") == []
    git(repo, "checkout", "-q", "-b", "scope")
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n\nNew scope.\n")
    _commit_at(repo, t0 + timedelta(hours=1), "rescope a", monkeypatch)  # written on a branch...
    git(repo, "checkout", "-q", "main")
    write_task(repo, "other.md", "---\ntitle: Other\nstatus: ready\n---\n")
    _commit_at(repo, t0 + timedelta(hours=2), "unrelated", monkeypatch)
    landed = t0 + timedelta(hours=5)
    monkeypatch.setenv("GIT_COMMITTER_DATE", landed.isoformat())
    git(repo, "merge", "-q", "--no-ff", "scope", "-m", "merge scope")  # ...landed on main later
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    write_task(repo, "other.md", "---\ntitle: Other, again\nstatus: ready\n---\n")
    _commit_at(repo, t0 + timedelta(hours=6), "unrelated again", monkeypatch)
    assert _signals(repo, clock, "a") == [("root_task_edited", format_time(landed))]


def test_root_task_edited_since_the_latest_departure_even_after_many_edits(
    repo: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = clock() - timedelta(days=3)
    original = "---\ntitle: A\nstatus: ready\n---\n\nScope.\n"
    write_task(repo, "a.md", original)
    _commit_at(repo, t0, "add a", monkeypatch)
    _dispatched(repo, clock, "a")
    write_task(repo, "a.md", original + "\nA detour.\n")
    _commit_at(repo, t0 + timedelta(minutes=1), "detour", monkeypatch)
    write_task(repo, "a.md", original)  # back as dispatched: no signal
    _commit_at(repo, t0 + timedelta(minutes=2), "undo the detour", monkeypatch)
    assert _signals(repo, clock, "a") == []
    first = t0 + timedelta(minutes=10)
    for n in range(20):  # more edits than the first look at the file's history reads
        write_task(repo, "a.md", original + f"\nEdit {n}.\n")
        commit = _commit_at(repo, first + timedelta(minutes=n), f"edit {n}", monkeypatch)
    config = config_module.load(repo)
    seen = observe(config, open_registry(config, clock=clock), now=clock(), source=planning_source(config))
    [signal] = seen.row("a").signals
    assert (signal.kind, signal.since) == ("root_task_edited", format_time(first))
    assert commit[:12] not in signal.reason  # it names the first edit, not the last


def test_exited_unreconciled_since_the_exit_plus_the_review_grace(pair: Path, clock: ManualClock) -> None:
    reg = open_registry(config_module.load(pair), clock=clock)
    reg.finish("a", reg.claim("a", worker="w").lease, 0)
    exited = clock()
    clock.advance(seconds=3599)
    assert _signals(pair, clock, "a") == []
    clock.advance(seconds=2)
    assert _signals(pair, clock, "a") == [("exited_unreconciled", format_time(exited + timedelta(hours=1)))]


def test_stalled_since_the_last_heartbeat_plus_the_stall_limit(pair: Path, clock: ManualClock) -> None:
    reg = open_registry(config_module.load(pair), clock=clock)
    lease = reg.claim("a", worker="w").lease
    reg.start("a", lease)
    clock.advance(seconds=120)
    reg.heartbeat("a", lease)
    beat = clock()
    clock.advance(seconds=601)
    assert _signals(pair, clock, "a") == [("stalled", format_time(beat + timedelta(seconds=600)))]
