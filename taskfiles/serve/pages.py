"""The HTML pages: overview, task, dependency view, login, and the action forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .. import metrics
from ..errors import ConflictError, NotFoundError, TaskfilesError, UsageError
from . import actions, dagview, overview, taskview
from .board import Board, Reading
from .metrics import Card
from .render import Renderer
from .security import Policy, login_cookie, same_origin

# Instructions may be 16,000 characters; percent-encoded (a form) or \u-escaped (JSON),
# one character can take 12 bytes, and the longest must still fit.
MAX_FORM_BYTES = 256 * 1024


async def body_bytes(request: Request) -> bytes:
    """The request's body, at most ``MAX_FORM_BYTES`` (UsageError past it, read no further)."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_FORM_BYTES:
            raise UsageError(f"the body is over {MAX_FORM_BYTES} bytes")
    return bytes(data)


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (the page's forms are no more), at most ``MAX_FORM_BYTES``."""
    data = await body_bytes(request)
    return dict(parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True))


def status_of(error: TaskfilesError) -> int:
    """The HTTP status for an error of the one hierarchy."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    return 400 if isinstance(error, UsageError) else 500


@dataclass
class Pages:
    """The HTML endpoints, sharing one board, renderer and policy."""

    board: Board
    renderer: Renderer
    policy: Policy

    def _base(self, request: Request, reading: Reading, page: str, **extra: Any) -> dict[str, Any]:
        seen = reading.seen
        return {
            "page": page,
            "slug": "",
            "csrf": self.policy.csrf,
            "source": seen.ref or "working tree",
            "seen": seen,
            "now": self.board.clock(),
            "token_mode": bool(self.policy.token),
            "error": None,
            **extra,
        }

    def overview(self, request: Request) -> Response:
        """``/``: cards, attention, active, ready queue, waiting, review, done, cycle, metrics."""
        reading = self.board.read()
        filters = overview.Filters.from_query(request.query_params)
        window = _window(request.query_params.get("window"))
        view = overview.build(reading, filters, self.board.config)
        context = self._base(
            request,
            reading,
            "overview",
            view=view,
            filters=filters,
            window=window,
            windows=tuple(metrics.WINDOWS),
            metrics=self._card(window),
        )
        return self.renderer.page(request, "overview.html", context)

    def _card(self, window: str) -> Card:
        """The metrics card; a registry that cannot be read is a banner in it, not an error page."""
        try:
            return Card(self.board.metrics(window))
        except TaskfilesError as exc:
            return Card(None, str(exc))

    def task(self, request: Request) -> Response:
        """``/tasks/{slug}``: the task file, its state, entry, logs and events."""
        slug = request.path_params["slug"]
        return self._task(request, slug)

    def _task(self, request: Request, slug: str, *, error: str | None = None, status: int = 200) -> Response:
        reading = self.board.read()
        try:
            if not taskview.valid_slug(slug):
                raise NotFoundError(f"{slug[:80]!r} is not a task slug")
            logs = taskview.LogFilter.from_query(request.query_params)
            view = taskview.build(reading, self.board.registry(), slug, logs)
        except TaskfilesError as exc:
            return self._error(request, reading, exc)
        done = request.query_params.get("done")
        context = self._base(
            request,
            reading,
            "task",
            slug=slug,
            view=view,
            logfilter=logs,
            error=error,
            done=done if done in taskview.ACTIONS else None,
        )
        return self.renderer.page(request, "task.html", context, status=status)

    def _error(self, request: Request, reading: Reading, error: TaskfilesError) -> Response:
        context = self._base(request, reading, "error", error=str(error))
        return self.renderer.page(request, "error.html", context, status=status_of(error))

    async def action(self, request: Request) -> Response:
        """``POST /tasks/{slug}/{action}``: retry, stop, park, unpark or release, then back to the task."""
        slug, action = request.path_params["slug"], request.path_params["action"]
        if not taskview.valid_slug(slug) or action not in taskview.ACTIONS:
            return HTMLResponse("no such task action", status_code=404)
        try:
            form = await form_fields(request)
        except UsageError as exc:
            return HTMLResponse(str(exc), status_code=413)
        client = request.client.host if request.client else None
        refusal = self.policy.action_refusal(request.headers, client, form.get("csrf"))
        if refusal:
            return HTMLResponse(refusal, status_code=403)
        registry = self.board.registry(self.policy.actor(client, request.headers))
        try:
            reason, fresh = actions.text_field(form, "reason"), actions.flag_field(form, "fresh")
            instructions = actions.text_field(form, "instructions")
            await run_in_threadpool(
                actions.perform, registry, slug, action, reason=reason, fresh=fresh, instructions=instructions
            )
        except TaskfilesError as exc:
            return await run_in_threadpool(self._task, request, slug, error=str(exc), status=status_of(exc))
        self.board.invalidate()  # the acting browser sees its own change at once
        return RedirectResponse(f"/tasks/{slug}?done={action}", status_code=303)

    def graph(self, request: Request) -> Response:
        """``/graph``: the open tasks' dependencies, drawn and listed, narrowed by the overview's filters."""
        reading = self.board.read()
        filters = overview.Filters.from_query(request.query_params)
        view = reading.memo(
            "graph:" + filters.query(), lambda: dagview.build(reading, filters, self.board.config)
        )
        choices = reading.memo("choices", lambda: overview.choices(reading))
        context = self._base(request, reading, "graph", view=view, filters=filters, choices=choices)
        return self.renderer.page(request, "graph.html", context)

    async def login(self, request: Request) -> Response:
        """``/login``: a token form that sets the session cookie (only when a token is configured)."""
        error = None
        if request.method == "POST":
            form = await form_fields(request)
            if not same_origin(request.headers):
                error = "cross-site login refused"
            elif self.policy.token_ok(form.get("token", "")):
                response = RedirectResponse("/", status_code=303)
                response.headers["set-cookie"] = login_cookie(self.policy)
                return response
            else:
                error = "that is not the access token"
        html = self.renderer.text("login.html", {"page": "login", "slug": "", "error": error})
        return HTMLResponse(html, status_code=401 if error else 200)


def _window(raw: str | None) -> str:
    """The metrics window (one of ``metrics.WINDOWS``; a bare number of days reads as such);
    the default for a missing or unknown one: a link to the page should not fail over it."""
    try:
        return metrics.window_named(raw or metrics.DEFAULT_WINDOW)
    except UsageError:
        return metrics.DEFAULT_WINDOW
