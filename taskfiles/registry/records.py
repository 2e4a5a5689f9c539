"""The registry's records: entries, events, actors, evidence and log lines.

Frozen dataclasses everywhere above the store; dicts only at the JSON edge,
through ``to_dict``/``from_dict``. Times are ISO-8601 UTC strings
(``2025-11-22T03:15:00.123456Z``) so that they sort as text and survive JSON.

Entry states (see ``lifecycle`` for the transitions):

``claimed``     a lease was issued; the worker has not started yet      (live)
``running``     the worker started and heartbeats                       (live)
``exited``      the worker exited 0; completion is not on the base yet
``failed``      the worker exited non-zero, or was found gone/stalled
``retry_wait``  a new attempt may be claimed from ``next_attempt_at`` on
``parked``      not dispatched until an operator unparks it
``stopped``     an operator stopped the worker
``released``    the claim is over (completed, or dropped by an operator)

Only a live entry accepts worker writes (start, heartbeat, finish, log) with
its current lease; every other state has retired the lease.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from .. import portable
from ..errors import RegistryError
from ..process import host_identity

STATES = ("claimed", "running", "exited", "failed", "retry_wait", "parked", "stopped", "released")
LIVE_STATES = frozenset({"claimed", "running"})
LEVELS = ("debug", "info", "warning", "error")
ACTOR_ENV = "TASKFILES_ACTOR"


def utc_now() -> datetime:
    """The default clock: the current time in UTC."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """``moment`` as an ISO-8601 UTC string with microseconds and a ``Z``."""
    if moment.tzinfo is None:
        raise ValueError("registry times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """The aware datetime an ISO-8601 string names (naive strings count as UTC)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Actor:
    """Who made a change: a person or agent id, on which host, in which process."""

    who: str
    host: str
    pid: int

    @classmethod
    def current(cls) -> Actor:
        """This process: ``TASKFILES_ACTOR`` (or the user name), this host's identity
        (``TASKFILES_HOST``, else the host name) and pid."""
        return cls(os.environ.get(ACTOR_ENV) or portable.user_name(), host_identity(), os.getpid())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"who": self.who, "host": self.host, "pid": self.pid}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Actor:
        """Read the JSON form; missing parts read as empty."""
        return cls(str(data.get("who", "")), str(data.get("host", "")), int(data.get("pid", 0)))


@dataclass(frozen=True)
class Evidence:
    """A command that was run to show the work is right, and how it ended."""

    command: str
    exit_code: int
    summary: str | None = None
    time: str | None = None
    who: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, without empty parts."""
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        """Read the JSON form."""
        return cls(
            str(data["command"]),
            int(data["exit_code"]),
            data.get("summary"),
            data.get("time"),
            data.get("who"),
        )


@dataclass(frozen=True)
class Instructions:
    """What a reviewer or operator asked of an attempt (``task retry --instructions``,
    ``task review --request-changes``): the text, who gave it, when, and which attempt
    it is for. A claim of that attempt carries it into the attempt; the claim of any
    later attempt drops it (the event log keeps it for the account of earlier attempts)."""

    text: str
    who: str
    time: str
    attempt: int  # the attempt they are for: the one after the attempt they were given on
    kind: str = "retry"  # "retry" or "changes_requested"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Instructions:
        """Read the JSON form; KeyError/ValueError name what is wrong."""
        item = cls(data["text"], data["who"], data["time"], data["attempt"], data.get("kind", "retry"))
        texts = (item.text, item.who, item.time, item.kind)
        if not all(isinstance(v, str) for v in texts) or type(item.attempt) is not int:
            raise ValueError("field 'instructions' must hold text, who, time, kind (text) and attempt (int)")
        return item


_INT = frozenset(
    {"lease", "attempt", "max_attempts", "pid", "pid_start_time", "heartbeats", "exit_code"}
    | {"progress_percent", "consecutive_failures", "failure_streak"}
)
_FLOAT = ("cost_usd", "total_cost_usd")


@dataclass(frozen=True)
class RegistryEntry:
    """The runtime state of one task, keyed by its slug."""

    slug: str
    state: str
    lease: int  # fencing token: grows on every claim of this slug, never reused
    attempt: int = 1  # ordinal of the run; never reused while the entry exists (names the log)
    max_attempts: int = 3
    owner: str | None = None
    worker: str | None = None
    host: str | None = None
    pid: int | None = None
    pid_start_time: int | None = None  # /proc/<pid>/stat field 22, to detect pid reuse
    claimed_at: str | None = None
    started_at: str | None = None
    heartbeat_at: str | None = None
    heartbeats: int = 0  # heartbeats in this attempt
    finished_at: str | None = None
    updated_at: str | None = None
    exit_code: int | None = None
    next_attempt_at: str | None = None
    last_error: str | None = None
    failure_class: str | None = None
    consecutive_failures: int = 0
    failure_streak: int = 0  # failures in a row with this same failure_class (the circuit breaker)
    worktree: str | None = None
    branch: str | None = None
    task_blob: str | None = None  # the task file's blob id at dispatch
    fresh: bool = False  # the next attempt starts over from the base ref
    progress: str | None = None  # the worker's last progress message (heartbeat --note, progress)
    note: str | None = None  # the last note (task note): kept apart, so it never hides progress
    progress_percent: int | None = None
    blocker: str | None = None
    cost_usd: float = 0.0  # this attempt
    total_cost_usd: float = 0.0  # every attempt of this task
    parked_reason: str | None = None
    stop_reason: str | None = None
    instructions: Instructions | None = None  # for the next attempt, or the current one (see Instructions)
    artifacts: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = field(default=())

    @property
    def is_live(self) -> bool:
        """True while a worker holds the lease (claimed or running)."""
        return self.state in LIVE_STATES

    @property
    def attempt_label(self) -> str:
        """``attempt 6 · 1/5 failures``: which run this is, and the failures in a row against
        ``max_attempts``, the limit they are held to. Runs are not bounded (a manual retry or
        an unpark starts the count over), so "6/5" would read as past a limit that is not one."""
        return f"attempt {self.attempt} · {self.consecutive_failures}/{self.max_attempts} failures"

    def to_dict(self, *, sparse: bool = True) -> dict[str, Any]:
        """The JSON form; ``sparse`` leaves out fields that hold their default."""
        data: dict[str, Any] = {}
        for name, default in _DEFAULTS:
            value = getattr(self, name)
            if sparse and value == default and name not in _ALWAYS:
                continue
            data[name] = value
        if "artifacts" in data:
            data["artifacts"] = list(self.artifacts)
        if "evidence" in data:
            data["evidence"] = [item.to_dict() for item in self.evidence]
        if self.instructions is not None:
            data["instructions"] = self.instructions.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegistryEntry:
        """Read the JSON form; RegistryError names the slug and the bad field."""
        slug = data.get("slug")
        try:
            values = _checked(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"registry entry {slug!r} is malformed: {exc}") from None
        # What the generated __init__ would do, without its 35 frozen setattrs: a status of
        # 10,000 entries reads every one (the fields were all checked just above).
        entry = object.__new__(cls)
        entry.__dict__.update(_INITIAL, **values)
        return entry


_ALWAYS = frozenset({"slug", "state", "lease", "attempt"})
_DEFAULTS = tuple((f.name, f.default) for f in fields(RegistryEntry))
_NAMES = frozenset(name for name, _ in _DEFAULTS)
_INITIAL = {name: default for name, default in _DEFAULTS if name not in ("slug", "state", "lease")}


def _checked(data: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in data.items():
        kinds = _TYPES.get(name)
        if kinds is None:
            continue  # unknown keys: newer writers, ignored
        if value is not None and type(value) not in kinds:  # exact: True is no int here
            raise ValueError(f"field {name!r} has the wrong type ({type(value).__name__})")
        if type(value) is float and not math.isfinite(value):
            raise ValueError(f"field {name!r} has the wrong type (a non-finite number)")
        values[name] = value
    for name in ("slug", "state", "lease"):
        if values.get(name) is None:
            raise KeyError(f"missing {name!r}")
    if values["state"] not in STATES:
        raise ValueError(f"state {values['state']!r} is not one of {', '.join(STATES)}")
    if "artifacts" in values:
        values["artifacts"] = tuple(values["artifacts"] or ())
    if "evidence" in values:
        values["evidence"] = tuple(Evidence.from_dict(item) for item in values["evidence"] or ())
    if values.get("instructions") is not None:
        values["instructions"] = Instructions.from_dict(values["instructions"])
    return values


def _kinds(name: str) -> tuple[type, ...]:
    if name in _INT:
        return (int,)
    if name in _FLOAT:
        return (int, float)
    if name == "fresh":
        return (bool,)
    if name in ("artifacts", "evidence"):
        return (list, tuple)
    if name == "instructions":
        return (dict,)
    return (str,)


_TYPES = {name: _kinds(name) for name, _ in _DEFAULTS}


@dataclass(frozen=True)
class Event:
    """One line of the event log: a state change or a recorded runtime fact."""

    time: str
    type: str
    slug: str | None
    lease: int | None
    actor: Actor
    details: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0  # the registry transaction that made it; events of one transaction share it
    # What the event changed in the entry (``journal.diff``: set, unset, drop, append).
    change: Mapping[str, Any] | None = None
    # The whole entry as the event left it: only on lines written before the journal.
    entry: Mapping[str, Any] | None = None
    removed: bool = False  # the entry was removed (gc)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``change``/``entry``/``removed`` only when they say something)."""
        data: dict[str, Any] = {"time": self.time, "type": self.type, "slug": self.slug}
        data.update(lease=self.lease, actor=self.actor.to_dict(), details=dict(self.details), seq=self.seq)
        if self.change is not None:
            data["change"] = dict(self.change)
        if self.entry is not None:
            data["entry"] = dict(self.entry)
        if self.removed:
            data["removed"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Read the JSON form; ValueError says what is missing."""
        if not isinstance(data.get("type"), str) or not isinstance(data.get("time"), str):
            raise ValueError("not an event: 'time' and 'type' must be strings")
        return cls(
            time=data["time"],
            type=data["type"],
            slug=data.get("slug"),
            lease=data.get("lease"),
            actor=Actor.from_dict(data.get("actor") or {}),
            details=data.get("details") or {},
            seq=int(data.get("seq") or 0),
            change=data.get("change"),
            entry=data.get("entry"),
            removed=bool(data.get("removed", False)),
        )


@dataclass(frozen=True)
class LogRecord:
    """One line of an attempt's log, with its structured ``fields`` (name -> text; see
    ``runlog.check_fields`` for what a name and a value may be)."""

    time: str
    level: str
    source: str
    message: str
    lease: int | None = None
    who: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``fields`` only when there are some, so lines without any read
        as they did before fields existed."""
        data = {k: v for k, v in vars(self).items() if v is not None and k != "fields"}
        if self.fields:
            data["fields"] = dict(self.fields)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogRecord:
        """Read the JSON form; ValueError when it is not a log line."""
        time, level, source, message = (data.get(k) for k in ("time", "level", "source", "message"))
        if not (isinstance(time, str) and isinstance(level, str)):
            raise ValueError("not a log line: time and level must be strings")
        if not (isinstance(source, str) and isinstance(message, str)):
            raise ValueError("not a log line: source and message must be strings")
        found = data.get("fields") or {}
        if not isinstance(found, Mapping) or not all(isinstance(v, str) for v in found.values()):
            raise ValueError("not a log line: fields must be an object of strings")
        return cls(time, level, source, message, data.get("lease"), data.get("who"), dict(found))
