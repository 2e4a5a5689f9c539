"""Run metrics (taskfiles/metrics.py): from real registry histories on both stores, through
``task metrics`` and ``/api/metrics``, across gc, and as the overview's charts."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from taskfiles import metrics
from taskfiles.cli import app as cli_app
from taskfiles.config import Config
from taskfiles.config import load as load_config
from taskfiles.errors import UsageError
from taskfiles.plan.source import load as load_tasks
from taskfiles.registry import Registry
from taskfiles.serve import create_app

from .conftest import TEST_ACTOR, ManualClock, StoreFactory, commit_all, write_task
from .test_serve import LiveServer, client_for, section

TASKS = {
    "a.md": "---\ntitle: A\nstatus: ready\nowner: core\nlabels: [ui, api]\n---\n\nA.\n",
    "b.md": "---\ntitle: B\nstatus: ready\nowner: agents\nlabels: [api]\n---\n\nB.\n",
    "c.md": "---\ntitle: C\nstatus: ready\nowner: core\n---\n\nC.\n",
}


def project(repo: Path, today: datetime) -> Config:
    """The sample tasks plus two completed ones (today and 3 days ago), committed."""
    done = "---\ntitle: {t}\nstatus: completed\ncompleted_at: {d}\ncompleted_by: core\n---\n\n{t}.\n"
    extra = {
        "d.md": done.format(t="D", d=f"{today:%Y-%m-%d}"),
        "e.md": done.format(t="E", d=f"{today - timedelta(days=3):%Y-%m-%d}"),
        "f.md": done.format(t="F", d=f"{today - timedelta(days=40):%Y-%m-%d}"),
    }
    for rel, text in {**TASKS, **extra}.items():
        write_task(repo, rel, text)
    commit_all(repo)
    return load_config(repo)


def run(
    reg: Registry,
    clock: ManualClock,
    slug: str,
    *,
    worker: str,
    owner: str,
    minutes: float,
    cost: float = 0.0,
    exit_code: int | None = 0,
) -> None:
    """One attempt of ``slug``: claimed, started, ``minutes`` long, costing ``cost``; it ends
    with ``exit_code`` (None: found gone, ``task.failed``)."""
    lease = reg.claim(slug, worker=worker, owner=owner, max_attempts=3).lease
    reg.start(slug, lease, pid=1)
    clock.advance(minutes=minutes)
    if cost:
        reg.heartbeat(slug, lease, cost_usd=cost)
    if exit_code is None:
        reg.fail(slug, lease, failure_class="worker_gone", error="the worker is gone")
    else:
        reg.finish(slug, lease, exit_code)


def history(reg: Registry, clock: ManualClock) -> None:
    """Four runs today (two tasks, two workers), two retries (one manual), one run 60 days ago."""
    start = clock.now
    clock.now = start - timedelta(days=60)
    run(reg, clock, "c", worker="w3", owner="core", minutes=5, cost=4.0)
    reg.release("c", reason="completed")
    clock.now = start
    run(reg, clock, "a", worker="w1", owner="core", minutes=10, cost=1.0)
    run(reg, clock, "b", worker="w2", owner="agents", minutes=30, cost=2.0, exit_code=1)
    reg.schedule_retry("b", at=clock.now)
    run(reg, clock, "b", worker="w2", owner="agents", minutes=20, cost=0.5, exit_code=None)
    reg.retry("b", reason="try again")
    run(reg, clock, "b", worker="w1", owner="agents", minutes=40, exit_code=0)


def measured(reg: Registry, config: Config, clock: ManualClock, window: str, by: str | None = None) -> Any:
    return metrics.measure(reg, load_tasks(config).tasks, clock.now, window, by).to_dict()


# -- figures from real histories, on every store ---------------------------------------------------


def test_figures_over_a_window_on_every_store(
    store_factory: StoreFactory, repo: Path, clock: ManualClock
) -> None:
    config = project(repo, clock.now)
    reg = store_factory(clock=clock, actor=TEST_ACTOR)
    history(reg, clock)
    week = measured(reg, config, clock, "7d")
    assert (week["runs"], week["succeeded"], week["failed"]) == (4, 2, 2)
    assert week["success_rate"] == 0.5
    assert week["duration_s"] == {"p50": 1200.0, "p90": 2400.0, "mean": 1500.0}
    assert week["failure_classes"] == {"exit_1": 1, "worker_gone": 1}
    assert week["retries"] == {"total": 2, "manual": 1, "automatic": 1}
    assert week["cost_usd"] == 3.5 and week["cost_total_usd"] == 7.5  # c's $4 is 60 days old
    assert week["cost_per_task"]["top"] == [
        {"slug": "b", "cost_usd": 2.5, "runs": 3},
        {"slug": "a", "cost_usd": 1.0, "runs": 1},
    ]
    assert week["completed"] == {"total": 2, "per_day_mean": 0.29}  # d today, e 3 days ago
    assert [d["completed"] for d in week["per_day"]] == [0, 0, 0, 1, 0, 0, 1]
    assert week["per_day"][-1] == {"day": "2025-03-01", "completed": 1, "runs": 4, "cost_usd": 3.5}
    workers = {w["worker"]: (w["runs"], w["succeeded"], w["cost_usd"]) for w in week["workers"]}
    assert workers == {"w1": (2, 2, 1.0), "w2": (2, 0, 2.5)}
    quarter = measured(reg, config, clock, "90d", by="label")
    assert quarter["runs"] == 5 and quarter["cost_usd"] == 7.5 and quarter["completed"]["total"] == 3
    labels = {g["label"]: g["runs"] for g in quarter["groups"]}
    assert labels == {"api": 4, "ui": 1, "(none)": 1}  # a has two labels; c has none
    owners = {g["owner"]: g["runs"] for g in measured(reg, config, clock, "all", by="owner")["groups"]}
    assert owners == {"core": 2, "agents": 3}
    assert measured(reg, config, clock, "1d")["runs"] == 4


@pytest.mark.parametrize(
    ("window", "by", "message"),
    [
        ("5d", None, "window '5d' is not one of 1d, 7d, 30d, 90d, all"),
        ("week", None, "window 'week' is not one of"),
        ("7d", "host", "by 'host' is not one of owner, worker, label"),
    ],
)
def test_bad_window_or_grouping_is_refused(window: str, by: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        metrics.window_named(window)
        metrics.grouping_named(by)


# -- gc folds what it takes away ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "day"),
    [
        ("2025-03-01", "2025-03-01"),
        ("2025-03-01T23:30:00Z", "2025-03-01"),
        ("2025-03-01T23:30:00-05:00", "2025-03-02"),  # 04:30 UTC the next day
        ("2025-03-02T01:00:00+02:00", "2025-03-01"),
        ("2025-03-01 10:00:00", "2025-03-01"),  # no offset: its own day
        ("sometime", "sometime"[:10]),
    ],
)
def test_a_completion_counts_on_its_utc_day(stamp: str, day: str) -> None:
    assert metrics.utc_day(stamp) == day


def test_gc_keeps_windows_and_total_cost(store_factory: StoreFactory, repo: Path) -> None:
    clock = ManualClock()
    clock.now = datetime.now(UTC)  # the CLI's gc and metrics read the real clock
    project(repo, clock.now)
    reg = store_factory(clock=clock, actor=TEST_ACTOR)
    history(reg, clock)
    runner, env = CliRunner(), store_factory.env()

    def cli(*args: str) -> Any:
        done = runner.invoke(cli_app, ["-C", str(repo), *args], env=env)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    before = {w: cli("metrics", "--window", w, "--json", "--by", "owner") for w in ("90d", "all")}
    assert before["90d"]["runs"] == 5 and before["90d"]["cost_total_usd"] == 7.5
    report = cli("gc", "--older-than", "7", "--json")
    assert report["entries_removed"] == ["c"] and report["events_archived"] > 0
    assert report["rolled_up"] >= 2  # c's run, and c's entry's cost
    assert reg.find("c") is None
    after = {w: cli("metrics", "--window", w, "--json", "--by", "owner") for w in ("90d", "all")}
    for window in before:
        assert _without_time(after[window]) == _without_time(before[window])
    assert reg.gc(7).rolled_up == 0  # a second gc folds nothing twice
    assert _without_time(cli("metrics", "--window", "90d", "--json", "--by", "owner")) == _without_time(
        before["90d"]
    )


def test_a_copy_carries_the_rollup(store_factory: StoreFactory, repo: Path, clock: ManualClock) -> None:
    config = project(repo, clock.now)
    reg = store_factory(clock=clock, actor=TEST_ACTOR)
    history(reg, clock)
    before = measured(reg, config, clock, "90d")
    reg.gc(7)
    copied = store_factory(clock=clock, actor=TEST_ACTOR, name="copy")
    copied.load(reg.dump())
    assert copied.rollups() == reg.rollups() and len(copied.rollups()) >= 2
    assert measured(copied, config, clock, "90d") == before


def test_a_fold_cut_short_is_counted_once(tmp_path: Path, repo: Path, clock: ManualClock) -> None:
    """gc writes the rollup before it archives: a crash between leaves a run in both places."""
    from taskfiles.registry import rollup
    from taskfiles.registry.jsonstore import JsonRegistry

    config = project(repo, clock.now)
    reg = JsonRegistry(tmp_path / "reg", clock=clock, actor=TEST_ACTOR)
    history(reg, clock)
    before = measured(reg, config, clock, "90d")
    folded = rollup.fold(reg.events().events)  # every run and retry, all still live
    entry = reg.get("c")
    gone = rollup.Removed("c", entry.lease, "2025-03-01T00:00:00.000000Z", entry.total_cost_usd)
    reg.rollups_path.write_text(json.dumps(folded.merged(rollup.Rollup(removed=(gone,))).to_dict()))
    assert measured(reg, config, clock, "90d") == before


def test_an_unreadable_rollup_is_named(tmp_path: Path, repo: Path, clock: ManualClock) -> None:
    from taskfiles.errors import RegistryError
    from taskfiles.registry.jsonstore import JsonRegistry

    config = project(repo, clock.now)
    reg = JsonRegistry(tmp_path / "reg", clock=clock, actor=TEST_ACTOR)
    history(reg, clock)
    reg.rollups_path.write_text("{not json")
    with pytest.raises(RegistryError, match=r"rollups\.json cannot be read .*restore it from a backup"):
        measured(reg, config, clock, "7d")
    with pytest.raises(RegistryError, match=r"rollups\.json cannot be read"):
        reg.gc(7)  # never written over


# -- the CLI and the API -----------------------------------------------------------------------


@pytest.fixture
def live_project(repo: Path) -> Config:
    """The sample project with today's history in its own JSON registry (real clock)."""
    clock = ManualClock()
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    clock.now = max(now - timedelta(hours=2), midnight + timedelta(minutes=1))  # every run today
    config = project(repo, clock.now)
    from taskfiles.registry import open_registry

    history(open_registry(config, clock=clock, actor=TEST_ACTOR), clock)
    return config


def test_cli_text_json_and_bad_window(live_project: Config) -> None:
    runner, root = CliRunner(), str(live_project.root)
    text = runner.invoke(cli_app, ["-C", root, "metrics", "--by", "worker"])
    assert text.exit_code == 0, text.output
    assert "runs 4  succeeded 2  failed 2  success rate 50%" in text.stdout
    assert "retries 2 (1 manual, 1 automatic)" in text.stdout
    assert "failures: exit_1 1, worker_gone 1" in text.stdout
    assert re.search(r"^WORKER\s+RUNS\s+OK", text.stdout, re.M) and re.search(
        r"^w2\s+2\s+0\s+2", text.stdout, re.M
    )
    assert len(re.findall(r"^\d{4}-\d\d-\d\d ", text.stdout, re.M)) == 7
    month = json.loads(runner.invoke(cli_app, ["-C", root, "metrics", "--window", "30d", "--json"]).stdout)
    assert month["window"] == "30d" and len(month["per_day"]) == 30 and month["groups"] == []
    for args, message in (
        (["--window", "5d"], "error: window '5d' is not one of 1d, 7d, 30d, 90d, all\n"),
        (["--by", "host"], "error: by 'host' is not one of owner, worker, label\n"),
    ):
        bad = runner.invoke(cli_app, ["-C", root, "metrics", *args])
        assert bad.exit_code == 2 and bad.stderr == message


def test_api_metrics_is_the_cli_document(live_project: Config) -> None:
    client = client_for(create_app(live_project, watch=False, max_age=0))
    runner, root = CliRunner(), str(live_project.root)
    for window, by in (("7d", "owner"), ("all", "label"), ("30d", None)):
        query = f"window={window}" + (f"&by={by}" if by else "")
        served = client.get(f"/api/metrics?{query}")
        assert served.status_code == 200
        args = ["-C", root, "metrics", "--window", window, "--json", *(["--by", by] if by else [])]
        printed = json.loads(runner.invoke(cli_app, args).stdout)
        assert _without_time(served.json()) == _without_time(printed)
    refused = client.get("/api/metrics?window=2w")
    assert refused.status_code == 400
    assert refused.json() == {"error": "window '2w' is not one of 1d, 7d, 30d, 90d, all"}
    assert client.get("/api/metrics?by=host").status_code == 400


def _without_time(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "until"}


# -- the overview: attempt column and charts -----------------------------------------------------


def test_attempt_column_never_reads_over_the_limit(live_project: Config) -> None:
    """b ran 3 times (max_attempts 3, one manual retry) and once more after another: attempt 5
    runs after one failure in a row."""
    from taskfiles.registry import open_registry

    reg = open_registry(live_project, actor=TEST_ACTOR)
    reg.retry("b")
    lease = reg.claim("b", worker="w1", owner="agents").lease
    reg.finish("b", lease, 1)
    reg.schedule_retry("b", at=datetime.now(UTC))
    lease = reg.claim("b", worker="w1", owner="agents").lease
    reg.start("b", lease, pid=1)
    client = client_for(create_app(live_project, watch=False, max_age=0))
    active = section(client.get("/").text, "active")
    assert "attempt 5 · 1/3 failures" in active and "5/3" not in active
    status = CliRunner().invoke(cli_app, ["-C", str(live_project.root), "status"])
    row = next(line for line in status.stdout.splitlines() if " b " in line).split()
    assert row[5:7] == ["5", "1/3"]  # the ATTEMPT and FAILURES columns
    show = CliRunner().invoke(cli_app, ["-C", str(live_project.root), "show", "b"])
    assert "attempt 5 · 1/3 failures" in show.stdout


def test_overview_draws_both_charts_a_bar_a_day(live_project: Config) -> None:
    client = client_for(create_app(live_project, watch=False, max_age=0))
    for window, days in (("7d", 7), ("30d", 30), ("90d", 90)):
        html = section(client.get(f"/?window={window}").text, "metrics")
        for chart in ("completed", "cost"):
            svg = re.search(rf'<figure class="chart chart-{chart}">.*?</figure>', html, re.S)
            assert svg, f"no {chart} chart for {window}"
            assert svg.group(0).count('<rect class="bar"') == days
    html = section(client.get("/?window=7d").text, "metrics")
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert f"<title>{today}: $3.50</title>" in html and f"<title>{today}: 1 completed</title>" in html
    assert "<script" not in html
    numbers = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)", html))
    assert numbers["runs"] == "4" and numbers["success rate"] == "50%" and numbers["cost (window)"] == "$3.50"
    assert section(client.get("/?window=bogus").text, "metrics").count('<rect class="bar"') == 14  # 7d


CHROMIUM_MISSING = not (os.path.exists("/usr/bin/chromium") or os.environ.get("CI"))


@pytest.mark.skipif(CHROMIUM_MISSING, reason="chromium is not installed (apt-get install -y chromium)")
def test_charts_render_in_chromium(live_project: Config, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from .test_serve_live import CHROMIUM, CHROMIUM_ARGS

    errors: list[str] = []
    with sync_playwright() as playwright:
        assert CHROMIUM, "CI must have chromium: .ci/run installs it with apt-get"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        with LiveServer(create_app(live_project)) as server:
            page.goto(server.url + "/?window=30d")
            page.wait_for_selector("#metrics svg")
            assert page.locator("#metrics .chart-completed svg rect.bar").count() == 30
            assert page.locator("#metrics .chart-cost svg rect.bar").count() == 30
            tallest = page.locator("#metrics .chart-cost rect.bar").nth(29).bounding_box()
            assert tallest and tallest["height"] > 50  # today's bar is drawn, at full height
            today = f"{datetime.now(UTC):%Y-%m-%d}"
            titles = page.locator("#metrics .chart-cost title").all_text_contents()
            assert titles[-1] == f"{today}: $3.50"
            page.screenshot(path=str(tmp_path / "metrics.png"), full_page=True)
        browser.close()
    assert not [e for e in errors if "Content Security Policy" in e]
