"""What metrics need of history that gc takes away: one compact record per run, per retry,
and per removed entry's cost.

``gc`` archives old events and removes old released entries; before it does, each
store folds what the run metrics read into its rollup (the JSON store: ``rollups.json``
under the registry lock; PostgreSQL: ``taskfiles_rollups`` in gc's own transaction):

- a ``Run`` per attempt that ended (``task.exited``, ``task.failed``): when, which task,
  whose (owner, worker), which attempt, how it ended, how long it took, what it cost;
- a ``Retry`` per ``task.retry_scheduled`` (an operator's ``task retry`` or the backoff);
- a ``Removed`` per entry gc removed: its slug, lease and every attempt's cost, so the
  total cost outlives the entry.

Each record has a ``key`` that names the event (or entry) it came from, so a record is
never counted twice: the same event read from the live log and from the rollup (a gc cut
short between the two) is one run, and a ``Removed`` whose entry is still there (its
lease unchanged) is not added to that entry's cost again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .records import Event, parse_time

ROLLUP_VERSION = 1
RUN_ENDS = frozenset({"task.exited", "task.failed"})
RETRY = "task.retry_scheduled"
FOLDED = (*sorted(RUN_ENDS), RETRY)  # the event types a rollup keeps


@dataclass(frozen=True)
class Run:
    """One attempt that ended."""

    seq: int  # the transaction that recorded its end
    slug: str
    time: str  # when it ended
    ok: bool  # exited 0
    attempt: int | None = None
    owner: str | None = None
    worker: str | None = None
    exit_code: int | None = None
    failure_class: str | None = None
    duration_s: float | None = None
    cost_usd: float = 0.0

    @property
    def key(self) -> str:
        """Names the end event: one run however often it is read."""
        return f"run:{self.seq}:{self.slug}:{self.time}"

    @property
    def failure(self) -> str | None:
        """Why it failed (its class, else its exit code), None when it succeeded."""
        if self.ok:
            return None
        return self.failure_class or (f"exit_{self.exit_code}" if self.exit_code is not None else "unknown")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, without empty parts."""
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Run:
        """Read the JSON form; KeyError, TypeError or ValueError when it is not a run."""
        return cls(
            int(data["seq"]),
            str(data["slug"]),
            str(data["time"]),
            bool(data["ok"]),
            _int(data.get("attempt")),
            _str(data.get("owner")),
            _str(data.get("worker")),
            _int(data.get("exit_code")),
            _str(data.get("failure_class")),
            _float(data.get("duration_s")),
            _float(data.get("cost_usd")) or 0.0,
        )


@dataclass(frozen=True)
class Retry:
    """One retry scheduled: by an operator (``manual``) or by the reconciler's backoff."""

    seq: int
    slug: str
    time: str
    manual: bool

    @property
    def key(self) -> str:
        """Names the event."""
        return f"retry:{self.seq}:{self.slug}:{self.time}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Retry:
        """Read the JSON form."""
        return cls(int(data["seq"]), str(data["slug"]), str(data["time"]), bool(data["manual"]))


@dataclass(frozen=True)
class Removed:
    """An entry gc removed, and what every attempt it recorded cost."""

    slug: str
    lease: int
    time: str  # when gc removed it
    cost_usd: float

    @property
    def key(self) -> str:
        """Names the entry (a slug claimed again later has a higher lease)."""
        return f"removed:{self.slug}:{self.lease}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Removed:
        """Read the JSON form."""
        return cls(str(data["slug"]), int(data["lease"]), str(data["time"]), float(data["cost_usd"]))


Record = Run | Retry | Removed
KINDS: dict[str, type[Run] | type[Retry] | type[Removed]] = {"run": Run, "retry": Retry, "removed": Removed}


@dataclass(frozen=True)
class Rollup:
    """Every record a store folded, oldest first within each kind."""

    runs: tuple[Run, ...] = ()
    retries: tuple[Retry, ...] = ()
    removed: tuple[Removed, ...] = ()

    def __len__(self) -> int:
        return len(self.runs) + len(self.retries) + len(self.removed)

    def records(self) -> list[tuple[str, Record]]:
        """(kind, record) for every record: how a store keeps them one a row."""
        return [
            *(("run", r) for r in self.runs),
            *(("retry", r) for r in self.retries),
            *(("removed", r) for r in self.removed),
        ]

    def merged(self, other: Rollup) -> Rollup:
        """Both rollups, each record once (by its key)."""
        return Rollup(
            _union(self.runs, other.runs),
            _union(self.retries, other.retries),
            _union(self.removed, other.removed),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``rollups.json``, and a dump's ``rollup``)."""
        return {
            "version": ROLLUP_VERSION,
            "runs": [r.to_dict() for r in self.runs],
            "retries": [r.to_dict() for r in self.retries],
            "removed": [r.to_dict() for r in self.removed],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollup:
        """Read the JSON form; ValueError says which record is malformed."""
        return cls.from_records(
            (kind, item) for kind in ("run", "retry", "removed") for item in data.get(_PLURAL[kind]) or ()
        )

    @classmethod
    def from_records(cls, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> Rollup:
        """Records as (kind, JSON form) pairs, as a store keeps them; ValueError on a bad one."""
        found: dict[str, list[Any]] = {kind: [] for kind in KINDS}
        for number, (kind, item) in enumerate(rows, 1):
            try:
                found[kind].append(KINDS[kind].from_dict(item))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"rollup record {number} ({kind}) is malformed: {exc!r}") from None
        return cls(tuple(found["run"]), tuple(found["retry"]), tuple(found["removed"]))


_PLURAL = {"run": "runs", "retry": "retries", "removed": "removed"}


R = TypeVar("R", Run, Retry, Removed)


def _union(first: tuple[R, ...], second: tuple[R, ...]) -> tuple[R, ...]:
    seen = {r.key for r in first}
    return first + tuple(r for r in second if r.key not in seen)


def run_of(event: Event) -> Run | None:
    """The run an end event closes, or None for any other event."""
    if event.type not in RUN_ENDS or not event.slug:
        return None
    details = event.details
    run = details if "started_at" in details else (event.entry or {})  # lines before the journal
    code = _int(details.get("exit_code"))
    return Run(
        seq=event.seq,
        slug=event.slug,
        time=event.time,
        ok=event.type == "task.exited" and code == 0,
        attempt=_int(run.get("attempt")),
        owner=_str(run.get("owner")),
        worker=_str(run.get("worker")),
        exit_code=code,
        failure_class=_str(details.get("failure_class")),
        duration_s=_duration(run.get("started_at") or run.get("claimed_at"), event.time),
        cost_usd=_float(run.get("cost_usd")) or 0.0,
    )


def retry_of(event: Event) -> Retry | None:
    """The retry a ``task.retry_scheduled`` event records, or None for any other event."""
    if event.type != RETRY or not event.slug:
        return None
    return Retry(event.seq, event.slug, event.time, bool(event.details.get("manual")))


def fold(events: Iterable[Event]) -> Rollup:
    """The runs and retries ``events`` record (other events have nothing metrics read)."""
    runs, retries = [], []
    for event in events:
        if (run := run_of(event)) is not None:
            runs.append(run)
        elif (retry := retry_of(event)) is not None:
            retries.append(retry)
    return Rollup(tuple(runs), tuple(retries))


def _duration(start: object, end: str) -> float | None:
    if not isinstance(start, str):
        return None
    try:
        return round((parse_time(end) - parse_time(start)).total_seconds(), 3)
    except ValueError:
        return None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
