"""The server's one cached reading of the world: ``status.observe`` and what follows from it.

Classifying 10,000 tasks takes ~170 ms, so the observation is made once and shared
by every request until the watcher says something changed (``invalidate``). Ages
and stall signals move with the clock alone, so a reading older than
``refresh_after`` is recomputed in the background while requests keep using it,
and one older than ``max_age`` is never served. Concurrent requests that find the
reading outdated wait for one computation, not one each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

import orjson

from .. import metrics
from ..config import Config
from ..errors import TaskfilesError
from ..plan.source import TaskSet
from ..registry import Registry, open_registry
from ..registry.records import Actor, utc_now
from ..state import Classification
from ..status import Observation, observe, planning_source

Clock = Callable[[], datetime]
T = TypeVar("T")
METRICS_TTL_S = 30.0


@dataclass(frozen=True)
class Reading:
    """One observation and the indexes the pages need, for one generation."""

    seen: Observation
    generation: int
    taken: float  # time.monotonic() when computed
    config: Config
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """``make()``, computed once per reading (a race computes it twice, harmlessly)."""
        if key not in self._memo:
            self._memo[key] = make()
        value: T = self._memo[key]
        return value

    @property
    def tasks(self) -> TaskSet:
        """The task set that was classified."""
        return self.seen.tasks

    @property
    def by_slug(self) -> dict[str, Classification]:
        """Every row by slug."""
        return self.seen.by_slug

    @cached_property
    def attention(self) -> list[Classification]:
        """The attention rows: one per task that needs a human."""
        return self.seen.attention

    @cached_property
    def dispatch_rank(self) -> dict[str, int]:
        """slug -> place in the order the heartbeat and ``task next`` take tasks."""
        return {task.slug: index for index, task in enumerate(self.seen.dispatchable())}

    @cached_property
    def status_json(self) -> bytes:
        """``/api/status`` without filters: the same document as ``task status --json``."""
        with self._lock:  # one serialization even when many requests arrive at once
            return orjson.dumps(self.seen.to_dict())


class Board:
    """Shared by every request of one server process; thread-safe."""

    def __init__(
        self,
        config: Config,
        *,
        ref: str | None = None,
        working_tree: bool = False,
        clock: Clock | None = None,
        max_age: float = 60.0,
        refresh_after: float = 5.0,
    ) -> None:
        self.config = config
        self.ref = ref
        self.working_tree = working_tree
        self.clock: Clock = clock or utc_now
        self.max_age = max_age
        self.refresh_after = min(refresh_after, max_age)
        self._generation = 0
        self._reading: Reading | None = None
        self._computing = threading.Lock()
        self._metrics: dict[tuple[str, str | None], tuple[float, metrics.Metrics]] = {}

    @property
    def generation(self) -> int:
        """Grows by one on every change the watcher reports."""
        return self._generation

    def invalidate(self) -> int:
        """Forget the cached reading (task files or the registry changed); the new generation."""
        self._generation += 1  # one writer (the watcher), so no lock
        return self._generation

    def read(self) -> Reading:
        """The current reading, recomputed on change or past ``max_age``.

        Past ``refresh_after`` it is refreshed behind the scenes while requests keep it.
        """
        current = self._reading
        if current is not None and current.generation == self._generation:
            age = time.monotonic() - current.taken
            if age < self.max_age:
                if age >= self.refresh_after:
                    self._refresh_in_background()
                return current
        with self._computing:
            current = self._reading
            if current is not None and self._fresh(current):
                return current
            current = self._compute()
            self._reading = current
            return current

    def _fresh(self, reading: Reading) -> bool:
        return reading.generation == self._generation and time.monotonic() - reading.taken < self.max_age

    def _refresh_in_background(self) -> None:
        if not self._computing.acquire(blocking=False):
            return  # a computation is running already

        def work() -> None:
            try:
                self._reading = self._compute()
            except TaskfilesError:
                pass  # the next request computes in the foreground and reports it
            finally:
                self._computing.release()

        threading.Thread(target=work, name="taskfiles-serve-refresh", daemon=True).start()

    def _compute(self) -> Reading:
        generation = self._generation  # read first: a change during the computation reruns it
        source = planning_source(self.config, self.ref, working_tree=self.working_tree)
        seen = observe(self.config, self.registry(), now=self.clock(), source=source)
        return Reading(seen, generation, time.monotonic(), self.config)

    def registry(self, actor: Actor | None = None) -> Registry:
        """A fresh registry handle: stores keep caches, so one per request or thread."""
        return open_registry(self.config, clock=self.clock, actor=actor)

    def metrics(self, window: str, by: str | None = None) -> metrics.Metrics:
        """Run metrics over ``window`` (grouped ``by``), at most ``METRICS_TTL_S`` old;
        TaskfilesError when the registry cannot be read.

        Not per change: they read the whole event log, and workers write the registry
        every few seconds; a window of days does not need the latest second.
        """
        key = (window, by)
        cached = self._metrics.get(key)
        if cached and time.monotonic() - cached[0] < METRICS_TTL_S:
            return cached[1]
        tasks = self.read().tasks.tasks
        result = metrics.measure(self.registry(), tasks, self.clock(), window, by)
        self._metrics[key] = (time.monotonic(), result)
        return result


def to_json(value: Any) -> bytes:
    """The JSON edge of the server (orjson: 10x the stdlib on big documents)."""
    return orjson.dumps(value)
