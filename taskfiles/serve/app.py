"""The starlette application: routes, the one watcher, the access guard."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..config import Config
from .api import Api
from .board import Board, Clock
from .live import Hub, Watcher
from .pages import Pages
from .render import STATIC, Renderer
from .security import Guard, Policy


@dataclass
class Services:
    """What one app instance shares between requests (``app.state.services``)."""

    board: Board
    hub: Hub
    policy: Policy
    watcher: Watcher


def create_app(
    config: Config,
    *,
    token: str | None = None,
    token_name: str = "token",
    allow_remote: bool = False,
    ref: str | None = None,
    working_tree: bool = False,
    clock: Clock | None = None,
    watch: bool = True,
    max_age: float = 60.0,
) -> Starlette:
    """The status page, API and live stream for ``config``'s repository.

    Task files are read like ``task status`` reads them: at ``ref``, else at the
    base ref, else (or with ``working_tree``) from the working tree. ``token``
    is required with ``allow_remote``. ``watch`` starts the file watcher with the
    app's lifespan (tests that need no live updates turn it off); ``max_age`` is the
    oldest status report served (0: recompute on every request).
    """
    policy = Policy(token=token, token_name=token_name, allow_remote=allow_remote)
    board = Board(config, ref=ref, working_tree=working_tree, clock=clock, max_age=max_age)
    hub = Hub()
    services = Services(board, hub, policy, Watcher(config, board, hub))
    pages = Pages(board, Renderer(), policy)
    api = Api(board, policy, hub)
    app = Starlette(
        routes=_routes(pages, api),
        middleware=[Middleware(Guard, policy=policy)],
        lifespan=_lifespan(services, watch),
    )
    app.state.services = services
    return app


def _routes(pages: Pages, api: Api) -> list[Route | Mount]:
    return [
        Route("/", pages.overview, methods=["GET"]),
        Route("/tasks/{slug}", pages.task, methods=["GET"]),
        Route("/tasks/{slug}/{action}", pages.action, methods=["POST"]),
        Route("/graph", pages.graph, methods=["GET"]),
        Route("/login", pages.login, methods=["GET", "POST"]),
        Route("/api/status", api.status, methods=["GET"]),
        Route("/api/tasks", api.tasks, methods=["GET"]),
        Route("/api/tasks/{slug}", api.task, methods=["GET"]),
        Route("/api/tasks/{slug}/logs", api.logs, methods=["GET"]),
        Route("/api/metrics", api.metrics, methods=["GET"]),
        Route("/api/tasks/{slug}/logs/stats", api.log_stats, methods=["GET"]),
        Route("/api/tasks/{slug}/logs/sources", api.log_sources, methods=["GET"]),
        Route("/api/tasks/{slug}/logs/stream", api.log_stream, methods=["GET"]),
        Route("/api/tasks/{slug}/actions/{action}", api.action, methods=["POST"]),
        Route("/api/events", api.events, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def _lifespan(services: Services, watch: bool) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(services.watcher.run(stop)) if watch else None
        try:
            yield
        finally:
            stop.set()
            services.hub.close()
            if task is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, 3)

    return lifespan
