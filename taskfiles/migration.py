"""``task migrate``: move legacy runtime keys out of task files and into the registry.

Task managers that mixed runtime state into frontmatter left ``status:
in_progress``, ``claimed_by``, ``started_at`` and the like in task files. A claim
they describe becomes a registry entry (with a fresh lease, since the old tool
had none); every moved key and value is kept in a ``task.migrated`` event; the
file loses exactly those lines, and ``in_progress`` becomes ``ready``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import frontmatter
from .config import Config
from .planning import write_atomic
from .records import RegistryEntry, format_time, parse_time
from .registry import Registry
from .taskfile import Task
from .tasksource import load
from .transaction import Change, Plan, Snapshot

CLAIM_KEYS = ("claimed_by", "claimed_at", "started_at", "worker", "claim")


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


def migrate(config: Config, registry: Registry, *, dry_run: bool = False) -> MigrationReport:
    """Migrate every task file of the working tree that carries runtime keys."""
    moved = []
    for task in load(config).tasks:
        if not task.legacy:
            continue
        claim = _describes_claim(task)
        skipped = None
        if claim and not dry_run:
            skipped = registry.transact(partial(_import, task=task))
        if not dry_run:
            _strip(config, task)
        moved.append(Moved(task.slug, task.path, tuple(task.legacy), claim and skipped is None, skipped))
    return MigrationReport(tuple(moved), dry_run)


def _describes_claim(task: Task) -> bool:
    return task.legacy.get("status") is not None or any(key in task.legacy for key in CLAIM_KEYS)


def _import(s: Snapshot, *, task: Task) -> Plan[str | None]:
    """A mutation: the claim the legacy keys describe, unless the registry already has one."""
    current = s.entries.get(task.slug)
    if current is not None and current.is_live:
        return Plan((), f"registry already holds a live claim (lease {current.lease})")
    legacy = task.legacy
    started = _time(legacy.get("started_at"))
    entry = RegistryEntry(
        slug=task.slug,
        state="running" if started else "claimed",
        lease=s.last_lease(task.slug) + 1,
        attempt=_int(legacy.get("attempt") or legacy.get("attempts"), 1),
        owner=task.owner,
        worker=_text(legacy.get("claimed_by") or legacy.get("worker")) or "migrated",
        claimed_at=_time(legacy.get("claimed_at")) or started or s.stamp,
        started_at=started,
        heartbeat_at=_time(legacy.get("heartbeat_at") or legacy.get("last_heartbeat")) or started,
        progress=_text(legacy.get("progress")),
    )
    details = {"path": task.path, "keys": {k: _text(v) for k, v in legacy.items()}}
    return Plan((Change(task.slug, entry, "task.migrated", details),), None)


def _strip(config: Config, task: Task) -> None:
    updates: dict[str, object] = {key: None for key in task.legacy if key != "status"}
    if "status" in task.legacy:
        updates["status"] = "ready"
    path = config.root / task.path
    text = path.read_bytes().decode("utf-8")
    write_atomic(path, frontmatter.set_keys(text, updates).encode("utf-8"))


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
