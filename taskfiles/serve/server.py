"""Run the app under uvicorn: the bind rules, then serve until interrupted."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from ..config import Config
from ..errors import UsageError
from .app import create_app
from .security import is_loopback

SHUTDOWN_GRACE_S = 2  # open SSE streams never end by themselves
MAX_PORT = 65535


@dataclass(frozen=True)
class Options:
    """What ``task serve`` was asked for."""

    host: str = "127.0.0.1"
    port: int = 8005
    token: str | None = None
    token_name: str = "token"
    allow_remote: bool = False
    ref: str | None = None
    working_tree: bool = False


def check_bind(options: Options, served: str = "the page and its actions") -> None:
    """A port from 0 (any free port) to 65535; loopback by default, anything else needs
    --allow-remote and an access token. ``served`` names what would be exposed."""
    if not 0 <= options.port <= MAX_PORT:
        raise UsageError(
            f"port {options.port} is outside 0..{MAX_PORT}; pick a free port such as 8005, "
            "or 0 for any free one"
        )
    if is_loopback(options.host):
        return
    if not options.allow_remote:
        raise UsageError(
            f"{options.host} is not a loopback address; {served} would be open to "
            "the network: pass --allow-remote together with --token to do that on purpose"
        )
    if not options.token:
        raise UsageError("--allow-remote needs an access token: pass --token or set TASKFILES_SERVE_TOKEN")


class Server(uvicorn.Server):
    """uvicorn, ending the app's SSE streams first on shutdown so open pages do not hold it up."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        services = getattr(getattr(app, "state", None), "services", None)
        if services is not None:
            services.hub.close()
        await super().shutdown(sockets)


def server(config: Config, options: Options) -> Server:
    """A uvicorn server for the app (not started)."""
    check_bind(options)
    app = create_app(
        config,
        token=options.token,
        token_name=options.token_name,
        allow_remote=options.allow_remote,
        ref=options.ref,
        working_tree=options.working_tree,
    )
    settings = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level="warning",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        lifespan="on",
    )
    return Server(settings)


def bound_url(instance: Server) -> str:
    """http://host:port/ the server listens on (the real port when 0 was asked for)."""
    sock = instance.servers[0].sockets[0]
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"


def run(config: Config, options: Options, on_started: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted; ``on_started`` gets the URL once the socket is bound."""
    run_until_interrupted(server(config, options), on_started)


def run_until_interrupted(
    instance: Server, on_started: Callable[[str], None] | None = None, path: str = "/"
) -> None:
    """Run ``instance`` (the page, or ``task mcp --http``) until interrupted; ``on_started``
    gets its URL (``path`` on the bound address) once the socket is bound."""
    if on_started is not None:
        threading.Thread(target=_announce, args=(instance, on_started, path), daemon=True).start()
    instance.run()


def _announce(instance: Server, on_started: Callable[[str], None], path: str) -> None:
    while not instance.started:
        if instance.should_exit:
            return
        threading.Event().wait(0.05)
    on_started(bound_url(instance).rstrip("/") + path)
