"""``task mcp --http``: the server over streamable HTTP, with ``task serve``'s access rules.

The bind and token rules are ``task serve``'s own (``serve.server.check_bind``,
``serve.security.Policy``), not a second copy: loopback unless ``--allow-remote``, which
needs a token; with a token every request carries ``Authorization: Bearer <token>``
(there is no login page: MCP clients send headers); without ``--allow-remote`` the Host
header must name a loopback host (421 otherwise), so a web page cannot reach the server
through DNS rebinding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ..serve.security import Policy
from ..serve.server import Options, Server, check_bind, run_until_interrupted
from .server import TaskServer

PATH = "/mcp"


@dataclass(frozen=True)
class Listen:
    """Where and for whom to listen."""

    host: str = "127.0.0.1"
    port: int = 8006
    token: str | None = None
    token_name: str = "token"
    allow_remote: bool = False


class Guard:
    """ASGI middleware: the Host check, then the bearer token when one is configured."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self.policy.host_allowed(headers.get("host")):
            await _reply(send, 421, b"this server answers to localhost only (see task mcp --allow-remote)")
        elif self.policy.token and not self.policy.bearer(headers):
            await _reply(send, 401, b"an access token is required: send Authorization: Bearer <token>")
        else:
            await self.app(scope, receive, send)


async def _reply(send: Send, status: int, text: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


def app(server: TaskServer, listen: Listen) -> ASGIApp:
    """The streamable HTTP app at ``/mcp`` behind the guard; UsageError for a bind or token
    ``task serve`` would refuse."""
    options = Options(listen.host, listen.port, listen.token, listen.token_name, listen.allow_remote)
    check_bind(options, served="the task tools (claims, reports, new task files)")
    policy = Policy(token=listen.token, token_name=listen.token_name, allow_remote=listen.allow_remote)
    # The guard checks Host: the SDK's own check (loopback names only) would refuse a remote bind.
    inner = server.lowlevel.streamable_http_app(
        streamable_http_path=PATH,
        host=listen.host,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return Guard(inner, policy)


def serve(server: TaskServer, listen: Listen, on_started: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted; ``on_started`` gets the endpoint's URL once the socket is bound."""
    settings = uvicorn.Config(app(server, listen), host=listen.host, port=listen.port, log_level="warning")
    run_until_interrupted(Server(settings), on_started, PATH)
