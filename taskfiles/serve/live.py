"""Live updates: ONE watcher per server process, broadcast to every browser over SSE.

The watcher sees tasks/ and the git refs through watchfiles (inotify; the page
reads task files at the base ref, like ``task status``), and the registry through
its own change feed, ``Registry.watch`` (the JSON store watches its folder; a
database store would LISTEN). For each batch of changes it invalidates the shared
reading, then sends every connected client a ``change`` message naming what
changed (``tasks``, ``registry``, ``cycle``, ``ref``, ``logs``) and which slugs;
pages refetch the part they show. The events recorded meanwhile go out as
``registry`` messages for API clients. A client too slow to keep up gets one
``resync`` instead of a backlog.

A log stream (``/api/tasks/{slug}/logs/stream``) is one client following one
attempt's log: the same watcher wakes it when that task's logs or entry change
(``Hub.wake``), it reads the lines after the last one it sent, filtered by the
registry (``Registry.log_tail``), and ends with ``end`` once the attempt is over.
It also reads every ``LOG_POLL_S`` on its own, so a missed wake-up costs that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from watchfiles import Change, awatch

from ..config import Config
from ..errors import UsageError
from ..registry import Event, LogTail
from .board import Board

RETRY_MS = 1000  # how soon a browser reconnects after the server went away
KEEPALIVE_S = 15.0
QUEUE_SIZE = 64
IGNORED_SUFFIXES = (".tmp", ".lock", ".bak", ".swp", ".swx", "~")
LOG_POLL_S = 2.0  # a log stream reads this often even when nothing woke it


def message(event: str, data: Mapping[str, Any], event_id: str | None = None) -> bytes:
    """One SSE message (JSON data on a single line)."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return (head + "data: " + json.dumps(data, separators=(",", ":")) + "\n\n").encode()


class Hub:
    """Fan-out of SSE messages to every connected client; used on the event loop only."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.instance = secrets.token_hex(4)  # tells a reconnecting page the server restarted
        self._queues: set[asyncio.Queue[bytes | None]] = set()
        self._wakers: dict[str, set[asyncio.Event]] = {}  # slug -> its log streams' wake-ups
        self.closed = False

    @property
    def clients(self) -> int:
        """How many clients are connected."""
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        """A new client's queue."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.queue_size)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        """Forget a client that went away."""
        self._queues.discard(queue)

    def publish(self, data: bytes) -> None:
        """Queue ``data`` for every client; a full queue is replaced by one resync."""
        for queue in self._queues:
            if queue.full():
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(message("resync", {"reason": "client too slow"}))
            else:
                queue.put_nowait(data)

    def waker(self, slug: str) -> asyncio.Event:
        """A new log stream's wake-up, set when ``slug``'s logs or entry may have changed."""
        event = asyncio.Event()
        self._wakers.setdefault(slug, set()).add(event)
        return event

    def forget(self, slug: str, event: asyncio.Event) -> None:
        """Drop a log stream's wake-up (the client went away)."""
        waiting = self._wakers.get(slug, set())
        waiting.discard(event)
        if not waiting:
            self._wakers.pop(slug, None)

    @property
    def log_streams(self) -> int:
        """How many log streams are open."""
        return sum(len(events) for events in self._wakers.values())

    def wake(self, slugs: Iterable[str]) -> None:
        """Wake the log streams of ``slugs`` (none named: every one, as for a change the
        watcher could not place)."""
        named = set(slugs)
        for slug, events in self._wakers.items():
            if not named or slug in named:
                for event in events:
                    event.set()

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self.closed = True
        for queue in self._queues:
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
        self.wake(())


async def stream(hub: Hub, generation: int, keepalive: float = KEEPALIVE_S) -> AsyncIterator[bytes]:
    """One client's SSE stream: retry interval and hello, then messages and keep-alives."""
    queue = hub.subscribe()
    try:
        hello = {"instance": hub.instance, "generation": generation}
        yield f"retry: {RETRY_MS}\n".encode() + message("hello", hello)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if item is None:
                return
            yield item
    finally:
        hub.unsubscribe(queue)


def resume_after(last_event_id: str | None, attempt: int | None, after: str | None) -> tuple[int | None, int]:
    """Where a log stream starts: the attempt (None: the latest) and the position after
    which to send lines.

    ``Last-Event-ID`` (``<attempt>:<position>``, what a reconnecting EventSource sends) wins
    when it names the ``attempt`` asked for, or when none was; else the ``after`` parameter
    (a page that has the lines up to it), else the start. UsageError for either when it is
    not of its form."""
    if last_event_id:
        number, colon, position = last_event_id.strip().partition(":")
        if not (colon and number.isdigit() and position.isdigit()):
            raise UsageError(
                f"Last-Event-ID {last_event_id[:40]!r} is not <attempt>:<position>, e.g. 2:17 "
                "(the id of the last log event received)"
            )
        if attempt is None or attempt == int(number):
            return int(number), int(position)
    if after:
        if not after.isdigit():
            raise UsageError(f"after {after[:40]!r} is not a log position (a whole number, 0 or more)")
        return attempt, int(after)
    return attempt, 0


def log_message(tail: LogTail, position: int, record: Mapping[str, Any]) -> bytes:
    """One log line as an SSE ``log`` message with the id ``<attempt>:<position>``."""
    return message(
        "log", {"attempt": tail.attempt, "position": position, **record}, f"{tail.attempt}:{position}"
    )


async def log_stream(
    hub: Hub,
    first: LogTail,
    read: Callable[[int], Awaitable[LogTail]],
    keepalive: float = KEEPALIVE_S,
    poll: float = LOG_POLL_S,
) -> AsyncIterator[bytes]:
    """One client's log stream: ``first``'s lines, then the lines ``read(after)`` finds
    after the last position read whenever the hub wakes it (or ``poll`` passes), with
    keep-alives; ``end`` once the attempt is over, nothing more when the server stops."""
    waker = hub.waker(first.slug)
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        tail, quiet_since = first, time.monotonic()
        while True:
            for line in tail.lines:
                yield log_message(tail, line.position, line.record.to_dict())
                quiet_since = time.monotonic()
            if tail.over:
                yield message("end", {"slug": tail.slug, "attempt": tail.attempt, "last": tail.last})
                return
            if not tail.lines:  # caught up: wait for news
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waker.wait(), poll)
                if hub.closed:
                    return
                if time.monotonic() - quiet_since >= keepalive:
                    yield b": keepalive\n\n"
                    quiet_since = time.monotonic()
            waker.clear()  # before the read: a change during it wakes the next wait
            tail = await read(tail.last)
    finally:
        hub.forget(first.slug, waker)


class Watcher:
    """One per server process: the task files and git refs through inotify, the registry
    through its own change feed (``Registry.watch``), both into one ``publish``."""

    def __init__(self, config: Config, board: Board, hub: Hub) -> None:
        self.board = board
        self.hub = hub
        self.roots = {"tasks": config.tasks_dir}
        if config.repo is not None:
            self.roots["ref"] = config.repo.common_dir / "refs"
        self.batches = 0
        self.error: str | None = None

    def paths(self) -> list[Path]:
        """The watched planning folders that exist now."""
        return [path for path in self.roots.values() if path.is_dir()]

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set: the registry's feed in a thread, the files here."""
        halt = threading.Event()
        feed = asyncio.create_task(asyncio.to_thread(self._follow_registry, asyncio.get_running_loop(), halt))
        try:
            await self._watch_files(stop)
        finally:
            halt.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(feed, 3)

    def _follow_registry(self, loop: asyncio.AbstractEventLoop, halt: threading.Event) -> None:
        """The registry's change feed, each batch handed to the event loop (runs in a thread).

        A feed that fails is noted (``error``) and followed again a second later: the
        page keeps serving what it can, and live updates come back with the store.
        """
        while not halt.is_set():
            try:
                for change in self.board.registry().watch(halt):
                    if change.scopes:
                        scopes, slugs = set(change.scopes), set(change.slugs)
                        loop.call_soon_threadsafe(self.publish, scopes, slugs, change.events)
            except Exception as exc:  # an unreadable store, a watch limit
                self.error = f"{type(exc).__name__}: {exc}"
                halt.wait(1.0)

    async def _watch_files(self, stop: asyncio.Event) -> None:
        """Watch the planning folders; a folder appearing or vanishing restarts the watch."""
        while not stop.is_set():
            paths = self.paths()
            try:
                await self._watch(paths, stop)
            except Exception as exc:  # a folder vanished mid-watch, inotify limits
                self.error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5 if self.paths() == paths else 0)
            if self.paths() != paths and not stop.is_set():
                self.publish({"tasks"}, set())  # whatever appeared may hold news

    async def _watch(self, paths: list[Path], stop: asyncio.Event) -> None:
        if not paths:
            return
        batches = awatch(
            *paths,
            watch_filter=self.wanted,
            stop_event=stop,
            debounce=250,
            step=30,
            # A missing folder is looked for 5 times a second, else once.
            rust_timeout=200 if len(paths) < len(self.roots) else 1000,
            yield_on_timeout=True,
        )
        async for batch in batches:
            if batch:
                self.handle(batch)
            if self.paths() != paths:
                return

    def wanted(self, change: Change, path: str) -> bool:
        """Skip lock, temporary, backup and editor files: they change nothing anyone sees."""
        name = path.rsplit("/", 1)[-1]
        return not name.endswith(IGNORED_SUFFIXES) and not name.startswith(".#")

    def handle(self, batch: Iterable[tuple[Change, str]]) -> None:
        """Invalidate and broadcast one batch of changed planning files."""
        scopes = self.scopes(path for _, path in batch)
        if scopes:
            self.publish(scopes, set())

    def scopes(self, paths: Iterable[str]) -> set[str]:
        """What the changed paths touch: tasks or ref."""
        scopes: set[str] = set()
        for raw in paths:
            path = Path(raw)
            scopes.update(name for name, root in self.roots.items() if path.is_relative_to(root))
        return scopes

    def publish(self, scopes: set[str], slugs: set[str], events: Iterable[Event] = ()) -> None:
        """Invalidate (unless only logs changed) and send the change, after its new events."""
        self.batches += 1
        generation = self.board.invalidate() if scopes - {"logs"} else self.board.generation
        for event in events:
            data = event.to_dict()
            data.pop("entry", None)
            self.hub.publish(message("registry", data))
        change = {"generation": generation, "scopes": sorted(scopes), "slugs": sorted(slugs)}
        self.hub.publish(message("change", change, f"{self.hub.instance}-{generation}"))
        if scopes & {"logs", "registry"}:  # a new line, or the attempt ending
            self.hub.wake(slugs)
