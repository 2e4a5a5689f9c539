"""task serve in-process: pages, JSON API, actions, security, against real task files and a real registry.

The helpers at the top are shared with test_serve_live.py (real uvicorn server, SSE, Chromium).
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.testclient import TestClient

from taskfiles.cli import app as cli_app
from taskfiles.config import Config
from taskfiles.config import load as load_config
from taskfiles.errors import UsageError
from taskfiles.registry import Actor, CycleRecord, Registry, open_registry
from taskfiles.serve import create_app
from taskfiles.serve.markdown import render, safe_url
from taskfiles.serve.security import Policy
from taskfiles.serve.server import Options, Server, check_bind
from taskfiles.status import observe, planning_source

from .conftest import commit_all, git, wait_until, write_task

BASE = "http://127.0.0.1:8005"
ORIGIN = {"origin": BASE}
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'

TASKS = {
    "core/alpha.md": (
        "---\ntitle: Alpha\nstatus: ready\npriority: p1\nowner: core\nmilestone: m1\nlabels: [ui]\n---\n\n"
        "## Problem\n\nAlpha needs **work**; see [the docs](https://example.com/docs).\n"
    ),
    "core/beta.md": (
        "---\ntitle: Beta\nstatus: ready\npriority: p0\nowner: agents\nmilestone: m2\n---\n\nBeta.\n"
    ),
    "core/gamma.md": "---\ntitle: Gamma\nstatus: ready\npriority: p1\nowner: core\n---\n\nGamma.\n",
    "web/delta.md": (
        "---\ntitle: Delta\nstatus: ready\nowner: core\nmilestone: m1\ndepends_on: [alpha]\nlabels: [api]\n"
        "---\n\nDelta waits for alpha.\n"
    ),
    "web/epsilon.md": "---\ntitle: Epsilon\nstatus: not_started\nmilestone: m1\n---\n\nLater.\n",
    "web/zeta.md": (
        "---\ntitle: Zeta\nstatus: completed\ncompleted_at: 2026-01-05\ncompleted_by: core\npr: '12'\n"
        "milestone: m1\n---\n\nDone.\n"
    ),
}


def make_project(root: Path, extra: dict[str, str] | None = None) -> Config:
    """Write the sample tasks (plus ``extra``) into the repository ``root``, commit, load its config."""
    for rel, text in {**TASKS, **(extra or {})}.items():
        write_task(root, rel, text)
    commit_all(root)
    return load_config(root)


def client_for(app: Starlette, address: str = "127.0.0.1") -> TestClient:
    """An in-process client that looks like a browser on ``address`` talking to 127.0.0.1:8005."""
    return TestClient(app, base_url=BASE, client=(address, 50000), follow_redirects=False)


class LiveServer:
    """A real uvicorn server in a thread, on a free loopback port (or a given one)."""

    def __init__(self, app: Starlette, port: int = 0) -> None:
        settings = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1, lifespan="on"
        )
        self.server = Server(settings)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "the server to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def port(self) -> int:
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def project(repo: Path) -> Config:
    """The sample tasks, committed on main, and an empty registry."""
    return make_project(repo)


@pytest.fixture
def client(project: Config) -> TestClient:
    """A loopback browser on an app that recomputes on every request (no watcher here)."""
    return client_for(create_app(project, watch=False, max_age=0))


def registry(config: Config, who: str = "test") -> Registry:
    return open_registry(config, actor=Actor(who, "host", 1))


def run_task(config: Config, slug: str, *, note: str | None = None) -> int:
    """Claim and start ``slug``; return the lease."""
    reg = registry(config)
    lease = reg.claim(slug, worker="w1", owner="core").lease
    reg.start(slug, lease, pid=1, branch=f"task/{slug}")
    if note:
        reg.heartbeat(slug, lease, note=note)
    return lease


def section(html: str, name: str) -> str:
    """The HTML of ``<section id=name>``."""
    match = re.search(rf'<section[^>]*id="{name}"[^>]*>(.*?)</section>', html, re.S)
    assert match, f"no section {name}"
    return match.group(1)


def slugs_in(html: str) -> list[str]:
    return re.findall(r'<tr data-slug="([^"]+)"', html)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


# -- overview ------------------------------------------------------------------------------------


def test_overview_sections_follow_the_one_classification(client: TestClient, project: Config) -> None:
    run_task(project, "gamma", note="half way")
    html = client.get("/").text
    assert slugs_in(section(html, "ready")) == ["beta", "alpha"]  # p0 first, then slug order
    assert slugs_in(section(html, "active")) == ["gamma"]
    assert "half way" in section(html, "active") and "task/gamma" in section(html, "active")
    assert "attempt 1 · 0/3 failures" in section(html, "active")
    assert '<td class="host">host</td>' in section(html, "active")  # the host its worker runs on
    waiting = section(html, "waiting")
    assert slugs_in(waiting) == ["delta"] and 'href="/tasks/alpha"' in waiting
    assert slugs_in(section(html, "done")) == ["zeta"]
    source = planning_source(project)
    report = observe(project, open_registry(project), now=datetime.now(UTC), source=source)
    for bucket, n in report.counts.items():
        assert re.search(rf'data-bucket="{bucket}"><span class="n">{n}</span>', html), bucket


def test_api_status_is_task_status_json(client: TestClient, project: Config) -> None:
    run_task(project, "alpha")
    served = client.get("/api/status").json()
    result = CliRunner().invoke(cli_app, ["-C", str(project.root), "status", "--json"])
    expected = json.loads(result.stdout)
    for document in (served, expected):
        document.pop("generated_at")
    assert served == expected


def test_attention_is_one_row_per_task_with_every_signal(repo: Path) -> None:
    legacy = "---\ntitle: Old\nstatus: ready\nstarted_at: 2026-01-01\n---\n\nOld style.\n"
    config = make_project(repo, {"core/old.md": legacy})
    run_task(config, "old")
    later = datetime.now(UTC) + timedelta(hours=2)
    app = create_app(config, watch=False, max_age=0, clock=lambda: later)
    rows = section(client_for(app).get("/").text, "needs_attention")
    assert slugs_in(rows) == ["old"]
    assert "stalled" in rows and "legacy_runtime_keys" in rows and "since" in rows


def test_filters_narrow_every_section_and_stay_in_the_url(client: TestClient) -> None:
    html = client.get("/?owner=core&milestone=m1&label=ui").text
    assert slugs_in(section(html, "ready")) == ["alpha"]
    assert '<option value="core" selected>' in html and '<option value="m1" selected>' in html
    assert slugs_in(section(client.get("/?q=waits+for").text, "waiting")) == ["delta"]
    assert slugs_in(section(client.get("/?workstream=web").text, "ready")) == []
    rows = client.get("/api/tasks?workstream=core&bucket=ready").json()
    assert sorted(t["slug"] for t in rows["tasks"]) == ["alpha", "beta", "gamma"]
    assert client.get("/api/tasks?bucket=nope").status_code == 400
    narrowed = client.get("/api/status?owner=agents").json()
    assert [t["slug"] for t in narrowed["tasks"]] == ["beta"] and narrowed["filters"] == {"owner": "agents"}


def test_cycle_line_warns_when_the_heartbeat_is_stale(client: TestClient, project: Config) -> None:
    assert "No heartbeat cycle has run yet" in section(client.get("/").text, "cycle").replace("\n", " ")
    old = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    registry(project).write_cycle(
        CycleRecord.from_dict({"generated_at": old, "owner": "cron@ci", "duration_ms": 812})
    )
    cycle = client.get("/").text.split('id="cycle"')[1].split("</section>")[0]
    assert "812 ms" in cycle and "cron@ci" in cycle and "Stale" in cycle
    assert "data-host" not in cycle  # one host: its line says it all
    [host] = client.get("/api/status").json()["hosts"]
    assert (host["generated_at"], host["stale"], host["duration_ms"]) == (old, True, 812)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    registry(project).write_cycle(
        CycleRecord.from_dict({"generated_at": now, "owner": "cron@ci", "duration_ms": 5})
    )
    assert "Stale" not in client.get("/").text.split('id="cycle"')[1].split("</section>")[0]


def test_metrics_over_the_window(client: TestClient, project: Config) -> None:
    reg = registry(project)
    for slug, code in (("alpha", 0), ("gamma", 1)):
        lease = run_task(project, slug)
        reg.heartbeat(slug, lease, cost_usd=0.25)
        reg.finish(slug, lease, code)
    reg.retry("gamma")
    html = section(client.get("/?window=30").text, "metrics")
    assert "last 30 days" in html
    numbers = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", html))
    assert numbers["runs"] == "2" and numbers["success rate"] == "50%"
    assert numbers["retries"] == "1 (1 manual)"
    assert numbers["cost (window)"] == "$0.50"


# -- the task page -------------------------------------------------------------------------------


def test_task_page_shows_file_links_entry_logs_and_events(client: TestClient, project: Config) -> None:
    lease = run_task(project, "alpha", note="compiling")
    reg = registry(project)
    reg.log("alpha", "plain line", lease=lease, source="stdout")
    reg.log("alpha", "bad thing", lease=lease, level="error", source="stderr")
    html = client.get("/tasks/alpha").text
    assert "<strong>work</strong>" in html and 'href="https://example.com/docs"' in html
    assert "tasks/core/alpha.md" in section(html, "frontmatter")
    assert 'href="/tasks/delta"' in section(html, "dependencies")  # needed by
    assert "running" in section(html, "entry") and "compiling" in section(html, "entry")
    logs = section(html, "logs")
    assert "plain line" in logs and "bad thing" in logs
    only_errors = section(client.get("/tasks/alpha?level=error").text, "logs")
    assert "bad thing" in only_errors and "plain line" not in only_errors
    only_stdout = section(client.get("/tasks/alpha?source=stdout").text, "logs")
    assert "plain line" in only_stdout and "bad thing" not in only_stdout
    events = section(html, "events")
    assert "task.claimed" in events and "test@host" in events
    deps = section(client.get("/tasks/delta").text, "dependencies")
    assert 'href="/tasks/alpha"' in deps


def test_fragment_request_returns_only_the_live_part(client: TestClient) -> None:
    full = client.get("/tasks/alpha").text
    part = client.get("/tasks/alpha", headers={"x-fragment": "live"}).text
    assert full.startswith("<!doctype html>") and "<html" not in part and 'id="entry"' in part


def test_api_task_logs_and_unknown_slugs(client: TestClient, project: Config) -> None:
    lease = run_task(project, "alpha")
    registry(project).log("alpha", "hello", lease=lease, level="warning")
    doc = client.get("/api/tasks/alpha").json()
    assert doc["task"]["title"] == "Alpha" and doc["classification"]["bucket"] == "active"
    assert doc["entry"]["state"] == "running" and doc["actions"] == ["stop", "park", "release"]
    assert [d["slug"] for d in doc["dependents"]] == ["delta"] and doc["events"][0]["type"] == "task.started"
    logs = client.get("/api/tasks/alpha/logs?level=warning").json()
    assert logs["attempt"] == 1 and [r["message"] for r in logs["records"]] == ["hello"]
    assert client.get("/api/tasks/alpha/logs?level=loud").status_code == 400
    assert client.get("/api/tasks/nope").status_code == 404
    assert client.get("/tasks/nope").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/tasks/%2E%2E%2Fetc",
        "/tasks/.git",
        "/api/tasks/..%2F..%2Fetc",
        "/api/tasks/%2e%2e",
        "/api/tasks/a%00b",
    ],
)
def test_slugs_in_urls_are_validated(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (404, 405)
    assert "root:" not in response.text


def test_dependency_view_is_an_indented_tree(repo: Path) -> None:
    loop = {
        "x/p.md": "---\ntitle: P\nstatus: ready\nmilestone: m3\ndepends_on: [q]\n---\n",
        "x/q.md": "---\ntitle: Q\nstatus: ready\nmilestone: m3\ndepends_on: [p]\n---\n",
    }
    app = create_app(make_project(repo, loop), watch=False, max_age=0)
    client = client_for(app)
    tree = client.get("/graph?milestone=m1").text
    rows = re.findall(r'<li class="d(\d+)[^"]*" data-slug="([^"]+)"', tree)
    assert ("0", "delta") in rows and rows[rows.index(("0", "delta")) + 1] == ("1", "alpha")
    assert "milestone m1" in tree and "milestone m2" not in tree
    cyclic = client.get("/graph?milestone=m3").text
    assert "cycle" in cyclic
    assert '<option value="m1" selected>' in tree  # the overview's filters, kept in the form


# -- security ------------------------------------------------------------------------------------


def test_task_text_is_escaped_everywhere(repo: Path) -> None:
    hostile = {
        "core/evil.md": (
            f"---\ntitle: 'Evil {XSS}'\nstatus: ready\nowner: core\n---\n\n{XSS}\n\n"
            "[click](javascript:alert(1)) [tab](java&#x09;script:alert(1)) ![img](javascript:alert(2))\n"
            '<a href="javascript:alert(3)">raw</a>\n'
        ),
        "core/<img src=x onerror=alert(4)>.md": "---\ntitle: [unclosed\n---\n",  # skipped: named in a banner
    }
    config = make_project(repo, hostile)
    lease = run_task(config, "evil", note=f"note {XSS}")
    registry(config).log("evil", f"log {XSS}", lease=lease, source=f"src{XSS}"[:40].replace("\n", ""))
    client = client_for(create_app(config, watch=False, max_age=0))
    for path in ("/", "/tasks/evil", "/graph?workstream=core", "/?q=evil"):
        html = client.get(path).text
        assert "Evil" in html
        assert html.count("<script") == 1, path  # only /static/app.js
        assert "<img" not in html, re.findall(".{80}<img.{80}", html)
        assert not re.search(r"href=\"\s*javascript:", html, re.I), path
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in client.get("/tasks/evil").text
    assert "<code>tasks/core/&lt;img src=x onerror=alert(4)&gt;.md</code>" in client.get("/").text


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://a.example", True),
        ("mailto:x@y.example", True),
        ("../other.md", True),
        ("#plan", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("java\tscript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("vbscript:x", False),
        ("file:///etc/passwd", False),
    ],
)
def test_markdown_links_allow_only_safe_schemes(url: str, ok: bool) -> None:
    assert safe_url(url) is ok
    html = str(render(f"[x]({url.replace(' ', '')})"))
    assert ("<a href" in html) is (ok and " " not in url)


def test_security_headers_and_host_check(client: TestClient) -> None:
    response = client.get("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/", headers={"host": "evil.example"}).status_code == 421
    assert client.get("/", headers={"host": "localhost:8005"}).status_code == 200


def test_actions_need_post_csrf_same_origin_and_loopback(client: TestClient, project: Config) -> None:
    run_task(project, "alpha")
    token = csrf_of(client.get("/tasks/alpha").text)
    assert client.get("/tasks/alpha/stop").status_code == 405
    assert client.post("/tasks/alpha/stop", data={"csrf": "forged"}, headers=ORIGIN).status_code == 403
    assert client.post("/tasks/alpha/stop", data={"csrf": token}).status_code == 403  # no Origin
    evil = {"origin": "http://evil.example"}
    assert client.post("/tasks/alpha/stop", data={"csrf": token}, headers=evil).status_code == 403
    remote = client_for(client.app, address="10.1.2.3")  # type: ignore[arg-type]
    assert remote.post("/tasks/alpha/stop", data={"csrf": token}, headers=ORIGIN).status_code == 403
    assert registry(project).get("alpha").state == "running"
    done = client.post("/tasks/alpha/stop", data={"csrf": token, "reason": "enough"}, headers=ORIGIN)
    assert done.status_code == 303 and done.headers["location"] == "/tasks/alpha?done=stop"
    assert registry(project).get("alpha").state == "stopped"
    last = registry(project).events("alpha").events[-1]
    assert (
        last.type == "task.stopped"
        and last.actor.who == "web:127.0.0.1"
        and last.details["reason"] == "enough"
    )


def test_every_action_goes_through_the_registry(client: TestClient, project: Config) -> None:
    run_task(project, "alpha")
    token = csrf_of(client.get("/tasks/alpha").text)
    before = {p: p.read_bytes() for p in (project.root / "tasks").rglob("*.md")}
    for action, state in (
        ("park", "parked"),
        ("unpark", "retry_wait"),
        ("retry", "retry_wait"),
        ("release", "released"),
    ):
        response = client.post(f"/tasks/alpha/{action}", data={"csrf": token}, headers=ORIGIN)
        assert response.status_code == 303, (action, response.text)
        assert registry(project).get("alpha").state == state
    refused = client.post("/tasks/alpha/stop", data={"csrf": token}, headers=ORIGIN)
    assert refused.status_code == 409 and "nothing to stop" in refused.text
    assert {p: p.read_bytes() for p in (project.root / "tasks").rglob("*.md")} == before
    assert git(project.root, "status", "--porcelain", "--untracked-files=no") == ""


def test_missing_or_corrupt_registry_still_shows_the_task_files(client: TestClient, project: Config) -> None:
    assert "registry-error" not in client.get("/").text  # no registry folder yet: simply empty
    project.registry_dir.mkdir()
    (project.registry_dir / "registry.json").write_text("{ not json")
    html = client.get("/").text
    assert "The registry cannot be read" in html and "Alpha" in html and "Beta" in html
    assert client.get("/api/status").json()["registry_error"]
    page = client.get("/tasks/alpha")
    assert page.status_code == 200 and "Alpha needs" in page.text and "registry" in page.text


def test_token_guards_pages_api_and_actions(project: Config) -> None:
    app = create_app(project, watch=False, max_age=0, token="s3cret-token", token_name="ops")
    anonymous = client_for(app)
    assert anonymous.get("/").status_code == 303 and anonymous.get("/").headers["location"] == "/login"
    assert anonymous.get("/api/status").status_code == 401
    assert anonymous.get("/static/app.js").status_code == 200
    assert anonymous.get("/?token=wrong").status_code == 303
    login = anonymous.get("/tasks/alpha?token=s3cret-token&level=info")
    assert login.status_code == 303 and login.headers["location"] == "/tasks/alpha?level=info"
    assert "s3cret-token" not in login.headers["set-cookie"]
    anonymous.cookies.set("taskfiles_token", login.headers["set-cookie"].split(";")[0].split("=", 1)[1])
    assert anonymous.get("/").status_code == 200
    run_task(project, "alpha")
    remote = client_for(app, address="10.1.2.3")
    bearer = {"authorization": "Bearer s3cret-token"}
    done = remote.post("/api/tasks/alpha/actions/park", json={"reason": "flaky"}, headers=bearer)
    assert done.status_code == 200 and done.json()["entry"]["state"] == "parked"
    assert registry(project).events("alpha").events[-1].actor.who == "web:ops@10.1.2.3"
    assert remote.post("/api/tasks/alpha/actions/unpark", json={}).status_code == 401


def test_binding_beyond_loopback_needs_a_flag_and_a_token() -> None:
    check_bind(Options(host="127.0.0.1"))
    check_bind(Options(host="::1"))
    with pytest.raises(UsageError, match="--allow-remote"):
        check_bind(Options(host="0.0.0.0"))
    with pytest.raises(UsageError, match="token"):
        check_bind(Options(host="0.0.0.0", allow_remote=True))
    check_bind(Options(host="0.0.0.0", allow_remote=True, token="long-enough-token"))
    with pytest.raises(UsageError):
        Policy(allow_remote=True)


def test_cli_serve_refuses_a_public_host_without_token(project: Config) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--repo", str(project.root), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--allow-remote" in result.output
    assert "--allow-remote" in CliRunner().invoke(cli_app, ["serve", "--help"]).output
