"""The MCP server: tools from the tool table, resources mirroring them, change notifications.

Built on the SDK's low-level ``Server`` (``mcp`` 2.x), so the tool list is exactly the
table's (compact schemas) and every failure is ours to word:

- a ``TaskfilesError`` is a tool result with ``isError`` and the CLI's message; a stale
  lease (``StaleLeaseError``) reads "stop working on this task: ..."; arguments that do
  not fit the schema name each field and what is wrong. None becomes a protocol error.
- Resources: ``task://{slug}``, ``task://status``, ``task://ready`` (JSON, the same
  documents as ``task`` and ``status``). Changes reach clients of both protocol eras:
  ``subscriptions/listen`` streams (2026-07-28, the SDK's subscription bus) and
  ``resources/subscribe`` + ``notifications/resources/updated`` (2025-11-25 and before).
- The workspace: ``--repo``/the server's folder, or, when the server is not pinned and a
  client on a handshake-era protocol declares roots, its first ``file://`` root, asked
  on every call (roots change; the 2026-07-28 protocol deprecates them).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from ..errors import StaleLeaseError, TaskfilesError, described
from ..slugs import check_slug
from . import views
from .feed import READY_URI, STATUS_URI, Feed
from .tools import Call, Tool
from .workspace import Workspace, choose

NAME = "taskfiles"
MIME = "application/json"
STALE = "stop working on this task: "
INSTRUCTIONS = (
    "Task manager for this repository. Call next to claim a task (it returns your lease, "
    "worktree and prompt), report every few minutes with the lease (it is your heartbeat), "
    "finish when done. A result starting 'stop working on this task' means stop."
)


@dataclass
class Subscribers:
    """Handshake-era ``resources/subscribe`` registrations: per connection, its URIs."""

    by_connection: dict[int, tuple[ServerSession, set[str]]] = field(default_factory=dict)

    def add(self, session: ServerSession, uri: str) -> None:
        key = _connection_key(session)
        self.by_connection.setdefault(key, (session, set()))[1].add(uri)

    def remove(self, session: ServerSession, uri: str) -> None:
        found = self.by_connection.get(_connection_key(session))
        if found is not None:
            found[1].discard(uri)

    async def notify(self, changed: frozenset[str]) -> None:
        """Send ``notifications/resources/updated`` for each subscribed URI that changed; a
        connection that is gone is forgotten."""
        for key, (session, wanted) in list(self.by_connection.items()):
            for uri in sorted(wanted & changed):
                try:
                    await session.send_resource_updated(uri)
                except Exception:  # the client went away (closed stream, broken pipe)
                    self.by_connection.pop(key, None)
                    break


def _connection_key(session: ServerSession) -> int:
    """One key per client connection. The SDK (2.3) builds a ``ServerSession`` per request and
    gives handlers no public handle on the connection behind it, so this reads its
    ``_connection``: without it every subscribe would count as a new subscriber."""
    return id(getattr(session, "_connection", session))


class TaskServer:
    """The tools, resources and notifications of one ``task mcp`` process."""

    def __init__(self, workspace: Workspace, tools: Sequence[Tool[Any]], *, pinned: bool = False) -> None:
        self.workspace = workspace
        self.tools = {tool.name: tool for tool in tools}
        self.pinned = pinned  # --repo given: the client's roots do not move the server
        self.bus = InMemorySubscriptionBus()
        self.subscribers = Subscribers()
        self.lowlevel: Server[Any] = Server(
            NAME,
            version=_version(),
            instructions=INSTRUCTIONS,
            lifespan=self._lifespan,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
            on_subscriptions_listen=ListenHandler(self.bus),
        )

    def run_stdio(self) -> None:
        """Serve one client over stdin and stdout until it closes them."""
        anyio.run(self._stdio)

    async def _stdio(self) -> None:
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read, write):
            await self.lowlevel.run(read, write, self.lowlevel.create_initialization_options())

    # -- notifications --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, _server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        feed = Feed(self.workspace, self.publish)
        async with anyio.create_task_group() as group:
            group.start_soon(feed.run)
            try:
                yield {"feed": feed}
            finally:
                feed.stop()

    async def publish(self, changed: frozenset[str]) -> None:
        """Tell every listening client that ``changed`` (resource URIs) changed."""
        for uri in sorted(changed):
            await self.bus.publish(ResourceUpdated(uri=uri))
        await self.subscribers.notify(changed)

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        _resource_of(str(params.uri))  # refuse a URI that names no resource
        self.subscribers.add(ctx.session, str(params.uri))
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        self.subscribers.remove(ctx.session, str(params.uri))
        return types.EmptyResult()

    # -- tools ------------------------------------------------------------------------------

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(tool) for tool in self.tools.values()])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = self.tools.get(params.name)
        if tool is None:
            return _error(f"no tool named {params.name!r}; the tools are {', '.join(self.tools)}")
        try:
            args = tool.args.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _error(f"invalid arguments for {tool.name}: {_fields(exc)}")
        roots = await self._roots(ctx)
        client = _client_name(ctx.session)
        try:
            result = await anyio.to_thread.run_sync(self._run, tool, args, roots, client)
        except StaleLeaseError as exc:
            return _error(STALE + str(exc))
        except TaskfilesError as exc:
            return _error(str(exc))
        except OSError as exc:  # a file the library does not translate (a full disk mid-edit)
            return _error(described(exc))
        return _result(result)

    def _run(self, tool: Tool[Any], args: Any, roots: list[str], client: str | None) -> Any:
        return tool.run(Call(choose(self.workspace, roots), client), args)

    async def _roots(self, ctx: ServerRequestContext[Any]) -> list[str]:
        """The client's roots, when it may be asked and has them (see the module docstring)."""
        session = ctx.session
        declared = session.client_capabilities
        if self.pinned or declared is None or declared.roots is None or not session.can_send_request:
            return []
        with warnings.catch_warnings():  # roots are deprecated only from 2026-07-28 on
            warnings.simplefilter("ignore")
            try:
                listed = await session.list_roots()
            except MCPError:  # a client that declared roots but cannot list them now
                return []
        return [str(root.uri) for root in listed.roots]

    # -- resources ------------------------------------------------------------------------

    async def _list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri=STATUS_URI, name="status", mime_type=MIME, description="The status tool's document."
                ),
                types.Resource(
                    uri=READY_URI,
                    name="ready",
                    mime_type=MIME,
                    description="The tasks next claims, in order.",
                ),
            ]
        )

    async def _list_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            uri_template="task://{slug}", name="task", mime_type=MIME, description="The task tool's document."
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def _read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        kind, slug = _resource_of(uri)
        roots = await self._roots(ctx)
        try:
            data = await anyio.to_thread.run_sync(self._read, kind, slug, roots)
        except (TaskfilesError, OSError) as exc:
            raise MCPError(types.INVALID_PARAMS, described(exc), {"uri": uri}) from None
        text = json.dumps(data, ensure_ascii=False)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, text=text, mime_type=MIME)]
        )

    def _read(self, kind: str, slug: str, roots: list[str]) -> Mapping[str, Any]:
        ws = choose(self.workspace, roots)
        if kind == "status":
            return views.status_view(ws)
        if kind == "ready":
            return views.ready_view(ws)
        return views.task_view(ws, slug)


def _resource_of(uri: str) -> tuple[str, str]:
    """(kind, slug) of a resource URI; an MCP error for one that names none."""
    if uri == STATUS_URI:
        return "status", ""
    if uri == READY_URI:
        return "ready", ""
    slug = uri.removeprefix("task://")
    try:
        if slug == uri:
            raise ValueError
        check_slug(slug)
    except (ValueError, TaskfilesError):
        message = f"{uri} is not a taskfiles resource; use task://status, task://ready or task://<slug>"
        raise MCPError(types.INVALID_PARAMS, message, {"uri": uri}) from None
    return "task", slug


def _tool(tool: Tool[Any]) -> types.Tool:
    hints = types.ToolAnnotations(read_only_hint=True) if tool.read_only else None
    return types.Tool(
        name=tool.name, description=tool.description, input_schema=tool.schema(), annotations=hints
    )


def _result(value: Any) -> types.CallToolResult:
    text = json.dumps(value, ensure_ascii=False)
    structured = dict(value) if isinstance(value, Mapping) else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured
    )


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _fields(exc: ValidationError) -> str:
    """Each problem as ``field: message``, never the rejected values (they are the caller's data)."""
    parts = []
    for problem in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in problem["loc"]) or "arguments"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)


def _client_name(session: ServerSession) -> str | None:
    params = session.client_params
    return params.client_info.name if params is not None and params.client_info else None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("taskfiles")
    except PackageNotFoundError:
        return "0"
