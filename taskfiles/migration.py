"""``task migrate``: move legacy runtime keys out of task files and into the registry.

Task managers that mixed runtime state into frontmatter left ``status:
in_progress``, ``claimed_by``, ``started_at`` and the like in task files. A claim
they describe becomes a registry entry (with a fresh lease, since the old tool
had none); every moved key and value is kept in a ``task.migrated`` event; the
file loses exactly those lines, and ``in_progress`` becomes ``ready``.

Every file's edit is computed (and checked) before anything is written, so a file
too unusual to edit by line stops the migration before the registry or any file
changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from .config import Config
from .errors import TaskFileError, reason
from .plan import frontmatter
from .plan.edits import write_atomic
from .plan.source import load
from .plan.taskfile import Task
from .registry import Change, Plan, Registry, Snapshot
from .registry.records import RegistryEntry, format_time, parse_time
from .state import legacy_claim


@dataclass(frozen=True)
class Moved:
    """One file's migration."""

    slug: str
    path: str
    keys: tuple[str, ...]  # the frontmatter keys taken out (status included when it was legacy)
    claim: bool  # a registry entry was (or would be) created for a live claim
    skipped_claim: str | None = None  # why no entry was created although the keys describe one


@dataclass(frozen=True)
class MigrationReport:
    """Every file moved, and whether it was a dry run."""

    files: tuple[Moved, ...]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form: dry_run and files [{slug, path, keys, claim, skipped_claim}]."""
        return {
            "dry_run": self.dry_run,
            "files": [
                {
                    "slug": m.slug,
                    "path": m.path,
                    "keys": list(m.keys),
                    "claim": m.claim,
                    "skipped_claim": m.skipped_claim,
                }
                for m in self.files
            ],
        }


@dataclass(frozen=True)
class _Edit:
    task: Task
    text: str  # the file as it will be written


def migrate(config: Config, registry: Registry, *, dry_run: bool = False) -> MigrationReport:
    """Migrate every task file of the working tree that carries runtime keys."""
    edits = [_plan(config, task) for task in load(config).tasks if task.legacy]
    max_attempts = config.worker.max_attempts
    moved = []
    for edit in edits:
        task = edit.task
        if dry_run:
            skipped = _skip_reason(task, registry.find(task.slug))
        else:
            skipped = registry.transact(partial(_import, task=task, max_attempts=max_attempts))
            write_atomic(config.root / task.path, edit.text.encode("utf-8"))
        claim = legacy_claim(task) and skipped is None
        moved.append(Moved(task.slug, task.path, tuple(task.legacy), claim, skipped))
    return MigrationReport(tuple(moved), dry_run)


def _plan(config: Config, task: Task) -> _Edit:
    """The file without its runtime keys; TaskFileError (naming the file) when it cannot be edited."""
    updates: dict[str, object] = {key: None for key in task.legacy if key != "status"}
    if "status" in task.legacy:
        updates["status"] = task.status  # the durable status the legacy one implies (ready)
    path = config.root / task.path
    try:
        return _Edit(task, frontmatter.set_keys(path.read_bytes().decode("utf-8"), updates))
    except (TaskFileError, OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"{task.path}: {reason(exc)}; nothing was migrated") from None


def _skip_reason(task: Task, current: RegistryEntry | None) -> str | None:
    """Why no claim is imported for ``task`` (None: one is, or the keys describe none)."""
    if not legacy_claim(task):
        return None
    if current is not None and current.is_live:
        return f"registry already holds a live claim (lease {current.lease})"
    return None


def _import(s: Snapshot, *, task: Task, max_attempts: int) -> Plan[str | None]:
    """A mutation: record the legacy keys in a task.migrated event, with the claim they describe."""
    current = s.entries.get(task.slug)
    skipped = _skip_reason(task, current)
    details = {
        "path": task.path,
        "keys": {k: _as_read(v) for k, v in task.legacy.items()},
        "claim": legacy_claim(task) and skipped is None,
    }
    if skipped:
        details["skipped_claim"] = skipped
    if legacy_claim(task) and skipped is None:
        entry = _claim(s, task, current, max_attempts)
    elif current is not None:
        entry = current  # unchanged: the event alone records what left the file
    else:
        # Nothing ran: a released entry (with a lease never issued before) carries the event.
        lease = s.last_lease(task.slug) + 1
        entry = RegistryEntry(task.slug, "released", lease, owner=task.owner, updated_at=s.stamp)
    return Plan((Change(task.slug, entry, "task.migrated", details),), skipped)


def _claim(s: Snapshot, task: Task, current: RegistryEntry | None, max_attempts: int) -> RegistryEntry:
    legacy = task.legacy
    started = _time(legacy.get("started_at"))
    attempt = _int(legacy.get("attempt") or legacy.get("attempts"), 1)
    return RegistryEntry(
        slug=task.slug,
        state="running" if started else "claimed",
        lease=s.last_lease(task.slug) + 1,
        attempt=max(attempt, current.attempt + 1) if current else attempt,  # log names never reused
        max_attempts=max(max_attempts, attempt),
        owner=task.owner,
        worker=_text(legacy.get("claimed_by") or legacy.get("worker")) or "migrated",
        host=_text(legacy.get("host")),
        claimed_at=_time(legacy.get("claimed_at")) or started or s.stamp,
        started_at=started,
        heartbeat_at=_time(legacy.get("heartbeat_at") or legacy.get("last_heartbeat")) or started,
        updated_at=s.stamp,
        progress=_text(legacy.get("progress")),
        total_cost_usd=current.total_cost_usd if current else 0.0,
    )


def _time(value: object) -> str | None:
    if value is None:
        return None
    try:
        return format_time(parse_time(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def _int(value: object, default: int) -> int:
    try:
        return max(1, int(str(value)))
    except ValueError:
        return default


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping | list):
        return repr(value)
    return str(value)


def _as_read(value: object) -> object:
    """A frontmatter value for the event log: scalars as they are, anything else as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return _text(value)
