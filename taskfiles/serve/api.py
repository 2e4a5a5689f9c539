"""The JSON API: the same data as the pages, plus the SSE stream.

``/api/status`` is ``task status --json`` (one document, cached per change);
``/api/tasks`` the rows with their planning fields; ``/api/tasks/{slug}`` one
task with its file, entry, links, events and history (its timeline);
``/api/tasks/{slug}/logs`` one attempt's log, ``.../logs/stats`` and ``.../logs/sources`` what it holds, and
``.../logs/stream`` its lines as they are written (SSE); ``/api/metrics`` is ``task
metrics --json``; ``/api/events`` the live stream. Errors are ``{"error": message}``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .. import metrics
from ..errors import NotFoundError, TaskfilesError, UsageError
from ..registry import LogStats, LogTail
from ..state import BUCKETS, Classification
from . import actions, live, overview, taskview
from .board import Board, to_json
from .pages import body_bytes, form_fields, status_of
from .security import Policy


class JSONResponse(Response):
    """orjson-encoded JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else to_json(content)


def error(exc: TaskfilesError) -> JSONResponse:
    """``{"error": message}`` with the status the error class maps to."""
    return JSONResponse({"error": str(exc)}, status_code=status_of(exc))


@dataclass
class Api:
    """The JSON endpoints, sharing the board, policy and hub with the pages."""

    board: Board
    policy: Policy
    hub: live.Hub

    def status(self, request: Request) -> Response:
        """``GET /api/status``: counts, cycle, attention and every row (filters narrow ``tasks``)."""
        reading = self.board.read()
        filters = overview.Filters.from_query(request.query_params)
        if not filters.active:
            return JSONResponse(reading.status_json)
        rows = overview.select(reading.seen.rows, filters, self.board.config)
        document = reading.seen.narrow(rows).to_dict()  # counts and attention follow the rows
        return JSONResponse({**document, "filters": filters.to_dict()})

    def tasks(self, request: Request) -> Response:
        """``GET /api/tasks``: rows with planning fields and the unreadable files (``skipped``);
        ``bucket`` and the page's filters narrow the rows."""
        reading = self.board.read()
        bucket = request.query_params.get("bucket") or None
        if bucket is not None and bucket not in BUCKETS:
            return error(UsageError(f"bucket {bucket!r} is not one of {', '.join(BUCKETS)}"))
        filters = overview.Filters.from_query(request.query_params)
        rows = overview.select(reading.seen.rows, filters, self.board.config)
        found = [_row(c) for c in rows if bucket is None or c.bucket == bucket]
        seen = reading.seen
        return JSONResponse(
            {
                "generated_at": seen.generated_at,
                "ref": seen.ref,
                "count": len(found),
                "tasks": found,
                "skipped": list(seen.skipped),
            }
        )

    def task(self, request: Request) -> Response:
        """``GET /api/tasks/{slug}``: the task, its classification, links, entry and events."""
        slug = request.path_params["slug"]
        try:
            view = self._view(slug, taskview.LogFilter())
        except TaskfilesError as exc:
            return error(exc)
        return JSONResponse(_task_document(view))

    def logs(self, request: Request) -> Response:
        """``GET /api/tasks/{slug}/logs?attempt=&level=&source=``: one attempt's log lines."""
        slug = request.path_params["slug"]
        params = request.query_params
        try:
            _check(slug)
            wanted = taskview.LogFilter.from_query(params)
            page = self.board.registry().logs(
                slug, attempt=wanted.attempt, level=wanted.level, source=wanted.source
            )
        except TaskfilesError as exc:
            return error(exc)
        records = [r.to_dict() for r in page.records]
        return JSONResponse(
            {"slug": slug, "attempt": page.attempt, "records": records, "warnings": list(page.warnings)}
        )

    def log_stats(self, request: Request) -> Response:
        """``GET /api/tasks/{slug}/logs/stats?attempt=``: lines by level and by source, total,
        first and last time, bytes (``LogStats.to_dict``)."""
        try:
            stats = self._stats(request)
        except TaskfilesError as exc:
            return error(exc)
        return JSONResponse(stats.to_dict())

    def log_sources(self, request: Request) -> Response:
        """``GET /api/tasks/{slug}/logs/sources?attempt=``: the sources in the log, by name,
        with how many lines each (the stats' ``sources``)."""
        try:
            stats = self._stats(request)
        except TaskfilesError as exc:
            return error(exc)
        sources = [{"source": name, "count": count} for name, count in stats.to_dict()["sources"].items()]
        return JSONResponse({"slug": stats.slug, "attempt": stats.attempt, "sources": sources})

    def _stats(self, request: Request) -> LogStats:
        slug = request.path_params["slug"]
        _check(slug)
        wanted = taskview.LogFilter.from_query(request.query_params)
        return self.board.registry().log_stats(slug, attempt=wanted.attempt)

    async def log_stream(self, request: Request) -> Response:
        """``GET /api/tasks/{slug}/logs/stream?attempt=&level=&source=&after=``: the attempt's
        log lines as server-sent events, filtered here: ``log`` (id ``<attempt>:<position>``;
        after the ``Last-Event-ID`` when given, else after ``after``), keep-alives, and
        ``end`` once it is over."""
        slug = request.path_params["slug"]
        registry = self.board.registry()
        try:
            _check(slug)
            wanted = taskview.LogFilter.from_query(request.query_params)
            attempt, after = live.resume_after(
                request.headers.get("last-event-id"), wanted.attempt, request.query_params.get("after")
            )
            first = await run_in_threadpool(
                registry.log_tail,
                slug,
                attempt=attempt,
                after=after,
                level=wanted.level,
                source=wanted.source,
            )
        except TaskfilesError as exc:
            return error(exc)

        def read(position: int) -> Awaitable[LogTail]:
            return run_in_threadpool(
                registry.log_tail,
                slug,
                attempt=first.attempt,
                after=position,
                level=wanted.level,
                source=wanted.source,
            )

        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        body = live.log_stream(self.hub, first, read)
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    def metrics(self, request: Request) -> Response:
        """``GET /api/metrics?window=&by=``: the document ``task metrics --json`` prints (400
        naming the allowed values for a bad window or grouping)."""
        params = request.query_params
        try:
            window = metrics.window_named(params.get("window") or metrics.DEFAULT_WINDOW)
            found = self.board.metrics(window, metrics.grouping_named(params.get("by")))
        except TaskfilesError as exc:
            return error(exc)
        return JSONResponse(found.to_dict())

    async def action(self, request: Request) -> Response:
        """``POST /api/tasks/{slug}/actions/{action}``: the entry after the action."""
        slug, action = request.path_params["slug"], request.path_params["action"]
        if not taskview.valid_slug(slug) or action not in taskview.ACTIONS:
            return error(NotFoundError(f"no action {action[:40]!r} for {slug[:80]!r}"))
        try:
            body = await _body(request)
        except UsageError as exc:
            return error(exc)
        client = request.client.host if request.client else None
        refusal = self.policy.action_refusal(request.headers, client, body.get("csrf"))
        if refusal:
            return JSONResponse({"error": refusal}, status_code=403)
        registry = self.board.registry(self.policy.actor(client, request.headers))
        try:
            reason, fresh = actions.text_field(body, "reason"), actions.flag_field(body, "fresh")
            instructions = actions.text_field(body, "instructions")
            entry = await run_in_threadpool(
                actions.perform, registry, slug, action, reason=reason, fresh=fresh, instructions=instructions
            )
        except TaskfilesError as exc:
            return error(exc)
        self.board.invalidate()
        return JSONResponse({"action": action, "entry": entry.to_dict(sparse=False)})

    async def events(self, request: Request) -> Response:
        """``GET /api/events``: server-sent events (hello, change, registry, resync)."""
        headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
        body = live.stream(self.hub, self.board.generation)
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    def _view(self, slug: str, logs: taskview.LogFilter) -> taskview.TaskView:
        _check(slug)
        return taskview.build(self.board.read(), self.board.registry(), slug, logs)


def _check(slug: str) -> None:
    if not taskview.valid_slug(slug):
        raise NotFoundError(f"{slug[:80]!r} is not a task slug")


async def _body(request: Request) -> dict[str, Any]:
    """A JSON object or form body (empty when there is none), at most ``MAX_FORM_BYTES``.

    A JSON body that does not parse, or is not an object, is a UsageError: acting on it
    as if it were empty would retry without the instructions or the ``fresh`` it meant.
    """
    if not request.headers.get("content-type", "").startswith("application/json"):
        return await form_fields(request)
    raw = await body_bytes(request)
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UsageError(
            f'the body is not JSON ({exc}); send an object such as {{"reason": "..."}}'
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            f'the body is a JSON {type(data).__name__}, not an object such as {{"reason": "..."}}'
        )
    return data


def _row(c: Classification) -> dict[str, Any]:
    row = c.to_dict()
    task = c.task
    row.update(
        milestone=task.milestone if task else None,
        labels=list(task.labels) if task else [],
        workstream=task.workstream if task else None,
        depends_on=list(task.depends_on) if task else [],
    )
    return row


def _task_document(view: taskview.TaskView) -> dict[str, Any]:
    logs = view.logs
    return {
        "slug": view.slug,
        "task": view.task.to_dict(body=True) if view.task else None,
        "classification": view.row.to_dict() if view.row else None,
        "entry": view.entry.to_dict(sparse=False) if view.entry else None,
        "dependencies": [link.to_dict() for link in view.dependencies],
        "dependents": [link.to_dict() for link in view.dependents],
        "actions": list(view.actions),
        "attempts": list(logs.attempts),
        "events": [event.to_dict() for event in view.events],
        "events_total": view.events_total,
        # The timeline of ``task history --json``'s items: file commits and events, oldest first.
        "history": [item.to_dict() for item in view.history.items] if view.history else [],
        "errors": list(view.errors),
    }
