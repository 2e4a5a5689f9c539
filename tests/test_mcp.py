"""``task mcp``: every tool and resource through the SDK's own clients, against real git
repositories and a real registry.

In memory (both protocol eras: 2026-07-28 by default, the 2025-11-25 handshake with
``mode="legacy"``), over streamable HTTP with a real server and client, and once end to
end: ``task mcp`` as a subprocess over stdio.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from taskfiles.config import load
from taskfiles.errors import UsageError
from taskfiles.mcp.http import Listen, app
from taskfiles.mcp.server import STALE, TaskServer
from taskfiles.mcp.tools import TOOLS, chosen
from taskfiles.mcp.workspace import Workspace
from taskfiles.registry import open_registry
from taskfiles.serve.server import Server

from .conftest import GIT_IDENTITY, StoreFactory, commit_all, git, write_task

CORE = ["tasks", "task", "next", "report", "finish", "create", "status"]
BUDGET_CHARS = 8000  # 2,000 tokens at 4 characters a token
TIMEOUT = 15


def run(fn: Callable[[], Awaitable[None]]) -> None:
    anyio.run(fn)


def task_text(title: str, status: str = "ready", priority: str = "p2", depends_on: str = "") -> str:
    deps = f"depends_on: [{depends_on}]\n" if depends_on else ""
    return f"---\ntitle: {title}\nstatus: {status}\npriority: {priority}\n{deps}---\n\nDo {title.lower()}.\n"


@pytest.fixture
def project(repo: Path) -> Path:
    """Three tasks on main: one ready, one waiting on it, one in the backlog."""
    write_task(repo, "web/fix-login.md", task_text("Fix login", priority="p1"))
    write_task(repo, "web/add-search.md", task_text("Add search", depends_on="fix-login"))
    write_task(repo, "later.md", task_text("Later", status="not_started"))
    commit_all(repo)
    return repo


def server(root: Path, tools: str = "default", *, pinned: bool = False) -> TaskServer:
    return TaskServer(Workspace.at(root), chosen(tools), pinned=pinned)


@asynccontextmanager
async def connect(
    root: Path, mode: str = "auto", tools: str = "default", **options: Any
) -> AsyncIterator[Client]:
    async with Client(server(root, tools).lowlevel, mode=mode, **options) as client:
        yield client


async def call(client: Client, name: str, arguments: dict[str, Any] | None = None) -> Any:
    """The tool's JSON result; fails the test on a tool error."""
    result = await client.call_tool(name, arguments or {})
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.is_error, text
    return json.loads(text)


async def refused(client: Client, name: str, arguments: dict[str, Any]) -> str:
    """The message of a tool error (fails the test when the call succeeds)."""
    result = await client.call_tool(name, arguments)
    assert result.is_error, result
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


# -- the tool list ---------------------------------------------------------------------------


def test_default_tool_list_is_the_seven_core_tools_within_the_token_budget(project: Path) -> None:
    async def main() -> None:
        async with connect(project) as client:
            listed = (await client.list_tools()).tools
        assert [tool.name for tool in listed] == CORE
        wire = json.dumps([t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in listed])
        assert len(wire) < BUDGET_CHARS, f"the default tool list is {len(wire)} characters"
        for tool in listed:
            assert tool.description and len(tool.description) < 300
            assert tool.input_schema["type"] == "object"
            assert "title" not in tool.input_schema
        print(f"default tool list: {len(wire)} characters, ~{len(wire) // 4} tokens")

    run(main)


def test_tools_all_adds_the_rest_and_a_list_of_names_picks_some(project: Path) -> None:
    async def main() -> None:
        async with connect(project, tools="all") as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
        assert names == [tool.name for tool in TOOLS] and len(names) > 7

    run(main)
    assert [tool.name for tool in chosen("next, report")] == ["next", "report"]
    with pytest.raises(UsageError, match="names no tool 'nope'"):
        chosen("next,nope")
    with pytest.raises(UsageError, match="empty"):
        chosen(" , ")


# -- the agent's flow, in both protocol eras and on both stores -------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_next_report_finish_flow(
    project: Path, mode: str, store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in store_factory.env().items():
        monkeypatch.setenv(name, value)

    async def main() -> None:
        async with connect(project, mode) as client:
            claimed = await call(client, "next", {"worker": "agent-1"})
            slug, lease = claimed["slug"], claimed["lease"]
            assert slug == "fix-login" and claimed["attempt"] == 1
            worktree = Path(claimed["worktree"])
            assert worktree == project / ".worktrees" / "fix-login" and (worktree / "tasks").is_dir()
            assert claimed["branch"] == "task/fix-login"
            assert "`report` with lease" in claimed["prompt"] and "Do fix login." in claimed["prompt"]
            assert Path(claimed["prompt_file"]).read_text(encoding="utf-8") == claimed["prompt"]
            assert await call(client, "next", {}) is None  # add-search waits for fix-login

            entry = await call(
                client,
                "report",
                {
                    "slug": slug,
                    "lease": lease,
                    "progress": 40,
                    "message": "form done",
                    "blocker": "needs a design",
                    "evidence": {"command": "make test", "exit_code": 0, "summary": "12 passed"},
                    "artifact": "docs/login.md",
                    "cost_usd": 0.25,
                },
            )
            assert entry["progress_percent"] == 40 and entry["blocker"] == "needs a design"
            assert entry["evidence"][0]["command"] == "make test" and entry["artifacts"] == ["docs/login.md"]
            assert entry["cost_usd"] == 0.25 and entry["state"] == "running"
            entry = await call(
                client, "report", {"slug": slug, "lease": lease, "clear_blocker": True, "note": "ok"}
            )
            assert entry.get("blocker") is None and (entry["note"], entry["progress"]) == ("ok", "form done")

            view = await call(client, "task", {"slug": slug})
            assert view["bucket"] == "active" and view["entry"]["worker"] == "agent-1"
            assert view["task"]["body"].strip() == "Do fix login."
            assert view["dependents"] == [{"slug": "add-search", "status": "ready", "title": "Add search"}]
            assert view["attempts"][-1]["lease"] == lease and view["attempts"][-1]["ended"] is None

            done = await call(client, "finish", {"slug": slug, "lease": lease, "exit_code": 0})
            assert done["state"] == "exited" and done["exit_code"] == 0
            view = await call(client, "task", {"slug": slug})
            assert view["bucket"] == "review" and view["attempts"][-1]["ended"]["type"] == "task.exited"

            rows = await call(client, "tasks", {"bucket": ["review", "backlog"]})
            assert [row["slug"] for row in rows["tasks"]] == ["later", "fix-login"]
            status = await call(client, "status", {})
            assert status["counts"]["review"] == 1 and status["counts"]["waiting"] == 1
        assert open_registry(load(project)).get(slug).state == "exited"  # the repository's registry

    run(main)


def test_tasks_filters_by_slugs_text_status_and_limit(project: Path) -> None:
    async def main() -> None:
        async with connect(project) as client:
            everything = await call(client, "tasks", {})
            assert everything["count"] == 3 and not everything["truncated"]
            assert {row["slug"]: row["bucket"] for row in everything["tasks"]} == {
                "later": "backlog",
                "add-search": "waiting",
                "fix-login": "ready",
            }
            assert [r["slug"] for r in (await call(client, "tasks", {"search": "SEARCH"}))["tasks"]] == [
                "add-search"
            ]
            assert (await call(client, "tasks", {"slugs": ["later", "nope"]}))["count"] == 1
            assert (await call(client, "tasks", {"status": ["not_started"]}))["tasks"][0]["slug"] == "later"
            page = await call(client, "tasks", {"limit": 1})
            assert page["count"] == 3 and len(page["tasks"]) == 1 and page["truncated"]
            assert "bucket 'bogus' is not one of backlog" in await refused(
                client, "tasks", {"bucket": ["bogus"]}
            )
            assert "--status 'done' is not one of" in await refused(client, "tasks", {"status": ["done"]})

    run(main)


def test_create_writes_a_task_file_in_the_workspace(project: Path) -> None:
    async def main() -> None:
        async with connect(project) as client:
            made = await call(
                client, "create", {"title": "Rate limit", "workstream": "api", "labels": ["ops"]}
            )
            assert made == {
                "slug": "rate-limit",
                "path": "tasks/api/rate-limit.md",
                "file": (project / "tasks/api/rate-limit.md").as_posix(),
                "worktree": project.as_posix(),
            }
            assert "labels: [ops]" in (project / "tasks/api/rate-limit.md").read_text(encoding="utf-8")
            assert (await call(client, "task", {"slug": "rate-limit"}))["task"]["status"] == "not_started"
            assert "'ghost' is not a task" in await refused(
                client, "create", {"title": "X", "depends_on": ["ghost"]}
            )
            assert "the title is empty" in await refused(client, "create", {"title": "  "})

    run(main)


def test_next_claims_what_the_dispatcher_would_the_task_files_at_the_base_ref(project: Path) -> None:
    """A ready task created in this worktree is not claimable until it is on the base ref: its
    worktree is made from the base ref, so the task file the prompt names must be there."""

    async def main() -> None:
        async with connect(project) as client:
            await call(client, "finish", await _claimed_and_started(client))  # fix-login: in review
            await call(client, "create", {"title": "Rate limit", "ready": True})
            assert (await call(client, "tasks", {"slugs": ["rate-limit"]}))["count"] == 1  # list: the tree
            ready = json.loads((await client.read_resource("task://ready")).contents[0].text)  # type: ignore[union-attr]
            assert [t["slug"] for t in ready["tasks"]] == []
            assert await call(client, "next") is None
            commit_all(project, "add rate-limit")
            taken = await call(client, "next")
            assert taken["slug"] == "rate-limit"
            assert (Path(taken["worktree"]) / "tasks/rate-limit.md").is_file()

    run(main)


async def _claimed_and_started(client: Client) -> dict[str, Any]:
    taken = await call(client, "next")
    return {"slug": taken["slug"], "lease": taken["lease"], "exit_code": 0}


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_stale_lease_says_stop_working_and_writes_nothing(project: Path, mode: str) -> None:
    async def main() -> None:
        async with connect(project, mode) as client:
            claimed = await call(client, "next", {})
            slug, lease = claimed["slug"], claimed["lease"]
            open_registry(load(project)).stop(slug, reason="operator")
            for name, arguments in (
                ("report", {"slug": slug, "lease": lease, "progress": 90}),
                ("finish", {"slug": slug, "lease": lease, "exit_code": 0}),
            ):
                message = await refused(client, name, arguments)
                assert message.startswith(STALE) and "stopped" in message, message
            entry = open_registry(load(project)).get(slug)
            assert entry.state == "stopped" and entry.progress_percent is None

    run(main)


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("task", {"slug": "ghost"}, "no task or registry entry named 'ghost'"),
        ("task", {}, "invalid arguments for task: slug: Field required"),
        ("report", {"slug": "fix-login", "lease": 1, "progress": 101}, "progress: Input should be less than"),
        ("report", {"slug": "fix-login", "lease": "x"}, "lease: Input should be a valid integer"),
        (
            "report",
            {"slug": "fix-login", "lease": 1, "colour": "red"},
            "colour: Extra inputs are not permitted",
        ),
        ("report", {"slug": "fix-login", "lease": 1}, "no registry entry"),
        ("finish", {"slug": "fix-login", "lease": 1, "exit_code": 300}, "exit_code 300 is not an exit code"),
        ("status", {"owner": " "}, "the owner is empty"),
        ("nope", {}, "no tool named 'nope'"),
        # JSON types as the schema gives them, never coerced: false is not exit code 0
        (
            "finish",
            {"slug": "fix-login", "lease": 1, "exit_code": False},
            "exit_code: Input should be a valid integer",
        ),
        (
            "finish",
            {"slug": "fix-login", "lease": True, "exit_code": 0},
            "lease: Input should be a valid integer",
        ),
        (
            "report",
            {"slug": "fix-login", "lease": 1, "progress": "50"},
            "progress: Input should be a valid integer",
        ),
        ("create", {"title": "T", "ready": "no"}, "ready: Input should be a valid boolean"),
        ("tasks", {"limit": 1.5}, "limit: Input should be a valid integer"),
        (
            "report",
            {"slug": "fix-login", "lease": 1, "evidence": {"command": "make", "exit_code": "0"}},
            "evidence.exit_code: Input should be a valid integer",
        ),
    ],
)
def test_errors_are_tool_results_with_the_cli_messages(
    project: Path, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    async def main() -> None:
        async with connect(project) as client:
            message = await refused(client, tool, arguments)
            assert expected in message, message

    run(main)


def test_report_refuses_contradictions_before_writing(project: Path) -> None:
    async def main() -> None:
        async with connect(project) as client:
            claimed = await call(client, "next", {})
            base = {"slug": claimed["slug"], "lease": claimed["lease"]}
            both = await refused(client, "report", {**base, "blocker": "b", "clear_blocker": True})
            assert "not both" in both
            assert "message goes with progress" in await refused(client, "report", {**base, "message": "m"})
            bad = {**base, "evidence": {"command": "make", "exit_code": 999}}
            assert "evidence.exit_code 999 is not an exit code" in await refused(client, "report", bad)

    run(main)


# -- the other tools (--tools all) ------------------------------------------------------------


def test_the_other_tools(project: Path) -> None:
    async def main() -> None:
        async with connect(project, tools="all") as client:
            assert (await call(client, "ready", {"slug": "later"}))["changed"] is True
            claimed = await call(client, "claim", {"slug": "later", "worker": "w"})
            assert claimed["state"] == "claimed" and claimed["worker"] == "w"
            logged = await call(
                client, "log", {"slug": "later", "message": "hello", "lease": claimed["lease"]}
            )
            assert logged == {"slug": "later", "attempt": 1}
            logs = await call(client, "logs", {"slug": "later"})
            assert [r["message"] for r in logs["records"]] == ["hello"]
            assert (await call(client, "stop", {"slug": "later", "reason": "r"}))["state"] == "stopped"
            assert (await call(client, "retry", {"slug": "later"}))["state"] != "stopped"
            assert (await call(client, "park", {"slug": "later", "reason": "needs a human"}))[
                "state"
            ] == "parked"
            assert "reason" in await refused(client, "park", {"slug": "later", "reason": ""})
            assert (await call(client, "unpark", {"slug": "later"}))["state"] != "parked"
            assert (await call(client, "release", {"slug": "later"}))["state"] == "released"
            types_seen = [e["type"] for e in (await call(client, "events", {"slug": "later"}))["events"]]
            assert types_seen[0] == "task.claimed" and types_seen[-1] == "task.released"
            assert (await call(client, "validate", {}))["ok"] is True
            done = await call(client, "complete", {"slug": "later", "pr": "#12"})
            assert done["changed"] and "status: completed" in (project / "tasks/later.md").read_text("utf-8")
            assert "'later' is completed, not ready" in await refused(client, "claim", {"slug": "later"})

    run(main)


def test_complete_edits_the_task_file_in_the_tasks_own_worktree(project: Path) -> None:
    async def main() -> None:
        async with connect(project, tools="all") as client:
            claimed = await call(client, "next", {})
            done = await call(client, "complete", {"slug": claimed["slug"]})
        worktree = Path(claimed["worktree"])
        assert done["file"] == (worktree / "tasks/web/fix-login.md").as_posix()
        assert "status: completed" in (worktree / "tasks/web/fix-login.md").read_text("utf-8")
        assert "status: ready" in (project / "tasks/web/fix-login.md").read_text("utf-8")  # main untouched

    run(main)


# -- resources ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_resources_mirror_the_tools(project: Path, mode: str) -> None:
    async def main() -> None:
        async with connect(project, mode) as client:
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            assert listed == {"task://status", "task://ready"}
            templates = (await client.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == ["task://{slug}"]

            async def read(uri: str) -> Any:
                content = (await client.read_resource(uri)).contents[0]
                assert content.mime_type == "application/json"
                return json.loads(content.text)  # type: ignore[union-attr]

            tool_view = await call(client, "task", {"slug": "fix-login"})
            resource_view = await read("task://fix-login")
            assert {**resource_view, "runtime": None} == {**tool_view, "runtime": None}
            assert [t["slug"] for t in (await read("task://ready"))["tasks"]] == ["fix-login"]
            assert (await read("task://status"))["counts"] == (await call(client, "status", {}))["counts"]
            with pytest.raises(MCPError, match="no task or registry entry named 'ghost'"):
                await client.read_resource("task://ghost")
            with pytest.raises(MCPError, match="not a taskfiles resource"):
                await client.read_resource("file:///etc/passwd")
            with pytest.raises(MCPError, match="not a taskfiles resource"):
                await client.read_resource("task://../registry")

    run(main)


# -- notifications --------------------------------------------------------------------------


def test_listen_streams_resource_updates_from_the_registry_and_task_files(project: Path) -> None:
    """2026-07-28: ``subscriptions/listen``."""

    async def main() -> None:
        async with connect(project) as client:
            claimed = await call(client, "next", {})
            uri = f"task://{claimed['slug']}"
            async with client.listen(resource_subscriptions=[uri, "task://later"]) as sub:
                await call(
                    client, "report", {"slug": claimed["slug"], "lease": claimed["lease"], "progress": 5}
                )
                with anyio.fail_after(TIMEOUT):
                    async for event in sub:
                        if getattr(event, "uri", None) == uri:
                            break
                path = project / "tasks/later.md"
                path.write_text(path.read_text("utf-8").replace("Later", "Later on"), encoding="utf-8")
                with anyio.fail_after(TIMEOUT):
                    async for event in sub:
                        if getattr(event, "uri", None) == "task://later":
                            break

    run(main)


def test_subscribe_sends_resources_updated_to_a_handshake_era_client(project: Path) -> None:
    """2025-11-25: ``resources/subscribe`` and ``notifications/resources/updated``."""
    updated: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            if "task://fix-login" in updated:
                arrived.set()

    async def main() -> None:
        async with connect(project, "legacy", message_handler=on_message) as client:
            assert client.server_capabilities.resources and client.server_capabilities.resources.subscribe
            claimed = await call(client, "next", {})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated from 2026-07-28 on, which this client is not
                await client.subscribe_resource("task://fix-login")
                await client.subscribe_resource("task://fix-login")  # again: still one subscriber
                with pytest.raises(MCPError, match="not a taskfiles resource"):
                    await client.subscribe_resource("http://example.com/")
            await call(client, "report", {"slug": "fix-login", "lease": claimed["lease"], "note": "hi"})
            with anyio.fail_after(TIMEOUT):
                await arrived.wait()
            assert "task://later" not in updated  # only what was subscribed

    run(main)


# -- worktrees ------------------------------------------------------------------------------


@pytest.fixture
def linked(project: Path) -> Path:
    """A linked worktree of ``project`` on its own branch."""
    place = project.parent / "linked"
    git(project, "worktree", "add", "-q", "-b", "feature", str(place))
    return place


def test_a_server_in_a_linked_worktree_edits_there_and_records_in_the_main_registry(
    project: Path, linked: Path
) -> None:
    async def main() -> None:
        async with connect(linked, tools="all") as client:
            made = await call(client, "create", {"title": "Linked work"})
            assert made["file"] == (linked / "tasks/linked-work.md").as_posix()
            claimed = await call(client, "claim", {"slug": "fix-login"})
        assert not (project / "tasks/linked-work.md").exists()
        assert (project / "registry").is_dir() and not (linked / "registry").exists()
        assert open_registry(load(project)).get("fix-login").lease == claimed["lease"]

    run(main)


def test_the_clients_root_picks_the_worktree_unless_the_server_is_pinned(project: Path, linked: Path) -> None:
    async def roots(_context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=linked.as_uri(), name="linked")])  # type: ignore[arg-type]

    async def main() -> None:
        async with Client(server(project).lowlevel, mode="legacy", list_roots_callback=roots) as client:
            made = await call(client, "create", {"title": "From the root"})
            assert made["file"] == (linked / "tasks/from-the-root.md").as_posix()
        async with Client(
            server(project, pinned=True).lowlevel, mode="legacy", list_roots_callback=roots
        ) as client:
            made = await call(client, "create", {"title": "Pinned"})
            assert made["file"] == (project / "tasks/pinned.md").as_posix()

    run(main)


# -- HTTP -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def http_server(project: Path) -> Iterator[str]:
    """``task mcp --http`` with a token, in a thread; yields its URL."""
    import uvicorn

    port = free_port()
    listen = Listen("127.0.0.1", port, token="s3cret-token")
    instance = Server(
        uvicorn.Config(app(server(project), listen), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    for _ in range(200):
        if instance.started:
            break
        threading.Event().wait(0.05)
    assert instance.started, "the HTTP server did not start"
    yield f"http://127.0.0.1:{port}/mcp"
    instance.should_exit = True
    thread.join(10)


def test_http_needs_the_token_and_a_loopback_host(http_server: str) -> None:
    async def main() -> None:
        headers = {"Authorization": "Bearer s3cret-token"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(http_server, http_client=http)) as client,
        ):
            assert [t.name for t in (await client.list_tools()).tools] == CORE
            claimed = await call(client, "next", {})
            assert claimed["slug"] == "fix-login"
        with pytest.raises(ExceptionGroup) as refusal:  # the SDK's client on a 401
            async with Client(http_server) as client:
                await client.list_tools()
        assert refusal.group_contains(MCPError, match="error response")
        async with httpx2.AsyncClient() as http:
            answer = await http.post(http_server, json={}, headers={"Authorization": "Bearer wrong-token"})
            assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
            answer = await http.post(http_server, json={}, headers={**headers, "Host": "evil.example:80"})
            assert answer.status_code == 421

    run(main)


def test_http_binds_like_task_serve(project: Path) -> None:
    with pytest.raises(UsageError, match="not a loopback address; the task tools"):
        app(server(project), Listen("0.0.0.0", 0))
    with pytest.raises(UsageError, match="needs an access token"):
        app(server(project), Listen("0.0.0.0", 0, allow_remote=True))
    with pytest.raises(UsageError, match="too short"):
        app(server(project), Listen("127.0.0.1", 0, token="short"))
    app(server(project), Listen("0.0.0.0", 0, token="long-enough-token", allow_remote=True))


# -- the real command -----------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "TASKFILES_REGISTRY") if name in os.environ}
    return {**keep, **GIT_IDENTITY, **extra}


def test_end_to_end_over_stdio(project: Path) -> None:
    """``task mcp`` as a real subprocess, with the SDK's stdio client."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "taskfiles", "mcp"], cwd=project, env=child_env()
    )

    async def main() -> None:
        with anyio.fail_after(60):
            async with Client(params) as client:
                assert [t.name for t in (await client.list_tools()).tools] == CORE
                claimed = await call(client, "next", {})
                assert claimed["slug"] == "fix-login" and Path(claimed["worktree"]).is_dir()
                uri = "task://fix-login"
                async with client.listen(resource_subscriptions=[uri]) as sub:
                    entry = await call(
                        client, "report", {"slug": "fix-login", "lease": claimed["lease"], "progress": 50}
                    )
                    assert entry["progress_percent"] == 50
                    async for event in sub:
                        if getattr(event, "uri", None) == uri:
                            break
                done = await call(
                    client, "finish", {"slug": "fix-login", "lease": claimed["lease"], "exit_code": 0}
                )
                assert done["state"] == "exited"

    run(main)
    assert open_registry(load(project)).get("fix-login").state == "exited"


def test_without_the_sdk_task_mcp_says_which_extra_to_install(project: Path) -> None:
    code = (
        "import sys; sys.modules['mcp'] = None; sys.argv = ['task', 'mcp']; "
        "from taskfiles.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'taskfiles[mcp]'" in done.stderr and done.stderr.startswith("error: ")


def test_with_the_sdk_1x_task_mcp_names_it_and_the_extra(project: Path, tmp_path: Path) -> None:
    """The 1.x SDK (which many tools pin) has ``mcp.server.lowlevel`` but not the 2.x modules the
    server imports: one error naming the version found, not a traceback."""
    old = tmp_path / "sdk1"
    (old / "mcp/server").mkdir(parents=True)
    (old / "mcp/__init__.py").write_text("", encoding="utf-8")
    (old / "mcp/server/__init__.py").write_text("", encoding="utf-8")
    (old / "mcp/server/lowlevel.py").write_text("class Server: ...\n", encoding="utf-8")
    (old / "mcp-1.9.4.dist-info").mkdir()
    (old / "mcp-1.9.4.dist-info/METADATA").write_text("Name: mcp\nVersion: 1.9.4\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "taskfiles", "mcp"],
        cwd=project,
        capture_output=True,
        text=True,
        env=child_env(PYTHONPATH=str(old)),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: task mcp needs the MCP Python SDK 2.x (mcp 1.9.4 is installed)")
    assert "pip install 'taskfiles[mcp]'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--port", "9000"], "--port needs --http"),
        (["--host", "0.0.0.0", "--allow-remote"], "--host and --allow-remote need"),
    ],
)
def test_http_options_without_http_are_refused(project: Path, options: list[str], named: str) -> None:
    """Over stdio they would be ignored, and the server would wait on stdin for a client."""
    done = subprocess.run(
        [sys.executable, "-m", "taskfiles", "mcp", *options],
        cwd=project,
        capture_output=True,
        text=True,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.startswith(f"error: {named}"), done.stderr


def test_help_names_the_transports_and_the_extra(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "taskfiles", "mcp", "--help"],
        cwd=project,
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    assert done.returncode == 0
    for words in ("--http", "--tools", "--allow-remote", "taskfiles[mcp]"):
        assert words in done.stdout
