"""``task mcp``: the task manager as an MCP server, for AI agents (stdio or streamable HTTP)."""

from __future__ import annotations

from typing import Annotated

import click
from click.core import ParameterSource

from ..errors import UsageError
from .app import config
from .params import App, Option


def register(app: App) -> None:
    """Add ``mcp`` to ``app``."""
    app.command("mcp")(mcp)


def mcp(
    ctx: click.Context,
    tools: Annotated[
        str,
        Option(
            help="Which tools: 'default' (tasks, task, next, report, finish, create, status), 'all', "
            "or names separated by commas."
        ),
    ] = "default",
    http: Annotated[bool, Option("--http", help="Serve streamable HTTP at /mcp instead of stdio.")] = False,
    host: Annotated[
        str, Option(help="With --http: address to listen on (loopback unless --allow-remote).")
    ] = "127.0.0.1",
    port: Annotated[int, Option(help="With --http: port, 0..65535 (0: any free port).")] = 8006,
    token: Annotated[
        str | None,
        Option(
            envvar="TASKFILES_SERVE_TOKEN",
            help="With --http: the token every request must carry (Authorization: Bearer); "
            "prefer $TASKFILES_SERVE_TOKEN, which ps does not show.",
        ),
    ] = None,
    allow_remote: Annotated[
        bool, Option("--allow-remote", help="With --http: allow a non-loopback --host; needs a token.")
    ] = False,
) -> None:
    """Serve the task manager over the Model Context Protocol (stdio by default).

    Seven tools by default (under 2,000 tokens of tool list); resources task://<slug>,
    task://status and task://ready with change notifications. Task files are edited in the
    worktree the server runs in (-C/--repo, or the client's root when not given); runtime
    state goes to the repository's registry. Needs the mcp extra: pipx install --force
    'taskfiles[mcp]' (or uv tool install, or pip install, where taskfiles is installed).
    """
    from ..mcp import require_sdk

    _http_options_need_http(ctx, http)
    require_sdk()
    from ..mcp.server import TaskServer
    from ..mcp.tools import chosen
    from ..mcp.workspace import Workspace

    pinned = ctx.find_root().obj.get("repo") is not None
    server = TaskServer(Workspace(config(ctx)), chosen(tools), pinned=pinned)
    if not http:
        server.run_stdio()  # stdout is the protocol's: nothing else may be printed there
        return
    from ..mcp.http import Listen, serve

    def started(url: str) -> None:
        click.echo(f"serving {config(ctx).root.as_posix()} over MCP at {url} (Ctrl-C to stop)", err=True)

    serve(server, Listen(host, port, token, "token", allow_remote), on_started=started)


def _http_options_need_http(ctx: click.Context, http: bool) -> None:
    """UsageError for --host, --port or --allow-remote without --http: over stdio they would be
    ignored, and the server would wait on stdin while the user waits for a port."""
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("host", "port", "allow_remote")
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]
    if given and not http:
        verb = "needs" if len(given) == 1 else "need"
        raise UsageError(f"{' and '.join(given)} {verb} --http; over stdio there is no address to listen on")
