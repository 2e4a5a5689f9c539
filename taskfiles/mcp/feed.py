"""Which resources changed: the registry's change feed and edits to task files, as URIs.

Two threads, each a blocking watcher: ``Registry.watch`` (the JSON store's folder, a
database's LISTEN) and watchfiles on the workspace's ``tasks/``. Each batch becomes the
URIs it touches: ``task://<slug>`` of every changed task, and ``task://status`` and
``task://ready`` whenever anything changed (a change to one task can move another's
bucket). ``publish`` runs on the server's event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from ..errors import described
from ..slugs import slug_of
from .workspace import Workspace

STATUS_URI = "task://status"
READY_URI = "task://ready"
RETRY_S = 1.0  # a watcher that failed (a store not there yet, inotify limits) looks again after this

Publish = Callable[[frozenset[str]], Coroutine[Any, Any, None]]


def task_uri(slug: str) -> str:
    """The resource of one task."""
    return f"task://{slug}"


def uris(slugs: Iterable[str]) -> frozenset[str]:
    """The resources a change to ``slugs`` touches (the lists too, even for no slug: the
    registry changed somewhere)."""
    return frozenset({STATUS_URI, READY_URI, *(task_uri(slug) for slug in slugs)})


class Feed:
    """Runs the two watchers until stopped, handing each batch's URIs to ``publish``."""

    def __init__(self, ws: Workspace, publish: Publish) -> None:
        self.ws = ws
        self.publish = publish
        self.halt = threading.Event()
        self.error: str | None = None

    async def run(self) -> None:
        """Watch until ``stop`` is called (or the task is cancelled)."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._in_thread, self._follow_registry)
            group.start_soon(self._in_thread, self._follow_files)

    def stop(self) -> None:
        """End both watchers (each notices within about a second)."""
        self.halt.set()

    async def _in_thread(self, follow: Callable[[], None]) -> None:
        await anyio.to_thread.run_sync(follow, abandon_on_cancel=True)

    def _send(self, changed: frozenset[str]) -> None:
        if not self.halt.is_set():
            anyio.from_thread.run(self.publish, changed)

    def _follow_registry(self) -> None:
        registry = self.ws.registry()  # this thread's own handle
        while not self.halt.is_set():
            try:
                for change in registry.watch(self.halt):
                    if change.scopes - {"logs"}:  # a log line changes no resource
                        self._send(uris(change.slugs))
            except Exception as exc:  # an unreadable store, a lost connection: look again
                self.error = f"{type(exc).__name__}: {described(exc)}"
                self.halt.wait(RETRY_S)

    def _follow_files(self) -> None:
        from watchfiles import watch

        folder = self.ws.config.tasks_dir
        while not self.halt.is_set():
            if not folder.is_dir():
                self.halt.wait(RETRY_S)
                continue
            try:
                for batch in watch(
                    folder,
                    stop_event=self.halt,
                    debounce=100,
                    rust_timeout=1000,
                    yield_on_timeout=True,
                    raise_interrupt=False,
                ):
                    slugs = {slug_of(path) for _, path in batch if Path(path).suffix == ".md"}
                    if slugs:
                        self._send(uris(slugs))
            except (OSError, RuntimeError) as exc:  # the folder vanished mid-watch, inotify limits
                self.error = f"{type(exc).__name__}: {described(exc)}"
                self.halt.wait(RETRY_S)
