"""The heartbeat cycle's record (``snapshot.json``; ``Registry.write_cycle``/``read_cycle``).

Apart from ``records`` so that a command that reads or writes entries does not build it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

CYCLE_RECORD_VERSION = 1
# What precedes the task rows in CycleRecord.to_json's bytes: a line of their own.
ROWS = b',\n"tasks":'
_LAST = ("duration_ms", "tasks")  # encoded after the rest, in this order


@dataclass(frozen=True)
class CycleRecord:
    """What the last heartbeat cycle left for readers that must not recompute.

    Who ran it, where, when and how long; what it counted, found and did (as JSON
    rows of the classification it made); and the cycle's own memory between runs:
    when each ready task was first seen ready (``pickup_overdue``) and since when
    each orphaned entry has had no task (the prune grace period).
    """

    generated_at: str
    owner: str = ""  # who@host
    host: str = ""
    pid: int = 0
    duration_ms: float = 0.0
    ref: str | None = None
    commit: str | None = None
    owners: tuple[str, ...] = ()  # the owners it dispatched for (empty: all)
    counts: Mapping[str, int] = field(default_factory=dict)
    attention: tuple[Mapping[str, Any], ...] = ()
    tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # slug -> bucket, state, signals
    actions: tuple[Mapping[str, Any], ...] = ()
    dispatched: tuple[Mapping[str, Any], ...] = ()
    warnings: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # task files the cycle could not read (repository-relative)
    ready_since: Mapping[str, str] = field(default_factory=dict)
    orphan_since: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``snapshot.json``)."""
        return {
            "version": CYCLE_RECORD_VERSION,
            **{f.name: _plain(getattr(self, f.name)) for f in fields(self)},
        }

    def to_json(self, elapsed: Callable[[], float] | None = None) -> bytes:
        """The JSON form, encoded (UTF-8): what ``to_dict`` holds, then ``duration_ms``, then
        the task rows on a line of their own (``ROWS``), so that a reader that does not need
        them parses only what comes before (``from_json``; ~10% of the bytes).

        With ``elapsed``, ``duration_ms`` is its value read once everything else is
        encoded, so that a duration counts the encoding too.
        """
        data: dict[str, Any] = {"version": CYCLE_RECORD_VERSION}
        data.update((f.name, getattr(self, f.name)) for f in fields(self) if f.name not in _LAST)
        head = orjson.dumps(data, default=_jsonable)
        rows = orjson.dumps(self.tasks, default=_jsonable)
        duration = self.duration_ms if elapsed is None else round(elapsed(), 1)
        return head[:-1] + b',"duration_ms":' + orjson.dumps(duration) + ROWS + rows + b"}"

    @classmethod
    def from_json(cls, raw: bytes, *, rows: bool = True) -> CycleRecord | None:
        """Read a JSON form (``to_json``'s or any other layout); None when it is not one.

        ``rows=False`` leaves ``tasks`` empty, and parses only the bytes before the rows
        when they are on a line of their own (a raw line break cannot be inside a JSON
        string, so that line is where ``to_json`` put them) and every other field is there.
        """
        head, mark, _ = raw.partition(ROWS) if not rows else (raw, b"", b"")
        data = _json_object(head + b"}") if mark else None
        if data is None or not all(name in data for name in _HEAD):
            data = _json_object(raw)
            if data is None:
                return None
        if not rows:
            data["tasks"] = {}
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CycleRecord | None:
        """Read the JSON form; None when it is not a cycle record (a hand-edited or torn file).

        Parts of the wrong shape read as empty: a reader shows less, never crashes.
        """
        stamp = data.get("generated_at")
        if not isinstance(stamp, str):
            return None
        return cls(
            generated_at=stamp,
            owner=_text(data.get("owner")),
            host=_text(data.get("host")),
            pid=data["pid"] if isinstance(data.get("pid"), int) else 0,
            duration_ms=_number(data.get("duration_ms")),
            ref=data.get("ref") if isinstance(data.get("ref"), str) else None,
            commit=data.get("commit") if isinstance(data.get("commit"), str) else None,
            owners=tuple(_strings(data.get("owners"))),
            counts={k: v for k, v in _table(data.get("counts")).items() if isinstance(v, int)},
            attention=tuple(_tables(data.get("attention"))),
            tasks=_rows(data.get("tasks")),
            actions=tuple(_tables(data.get("actions"))),
            dispatched=tuple(_tables(data.get("dispatched"))),
            warnings=tuple(_strings(data.get("warnings"))),
            skipped=tuple(_strings(data.get("skipped"))),
            ready_since=_stamps(data.get("ready_since")),
            orphan_since=_stamps(data.get("orphan_since")),
        )


_HEAD = tuple(f.name for f in fields(CycleRecord) if f.name not in _LAST)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _jsonable(value: object) -> Any:
    """What the JSON encoder cannot write itself: a mapping that is not a dict."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _number(value: object) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _table(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _rows(value: object) -> dict[str, Mapping[str, Any]]:
    # type() first: JSON gives dicts, and an ABC check costs ~10 ms over 50,000 rows.
    return {k: v for k, v in _table(value).items() if type(v) is dict or isinstance(v, Mapping)}


def _tables(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _stamps(value: object) -> dict[str, str]:
    return {k: v for k, v in _table(value).items() if isinstance(v, str)}
