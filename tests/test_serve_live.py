"""task serve against a real uvicorn server: the SSE stream, and one end-to-end run in Chromium.

The Chromium test uses Debian's ``chromium`` (``.ci/run`` installs it) through
playwright-python; it is skipped only when that browser is absent.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import pytest

from taskfiles import claims
from taskfiles.config import Config
from taskfiles.serve import create_app

from .conftest import commit_all, wait_until, write_task
from .test_serve import XSS, LiveServer, make_project, registry, run_task

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Screenshots land in tmp_path; set TASKFILES_ARTIFACTS to keep copies for the record.
ARTIFACTS = os.environ.get("TASKFILES_ARTIFACTS")


class Stream:
    """An SSE client on a thread: parsed messages arrive on a queue, read with a timeout."""

    def __init__(self, url: str) -> None:
        self.messages: queue.Queue[dict[str, str]] = queue.Queue()
        self.backlog: list[dict[str, str]] = []  # arrived, not yet asked for
        self.client = httpx2.Client(timeout=httpx2.Timeout(5.0, read=None))
        self.response = self.client.send(self.client.build_request("GET", url), stream=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        message: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if not line:
                    if message:
                        self.messages.put(message)
                    message = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(":")
                    message[key] = value.removeprefix(" ")
        except (httpx2.HTTPError, RuntimeError):  # closed by the test or the server
            return

    def next(self, event: str, timeout: float = 3.0, where: str = "") -> dict[str, str]:
        """The first unclaimed message of type ``event`` whose data contains ``where``."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.backlog:
                if message.get("event") == event and where in message.get("data", ""):
                    self.backlog.remove(message)
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event!r} message with {where!r} within {timeout} s")
            try:
                self.backlog.append(self.messages.get(timeout=left))
            except queue.Empty:
                continue

    def close(self) -> None:
        self.response.close()
        self.client.close()


@pytest.fixture
def project(repo: Path) -> Config:
    return make_project(repo)


@pytest.fixture
def stream_factory() -> Iterator[list[Stream]]:
    streams: list[Stream] = []
    yield streams
    for stream in streams:
        stream.close()


def test_sse_pushes_registry_and_task_file_changes(project: Config, stream_factory: list[Stream]) -> None:
    app = create_app(project, working_tree=True)
    hub = app.state.services.hub
    with LiveServer(app) as server:
        first, second = Stream(server.url + "/api/events"), Stream(server.url + "/api/events")
        stream_factory.extend([first, second])
        hello = first.next("hello")
        assert hello.get("retry") == "1000" and hello["data"].startswith('{"instance"')
        second.next("hello")
        wait_until(lambda: hub.clients == 2, 3, "two subscribers")

        # Latency is measured by bench/bench_serve.py; here the stream's own timeout bounds the wait.
        run_task(project, "alpha")  # the registry folder appears with this first write
        change = first.next("change", where='"registry"')
        assert '"alpha"' in change["data"] and change["id"].startswith(hello["data"][13:21])
        assert second.next("change", where='"registry"')
        assert first.next("registry", where="task.claimed")
        status = httpx2.get(server.url + "/api/status").json()
        assert next(t for t in status["tasks"] if t["slug"] == "alpha")["bucket"] == "active"

        write_task(project.root, "core/gamma.md", "---\ntitle: Gamma renamed\nstatus: ready\n---\n")
        assert first.next("change", where='"tasks"')
        assert "Gamma renamed" in httpx2.get(server.url + "/api/tasks/gamma").text
        commit_all(project.root, "rename gamma")  # the base ref moves: pages reading it refresh
        assert first.next("change", where='"ref"')

        registry(project).log("alpha", "a line", lease=1)
        # The first log line creates logs/alpha/: inotify may see only the new logs/ folder,
        # which is announced without slugs (every task page refreshes).
        log_change = first.next("change", where='"logs"')
        assert log_change["data"].endswith(('"slugs":[]}', '"slugs":["alpha"]}'))

        with socket.create_connection(("127.0.0.1", server.port)) as raw:  # a client that hangs up
            raw.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b"event: hello" in raw.recv(4096) or b"event: hello" in raw.recv(4096)
            wait_until(lambda: hub.clients == 3, 3, "a third subscriber")
        wait_until(lambda: hub.clients == 2, 3, "the hung-up client to be dropped")


# Skipped only where chromium is absent, and never in CI (.ci/run installs it; CI=true there).
@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install -y chromium)",
)
def test_browser_sees_a_task_go_active_without_reload(repo: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    hostile = f"---\ntitle: 'Evil {XSS}'\nstatus: ready\n---\n\n{XSS}\n\n[x](javascript:window.__xss=3)\n"
    unreadable = "---\ntitle: [unclosed\n---\n"  # its name is hostile too: shown in a banner
    config = make_project(
        repo, {"core/evil.md": hostile, "core/<img src=x onerror=window.__xss=4>.md": unreadable}
    )
    run_task(config, "evil", note=f"note {XSS}")
    registry(config).log("evil", f"log {XSS}", lease=1)
    dialogs: list[str] = []
    with sync_playwright() as playwright:
        assert CHROMIUM, "CI must have chromium: .ci/run installs it with apt-get"
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        with LiveServer(create_app(config)) as server:
            port = server.port
            _watch_alpha_go_active(page, server.url, config, tmp_path)
        # The server restarts on the same port: the open page reconnects and stays live.
        page.wait_for_selector("#conn.down", timeout=5000)
        with LiveServer(create_app(config), port=port) as server:
            page.wait_for_selector("#conn.live", timeout=5000)
            registry(config).stop("alpha", reason="restarted")
            page.wait_for_selector("#entry dd:text-is('stopped')", timeout=5000)
            page.screenshot(path=str(tmp_path / "task.png"), full_page=True)
            page.goto(server.url + "/tasks/evil")
            page.wait_for_selector("#conn.live")
            assert "<script>" in page.inner_text("h1")  # the payload is text on the page
            assert page.locator('a[href^="javascript"], img').count() == 0
            assert page.evaluate("window.__xss") is None and not dialogs
        browser.close()
    if ARTIFACTS:
        Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "task.png", Path(ARTIFACTS) / "serve-task.png")
        shutil.copyfile(tmp_path / "overview.png", Path(ARTIFACTS) / "serve-overview.png")


def _watch_alpha_go_active(page: Page, url: str, config: Config, shots: Path) -> None:
    """Open the overview, claim alpha through the registry API, wait for the page to show it."""
    page.goto(url + "/")
    page.wait_for_selector("#conn.live", timeout=5000)
    assert page.locator('#ready tr[data-slug="alpha"]').count() == 1
    banner = page.inner_text("#skipped-files")
    assert "1 task file(s) cannot be read" in banner and "<img src=x onerror=window.__xss=4>.md" in banner
    page.evaluate("window.__marker = 'same page'")
    entry = claims.claim(config, registry(config, "agent-7"), "alpha", worker="w1")
    registry(config).start("alpha", entry.lease, pid=1, branch="task/alpha")
    page.wait_for_selector('#active tr[data-slug="alpha"]', timeout=5000)
    assert page.locator('#ready tr[data-slug="alpha"]').count() == 0
    assert page.evaluate("window.__marker") == "same page"  # updated in place, not reloaded
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    page.click('#active a[href="/tasks/alpha"]')
    page.wait_for_selector("#entry")
    events = page.inner_text("#events")
    assert "task.claimed" in events and "agent-7" in events
