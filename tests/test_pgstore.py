"""The PostgreSQL registry against a real server: choosing it, its schema, copying a
registry to it and back, racing claims from several hosts, and its live feed.

The rules every store keeps run on it through the contract suite (test_registry*.py,
``store_factory``); here is what only a database store does. The server is the
throwaway cluster of tests/pgserver.py; processes are real ``task`` commands.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from taskfiles.config import redacted
from taskfiles.registry import RegistryChange, pgschema
from taskfiles.registry.copy import copy
from taskfiles.registry.jsonstore import JsonRegistry
from taskfiles.registry.pgstore import PgRegistry

from .conftest import TEST_ACTOR, commit_all, take, write_task
from .pgserver import PgServer

TASK = str(Path(sys.executable).with_name("task"))


def task(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``task -C root ARGS`` as a real process."""
    return subprocess.run(
        [TASK, "-C", str(root), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def team(repo: Path, pg_url: str) -> Path:
    """A repository whose registry is the database (``registry_url`` in taskfiles.toml)."""
    (repo / "taskfiles.toml").write_text(f'registry_url = "{pg_url}"\n')
    for slug in ("a", "b", "c"):
        write_task(repo, f"{slug}.md", f"---\ntitle: Task {slug}\nstatus: ready\n---\n")
    commit_all(repo)
    return repo


@pytest.fixture
def empty_database(pg_server: PgServer) -> Iterator[str]:
    """A database without the registry's schema."""
    name = pg_server.create_database(migrated=False)
    yield pg_server.url(name)
    pg_server.drop_database(name)


# -- choosing it, and its schema ---------------------------------------------------------------


def test_migrate_is_explicit_repeatable_and_every_command_refuses_another_schema(
    team: Path, empty_database: str
) -> None:
    env = {"TASKFILES_REGISTRY_URL": empty_database}  # the environment wins over taskfiles.toml
    want, names = pgschema.latest(), ", ".join(f"{v:04d}_{name}" for v, name, _ in pgschema.migrations())
    refused = task(team, "claim", "a", env=env)
    assert refused.returncode == 6
    assert (
        f"is at schema version 0, this taskfiles needs {want}; run 'task registry migrate'" in refused.stderr
    )
    applied = task(team, "registry", "migrate", env=env)
    assert applied.returncode == 0 and applied.stdout.strip().endswith(f"applied {names}")
    again = task(team, "registry", "migrate", env=env)
    assert again.returncode == 0 and f"the schema is current (version {want})" in again.stdout
    assert task(team, "claim", "a", env=env).returncode == 0
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO taskfiles_schema (version, name) VALUES (%s, 'from_the_future')", (want + 1,)
        )
    newer = task(team, "status", "--json", env=env)
    assert (
        newer.returncode == 6
        and f"newer than this taskfiles reads ({want}); upgrade taskfiles" in newer.stderr
    )


def test_task_list_shows_the_database_registry_without_a_registry_folder(team: Path) -> None:
    assert task(team, "claim", "a").returncode == 0
    shutil.rmtree(team / "registry", ignore_errors=True)  # a host that never held the JSON store
    listed = task(team, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    runtime = {row["slug"]: row["runtime"] for row in json.loads(listed.stdout)}
    assert runtime["a"] is not None and runtime["a"]["state"] == "claimed"
    assert runtime["b"] is None


def test_a_password_is_never_printed(team: Path) -> None:
    url = "postgresql://agent:s3cret-pw@127.0.0.1:1/nowhere"
    failed = task(team, "claim", "a", env={"TASKFILES_REGISTRY_URL": url})
    assert failed.returncode == 6
    assert "postgresql://agent:***@127.0.0.1:1/nowhere" in failed.stderr
    assert "s3cret" not in failed.stdout + failed.stderr


def test_without_psycopg_the_error_names_the_extra(team: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None; from taskfiles.cli import main; "
        "sys.argv = sys.argv[1:]; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "task", "-C", str(team), "claim", "a"], capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'taskfiles[postgres]'" in done.stderr


def test_a_bad_registry_url_is_a_config_error(team: Path) -> None:
    failed = task(team, "status", env={"TASKFILES_REGISTRY_URL": "mysql://x"})
    assert failed.returncode == 2 and "registry_url must be a postgresql:// URL" in failed.stderr


# -- copying ------------------------------------------------------------------------------------


def test_copy_a_folder_to_a_database_and_back_keeps_entries_leases_events_and_logs(
    repo: Path, pg_url: str
) -> None:
    for slug in ("a", "b"):
        write_task(repo, f"{slug}.md", f"---\ntitle: Task {slug}\nstatus: ready\n---\n")
    commit_all(repo)
    lease = json.loads(task(repo, "claim", "a", "--json").stdout)["lease"]
    assert task(repo, "log", "a", "first attempt's line", "--lease", str(lease)).returncode == 0
    assert task(repo, "finish", "a", "--lease", str(lease), "--exit-code", "1").returncode == 0
    assert task(repo, "retry", "a").returncode == 0
    assert task(repo, "claim", "a").returncode == 0
    assert task(repo, "claim", "b").returncode == 0
    assert task(repo, "release", "b").returncode == 0
    before = json.loads(task(repo, "events", "--json").stdout)

    copied = task(repo, "registry", "copy", "--to", pg_url)
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.startswith("copied 2 entries, 2 lease highs, 6 events and 1 log lines from ")
    assert "already holds a registry" in task(repo, "registry", "copy", "--to", pg_url).stderr

    on_db = {"TASKFILES_REGISTRY_URL": pg_url}
    assert json.loads(task(repo, "events", "--json", env=on_db).stdout) == before
    logs = task(repo, "logs", "a", "--attempt", "1", env=on_db)
    assert "first attempt's line" in logs.stdout
    assert json.loads(task(repo, "claim", "b", "--json", env=on_db).stdout)["lease"] == 2  # never 1 again

    back = task(repo, "registry", "copy", "--from", pg_url, "--to", "registry-back")
    assert back.returncode == 0, back.stderr
    on_folder = {"TASKFILES_REGISTRY": str(repo / "registry-back")}
    assert json.loads(task(repo, "events", "--json", env=on_folder).stdout) == json.loads(
        task(repo, "events", "--json", env=on_db).stdout
    )
    assert task(repo, "claim", "b", env=on_folder).returncode == 4  # b's live claim came along


# -- several hosts -----------------------------------------------------------------------------

CLAIMER = """
import sys
from taskfiles import claims, config
from taskfiles.registry import Actor, open_registry
cfg = config.load()
reg = open_registry(cfg, actor=Actor("agent", sys.argv[1], 0))
taken = []
while (entry := claims.claim_next(cfg, reg, worker=sys.argv[2])) is not None:
    taken.append(entry.slug)
print(" ".join(taken))
"""


def test_sixteen_racing_next_claims_over_three_hosts_take_each_task_once(team: Path, pg_url: str) -> None:
    for n in range(200):
        write_task(team, f"batch/t{n:03d}.md", f"---\ntitle: Batch {n}\nstatus: ready\n---\n")
    commit_all(team)
    env = {**os.environ, "TASKFILES_REGISTRY_URL": pg_url}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, f"host-{n % 3}", f"agent-{n}"],
            cwd=team,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(16)
    ]
    taken: Counter[str] = Counter()
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err
        taken.update(out.split())
    assert len(taken) == 203 and set(taken.values()) == {1}  # 200 + a, b, c: each once
    with psycopg.connect(pg_url) as conn:
        claimed = conn.execute("SELECT count(*) FROM taskfiles_events WHERE type = 'task.claimed'").fetchone()
    assert claimed == (203,)


# -- the live feed -----------------------------------------------------------------------------


def test_a_write_on_one_host_reaches_a_watcher_on_another(pg_url: str) -> None:
    watcher = PgRegistry(pg_url)
    stop = threading.Event()
    feed = watcher.watch(stop)
    try:
        take(feed, 1)  # the first batch: listening now
        writer = PgRegistry(pg_url, actor=TEST_ACTOR)
        writer.claim("a", worker="w")
        changes: list[RegistryChange] = []
        while not any(e.type == "task.claimed" for c in changes for e in c.events):
            changes += take(feed, 1)
        assert "registry" in changes[-1].scopes and "a" in changes[-1].slugs
        writer.log("a", "hello", lease=1)
        while not any("logs" in c.scopes for c in changes[-1:]):
            changes += take(feed, 1)
        assert "a" in changes[-1].slugs
    finally:
        stop.set()


def test_an_event_committed_after_a_later_one_still_reaches_the_followers(pg_url: str) -> None:
    """Ids are taken at insert, commits come in any order: a reader that kept only the
    highest id it saw would skip the slower transaction's event for good."""
    follower = PgRegistry(pg_url).follow_events(poll=0.05)
    stop = threading.Event()
    feed = PgRegistry(pg_url).watch(stop)
    writer = PgRegistry(pg_url, actor=TEST_ACTOR)
    with psycopg.connect(pg_url) as slow:
        slow.execute(
            "INSERT INTO taskfiles_events (seq, time, type, slug, lease, actor) "
            "VALUES (1, '2025-03-01T12:00:00.000000Z', 'task.note', 'slow', 1, '{}')"
        )  # id 1, not committed yet
        writer.claim("fast", worker="w")  # id 2, committed first
        assert [e.slug for e in take(follower, 1)] == ["fast"]
        seen = [e.slug for c in take(feed, 1) for e in c.events]
        while "fast" not in seen:
            seen += [e.slug for c in take(feed, 1) for e in c.events]
        slow.commit()
    assert [e.slug for e in take(follower, 1)] == ["slow"]
    while "slow" not in seen:
        seen += [e.slug for c in take(feed, 1) for e in c.events]
    stop.set()
    assert seen.count("fast") == seen.count("slow") == 1


# -- what a review found -----------------------------------------------------------------------


def test_claim_first_passes_over_a_candidate_another_transaction_holds(pg_url: str) -> None:
    reg = PgRegistry(pg_url, actor=TEST_ACTOR)
    for slug in ("t1", "t2", "t3"):
        reg.claim(slug, worker="w")
        reg.release(slug)
    with psycopg.connect(pg_url) as holder:  # another host, mid-claim of t1
        holder.execute("SELECT high FROM taskfiles_leases WHERE slug = 't1' FOR UPDATE")
        taken = PgRegistry(pg_url).claim_first(["t1", "t2", "t3"], worker="w2")
        assert taken is not None and taken.slug == "t2"
        again = PgRegistry(pg_url).claim_first(["t1", "t2", "t3"], worker="w3")
        assert again is not None and again.slug == "t3"  # t2 is live now; t3 was never locked
    assert reg.get("t1").state == "released"


def test_a_connection_dropped_while_idle_is_opened_again(pg_url: str) -> None:
    reg = PgRegistry(pg_url, actor=TEST_ACTOR)
    lease = reg.claim("a", worker="w").lease
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert reg.heartbeat("a", lease).heartbeats == 1  # a server restart does not stop a worker


def test_a_copy_from_a_database_keeps_the_events_gc_archived(pg_url: str, tmp_path: Path) -> None:
    reg = PgRegistry(pg_url, actor=TEST_ACTOR)
    reg.claim("a", worker="w")
    reg.release("a")
    reg.claim("b", worker="w")
    report = reg.gc(older_than_days=0)
    assert report.entries_removed == ("a",) and report.events_archived == 3
    copied = JsonRegistry(tmp_path / "folder")
    copy(reg, copied)
    assert [e.type for e in copied.events().events] == [e.type for e in reg.dump().events]
    assert [e.type for e in reg.dump().events] == [
        "task.claimed",
        "task.released",
        "task.claimed",
        "task.pruned",
    ]
    assert copied.claim("a", worker="w").lease == 2  # the pruned entry's lease came along


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:s3cret@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:s3cret@h1:5432,h2:5433/x", "postgresql://u:***@h1:5432,h2:5433/x"),
        (
            "postgresql://u@db/x?sslmode=require&password=s3cret",
            "postgresql://u@db/x?sslmode=require&password=***",
        ),
        ("postgresql://u@[::1]:5432/x", "postgresql://u@[::1]:5432/x"),
    ],
)
def test_a_password_is_masked_wherever_the_url_carries_it(url: str, shown: str) -> None:
    assert redacted(url) == shown
