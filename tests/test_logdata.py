"""Logs as data: structured fields, stats and sources, the filtered live stream, retention.

Real stores (``store_factory``: the JSON folder and PostgreSQL), the ``task`` CLI through
CliRunner, a real uvicorn server read over HTTP, and headless Chromium for the page.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
from click.testing import CliRunner, Result

from taskfiles.cli import app
from taskfiles.config import REGISTRY_ENV, REGISTRY_URL_ENV, Config
from taskfiles.config import load as load_config
from taskfiles.registry import Registry, open_registry
from taskfiles.registry.copy import copy
from taskfiles.registry.jsonstore import JsonRegistry
from taskfiles.registry.runlog import MAX_FIELD_VALUE, MAX_FIELDS
from taskfiles.serve import create_app

from .conftest import TEST_ACTOR, ManualClock, StoreFactory, wait_until
from .pgserver import PgServer
from .test_serve import LiveServer, make_project
from .test_serve_live import CHROMIUM, CHROMIUM_ARGS

runner = CliRunner()


def invoke(root: Path, *args: str, env: dict[str, str]) -> Result:
    return runner.invoke(app, ["-C", str(root), *args], env=env)


def running(reg: Registry, slug: str) -> int:
    """Claim and start ``slug``; return the lease."""
    lease = reg.claim(slug, worker="w1").lease
    reg.start(slug, lease)
    return lease


# -- fields ------------------------------------------------------------------------------------


def test_fields_go_through_the_cli_and_both_log_readers(repo: Path, store_factory: StoreFactory) -> None:
    env = store_factory.env()
    lease = running(store_factory(actor=TEST_ACTOR), "alpha")
    logged = invoke(
        repo,
        *("log", "alpha", "tests ran", "--lease", str(lease), "--source", "tests"),
        *("--field", "tool=pytest", "--field", "passed=41", "--field", "summary=2 skipped, 0 failed"),
        env=env,
    )
    assert logged.exit_code == 0, logged.stderr
    assert invoke(repo, "log", "alpha", "no fields here", env=env).exit_code == 0

    page = json.loads(invoke(repo, "logs", "alpha", "--json", env=env).stdout)
    first, second = page["records"]
    assert first["fields"] == {"tool": "pytest", "passed": "41", "summary": "2 skipped, 0 failed"}
    assert "fields" not in second  # a line without fields reads as lines always did
    text = invoke(repo, "logs", "alpha", env=env).stdout.splitlines()
    assert text[0].endswith('tests ran tool=pytest passed=41 summary="2 skipped, 0 failed"')
    assert text[1].endswith("no fields here")


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["tool"], "--field 'tool' is not NAME=VALUE"),
        (["bad key=1"], "log field name 'bad key' is not a short identifier"),
        (["9lives=1"], "log field name '9lives'"),
        (["=x"], "log field name ''"),
        ([f"{'k' * 65}=1"], "is not a short identifier"),
        ([f"long={'x' * (MAX_FIELD_VALUE + 1)}"], f"keep it to {MAX_FIELD_VALUE}"),
        (["tool=a", "tool=b"], "--field 'tool' is given twice"),
        ([f"f{n}=v" for n in range(MAX_FIELDS + 1)], f"give at most {MAX_FIELDS} a line"),
    ],
)
def test_a_bad_field_is_refused_naming_it(tmp_path: Path, repo: Path, given: list[str], named: str) -> None:
    env = {REGISTRY_ENV: str(tmp_path / "registry")}
    running(JsonRegistry(tmp_path / "registry"), "alpha")
    result = invoke(repo, "log", "alpha", "m", *(f"--field={item}" for item in given), env=env)
    assert result.exit_code == 2, result.stdout
    assert result.stderr.startswith("error: ") and named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(result.stderr) < 400  # a long name or value is cut, not echoed whole
    assert not (tmp_path / "registry" / "logs").exists()  # nothing was written


def test_a_multi_line_field_value_is_refused_by_the_library(store_factory: StoreFactory) -> None:
    reg = store_factory()
    running(reg, "alpha")
    with pytest.raises(Exception, match="must be one line of text"):
        reg.log("alpha", "m", fields={"trace": "a\nb"})
    assert reg.logs("alpha").records == ()


def test_an_old_log_line_reads_unchanged(tmp_path: Path) -> None:
    reg = JsonRegistry(tmp_path)
    running(reg, "alpha")
    old = {"time": "2025-01-01T00:00:00.000000Z", "level": "info", "source": "w", "message": "m", "lease": 1}
    path = tmp_path / "logs" / "alpha" / "1.log"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old) + "\n")
    (record,) = reg.logs("alpha").records
    assert record.fields == {} and record.to_dict() == old


# -- stats, sources, the stream over HTTP ------------------------------------------------------


@pytest.fixture
def served(repo: Path, store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """The sample project on a real server, its registry the store under test."""
    for name, value in store_factory.env().items():
        monkeypatch.setenv(name, value)
    config = make_project(repo)
    with LiveServer(create_app(config)) as server:
        yield Served(config, server.url, store_factory)


class Served:
    def __init__(self, config: Config, url: str, stores: StoreFactory) -> None:
        self.config, self.url, self.stores = config, url, stores

    def registry(self) -> Registry:
        return open_registry(self.config)


class Sse:
    """A log stream read on a thread: (event, id, data) on a queue; the raw lines too."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.items: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self.lines: list[str] = []
        self.client = httpx2.Client(timeout=httpx2.Timeout(5.0, read=None))
        self.response = self.client.send(self.client.build_request("GET", url, headers=headers), stream=True)
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event, ident, data = "", "", ""
        try:
            for line in self.response.iter_lines():
                self.lines.append(line)
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and event:
                    self.items.put((event, ident, json.loads(data)))
                    event, ident, data = "", "", ""
        except (httpx2.HTTPError, RuntimeError):
            pass
        finally:
            self.done.set()

    def next(self, timeout: float = 5.0) -> tuple[str, str, Any]:
        try:
            return self.items.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s; lines so far: {self.lines}") from None

    def close(self) -> None:
        self.response.close()
        self.client.close()


def test_stats_and_sources_count_one_attempt(served: Served) -> None:
    reg = served.registry()
    lease = running(reg, "alpha")
    reg.log_many("alpha", ["a", "b"], lease=lease, source="stdout")
    reg.log("alpha", "boom", lease=lease, level="error", source="stderr", fields={"code": "E1"})
    reg.log("alpha", "noted", lease=lease, level="debug", source="agent")

    stats = httpx2.get(f"{served.url}/api/tasks/alpha/logs/stats").json()
    assert stats["slug"] == "alpha" and stats["attempt"] == 1 and stats["total"] == 4
    assert stats["levels"] == {"debug": 1, "info": 2, "error": 1}
    assert list(stats["levels"]) == ["debug", "info", "error"]  # in severity order
    assert stats["sources"] == {"agent": 1, "stderr": 1, "stdout": 2}
    times = [r.time for r in reg.logs("alpha").records]
    assert (stats["first"], stats["last"]) == (min(times), max(times))
    if served.stores.kind == "json":
        assert stats["bytes"] == (served.config.registry_dir / "logs/alpha/1.log").stat().st_size
    assert stats["bytes"] > sum(len(r.message) for r in reg.logs("alpha").records)

    sources = httpx2.get(f"{served.url}/api/tasks/alpha/logs/sources?attempt=1").json()
    assert sources == {
        "slug": "alpha",
        "attempt": 1,
        "sources": [
            {"source": "agent", "count": 1},
            {"source": "stderr", "count": 1},
            {"source": "stdout", "count": 2},
        ],
    }
    missing = httpx2.get(f"{served.url}/api/tasks/alpha/logs/stats?attempt=7")
    assert missing.status_code == 404 and "attempt 7 of 'alpha' has no log" in missing.json()["error"]
    assert httpx2.get(f"{served.url}/api/tasks/alpha/logs/sources?attempt=x").status_code == 400


def test_the_stream_filters_on_the_server_resumes_and_ends(served: Served) -> None:
    reg = served.registry()
    lease = running(reg, "alpha")
    reg.log("alpha", "chatter", lease=lease, level="debug")  # 1: below the filter
    reg.log("alpha", "careful", lease=lease, level="warning", fields={"tool": "ruff"})  # 2
    url = f"{served.url}/api/tasks/alpha/logs/stream?level=warning"
    stream = Sse(url)
    try:
        event, ident, data = stream.next()
        assert (event, ident) == ("log", "1:2")
        assert data["message"] == "careful" and data["fields"] == {"tool": "ruff"} and data["position"] == 2
        assert stream.lines[0] == "retry: 1000"
        reg.log("alpha", "quiet", lease=lease, level="info")  # 3: filtered out
        reg.log("alpha", "broken", lease=lease, level="error", source="stderr")  # 4
        assert stream.next()[:2] == ("log", "1:4")

        # Another client comes back after 1:2 (the header a reconnecting EventSource sends).
        resumed = Sse(url, headers={"Last-Event-ID": "1:2"})
        assert resumed.next()[1] == "1:4"
        only_stderr = Sse(f"{served.url}/api/tasks/alpha/logs/stream?source=stderr&after=1")
        assert only_stderr.next()[1] == "1:4"

        reg.finish("alpha", lease, 1, error="failed")  # the attempt is over: every stream ends
        for client in (stream, resumed, only_stderr):
            assert client.next() == ("end", "", {"slug": "alpha", "attempt": 1, "last": 4})
            assert client.done.wait(5), "the stream did not close after end"
            assert client.items.empty()
            client.close()
        # An attempt that is over streams what it has and ends at once.
        again = Sse(f"{served.url}/api/tasks/alpha/logs/stream?attempt=1", headers={"Last-Event-ID": "1:3"})
        assert again.next()[1] == "1:4" and again.next()[0] == "end"
        again.close()
    finally:
        stream.close()


def test_the_stream_refuses_what_it_cannot_serve(served: Served) -> None:
    running(served.registry(), "alpha")
    base = f"{served.url}/api/tasks/alpha/logs/stream"
    bad = httpx2.get(base, headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and "is not <attempt>:<position>" in bad.json()["error"]
    assert httpx2.get(base + "?level=loud").status_code == 400
    assert httpx2.get(base + "?after=-1").status_code == 400
    assert httpx2.get(f"{served.url}/api/tasks/nobody/logs/stream").status_code == 404


def test_a_stream_ends_when_the_server_stops(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "registry"))
    config = make_project(repo)
    reg = open_registry(config)
    running(reg, "alpha")
    application = create_app(config)
    with LiveServer(application) as server:
        stream = Sse(f"{server.url}/api/tasks/alpha/logs/stream")
        wait_until(lambda: application.state.services.hub.log_streams == 1, 5, "the stream to subscribe")
        started = time.monotonic()
    assert stream.done.wait(5) and time.monotonic() - started < 5
    assert stream.items.empty()  # no end: the attempt is not over, the server went away
    stream.close()


def test_a_client_that_hangs_up_is_forgotten(served: Served, repo: Path) -> None:
    lease = running(served.registry(), "alpha")
    stream = Sse(f"{served.url}/api/tasks/alpha/logs/stream")
    served.registry().log("alpha", "one", lease=lease)
    assert stream.next()[1] == "1:1"
    stream.close()
    page = httpx2.get(f"{served.url}/api/tasks/alpha/logs").json()  # the server is still fine
    assert [r["message"] for r in page["records"]] == ["one"]


# -- positions ---------------------------------------------------------------------------------


def test_positions_have_no_gaps_under_concurrent_writers(store_factory: StoreFactory) -> None:
    lease = running(store_factory(), "alpha")

    def write(name: str) -> None:
        reg = store_factory()  # a handle of its own, as each worker process has
        for n in range(15):
            reg.log_many("alpha", [f"{name}{n}a", f"{name}{n}b"], lease=lease, source=name)

    threads = [threading.Thread(target=write, args=(name,)) for name in ("x", "y", "z")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    reg = store_factory()
    tail = reg.log_tail("alpha")
    assert [line.position for line in tail.lines] == list(range(1, 91)) and tail.last == 90
    for line in tail.lines[::2]:  # one write's lines stay together
        after = tail.lines[line.position]
        assert after.record.message == line.record.message[:-1] + "b"
    assert [line.position for line in reg.log_tail("alpha", after=88).lines] == [89, 90]


# -- retention -----------------------------------------------------------------------------------


def test_gc_removes_attempt_logs_past_the_retention(store_factory: StoreFactory, clock: ManualClock) -> None:
    reg = store_factory(clock=clock)
    # old: attempt 1 failed long ago; attempt 2 is live but has been quiet just as long.
    lease = running(reg, "old")
    reg.log("old", "first try", lease=lease)
    reg.finish("old", lease, 1, error="boom")
    reg.retry("old")
    quiet = running(reg, "old")
    reg.log("old", "thinking", lease=quiet)
    # parked: its current (and only) attempt is old and not live.
    lease = running(reg, "parked")
    reg.log("parked", "stuck", lease=lease)
    reg.park("parked", reason="needs a human")
    # fresh: failed, but logged inside the retention.
    clock.advance(days=25)
    lease = running(reg, "fresh")
    reg.log("fresh", "recent", lease=lease)
    reg.finish("fresh", lease, 2)
    clock.advance(days=10)

    sizes = {(s, a): reg.log_stats(s, attempt=a).bytes for s, a in [("old", 1), ("parked", 1)]}
    assert reg.gc(3650).logs_removed == ()  # no retention asked: logs stay
    report = reg.gc(3650, log_retention_days=30)
    assert set(report.logs_removed) == {"logs/old/1.log", "logs/parked/1.log"}
    assert report.log_bytes_removed == sum(sizes.values()) > 0
    assert report.entries_removed == ()
    assert [r.message for r in reg.logs("old", attempt=2).records] == ["thinking"]  # live: kept
    assert [r.message for r in reg.logs("fresh").records] == ["recent"]
    assert reg.logs("parked").records == ()  # its entry stays; its log is gone
    assert reg.find("parked") is not None
    again = reg.gc(3650, log_retention_days=30)
    assert again.logs_removed == () and again.log_bytes_removed == 0
    with pytest.raises(Exception, match="log_retention_days must not be negative"):
        reg.gc(30, log_retention_days=-1)


def test_task_gc_uses_the_setting_and_reports_the_bytes(tmp_path: Path, repo: Path) -> None:
    folder = tmp_path / "registry"
    reg = JsonRegistry(folder, clock=ManualClock())  # March 2025: long before today
    lease = running(reg, "alpha")
    reg.log("alpha", "an old line", lease=lease)
    reg.finish("alpha", lease, 1)
    size = (folder / "logs/alpha/1.log").stat().st_size
    env = {REGISTRY_ENV: str(folder)}
    (repo / "taskfiles.toml").write_text("[logs]\nretention_days = 0\n")
    kept = json.loads(invoke(repo, "gc", "--json", env=env).stdout)
    assert kept["logs_removed"] == [] and kept["log_bytes_removed"] == 0

    (repo / "taskfiles.toml").write_text("[logs]\nretention_days = 10\n")
    text = invoke(repo, "gc", env=env)
    assert text.exit_code == 0, text.stderr
    assert f"0 task folders and 1 attempt logs ({size} bytes)" in text.stdout
    assert not (folder / "logs/alpha").exists()

    (repo / "taskfiles.toml").write_text("[logs]\nretention_days = -3\n")
    bad = invoke(repo, "gc", env=env)
    assert bad.exit_code != 0 and "[logs] retention_days must be 0 or more" in bad.stderr
    (repo / "taskfiles.toml").write_text("[logs]\nretention_days = 100000000000\n")
    huge = invoke(repo, "gc", env=env)
    assert huge.exit_code == 2 and "[logs] retention_days must be at most 36500" in huge.stderr


@pytest.mark.parametrize("days", ["nan", "inf", "-1", "100000000000"])
def test_gc_refuses_an_age_it_cannot_count_back(tmp_path: Path, repo: Path, days: str) -> None:
    """Exit 2 naming the range, never a traceback (a cutoff before year 1 overflowed)."""
    folder = tmp_path / "registry"
    running(JsonRegistry(folder), "alpha")
    result = invoke(repo, "gc", "--older-than", days, env={REGISTRY_ENV: str(folder)})
    assert result.exit_code == 2, result.stderr
    if days in ("nan", "inf"):  # no number of days: the command line refuses it
        assert f"Invalid value for '--older-than': {days} is not a finite number" in result.stderr
    else:
        assert "--older-than must be a number of days from 0 to 36500" in result.stderr
    assert JsonRegistry(folder).get("alpha").state == "running"


def test_the_default_retention_is_thirty_days(repo: Path) -> None:
    assert load_config(repo).logs.retention_days == 30.0


# -- PostgreSQL schema, copies -------------------------------------------------------------------


def test_the_migration_adds_fields_and_numbers_existing_lines(
    pg_server: PgServer, repo: Path, tmp_path: Path
) -> None:
    from taskfiles.registry import pgschema

    name = pg_server.create_database(migrated=False)
    url = pg_server.url(name)
    try:
        first = pgschema.migrations()[0]
        with psycopg.connect(url, autocommit=True) as conn:  # a database as 0001 left it
            conn.execute(first[2].encode())
            conn.execute("CREATE TABLE taskfiles_schema (version integer PRIMARY KEY, name text NOT NULL)")
            conn.execute("INSERT INTO taskfiles_schema VALUES (1, 'registry')")
            for attempt, message in [(1, "a"), (2, "b"), (1, "c")]:
                record = {
                    "time": "2025-01-01T00:00:00.000000Z",
                    "level": "info",
                    "source": "w",
                    "message": message,
                }
                conn.execute(
                    "INSERT INTO taskfiles_logs (slug, attempt, record) VALUES ('alpha', %s, %s)",
                    (attempt, json.dumps(record)),
                )
        env = {REGISTRY_URL_ENV: url}
        applied = invoke(repo, "registry", "migrate", env=env)
        assert applied.exit_code == 0 and "0002_log_fields" in applied.stdout
        again = invoke(repo, "registry", "migrate", env=env)
        assert again.exit_code == 0 and f"the schema is current (version {pgschema.latest()})" in again.stdout
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT attempt, position, record->>'message', fields FROM taskfiles_logs ORDER BY id"
            ).fetchall()
        assert rows == [(1, 1, "a", None), (2, 1, "b", None), (1, 2, "c", None)]
    finally:
        pg_server.drop_database(name)


def test_a_copy_keeps_fields_and_positions(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = store_factory()
    lease = running(source, "alpha")
    source.log("alpha", "with", lease=lease, fields={"tool": "pytest", "passed": "41"})
    source.log("alpha", "without", lease=lease)
    middle = JsonRegistry(tmp_path / "middle")
    copy(source, middle)
    target = store_factory(name="copy")  # back into the store under test: both directions
    report = copy(middle, target)
    assert report.log_lines == 2
    lines = target.log_tail("alpha").lines
    assert [(line.position, line.record.fields) for line in lines] == [
        (1, {"tool": "pytest", "passed": "41"}),
        (2, {}),
    ]
    assert [line.record for line in lines] == list(source.logs("alpha").records)


# -- the page ------------------------------------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_task_page_tails_its_log_without_reload(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv(REGISTRY_ENV, str(tmp_path / "registry"))
    config = make_project(repo)
    reg = open_registry(config)
    lease = running(reg, "alpha")
    reg.log("alpha", "before the page", lease=lease, level="warning")
    hostile = '<img src=x onerror="window.__xss=1">'
    with sync_playwright() as playwright, LiveServer(create_app(config)) as server:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{server.url}/tasks/alpha?level=warning")
        page.wait_for_selector("#conn.live", timeout=5000)
        page.evaluate("window.__marker = 'same page'")
        assert page.locator("#log .line").count() == 1
        wait_until(lambda: server_streams(server) == 1, 5, "the page's log stream")

        reg.log("alpha", "too quiet to show", lease=lease, level="info")
        reg.log("alpha", f"tests failed {hostile}", lease=lease, level="error", fields={"tool": "pytest"})
        page.wait_for_selector("#log .line:has-text('tests failed')", timeout=5000)
        lines = page.locator("#log .line").all_inner_texts()
        assert len(lines) == 2 and "too quiet" not in " ".join(lines)
        assert hostile in lines[1] and "tool=pytest" in lines[1]
        assert page.locator("#log img").count() == 0 and page.evaluate("window.__xss") is None
        assert page.evaluate("window.__marker") == "same page"  # appended in place, not reloaded

        reg.finish("alpha", lease, 0)  # the attempt ends: the page's stream closes
        page.wait_for_selector("body[data-log-ended='1']", timeout=5000)
        wait_until(lambda: server_streams(server) == 0, 5, "the page's log stream to close")
        page.screenshot(path=str(tmp_path / "log-tail.png"), full_page=True)
        browser.close()


def server_streams(server: LiveServer) -> int:
    streams: int = server.server.config.app.state.services.hub.log_streams
    return streams
