"""The JSON each tool and its mirrored resource return: one form for both.

``tasks`` and ``task`` read ``claims.queue``'s observation of the workspace's task files
(``task list``'s reading: a task created in this worktree shows at once);
``task://ready`` reads what ``next`` claims from, the base ref (``work.claim_ref``,
what the dispatcher hands out); ``status`` is ``task status``'s reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import claims
from ..errors import UsageError
from ..plan import graph, query
from ..registry import Event
from ..registry.attempts import Attempt
from ..registry.attempts import attempts as every_attempt
from ..registry.runtimeview import runtime_view
from ..state import BUCKETS, Classification
from ..status import observe, planning_source
from .work import claim_ref
from .workspace import Workspace

RECENT_ATTEMPTS = 5
# The events that end an attempt, and what they say about it.


@dataclass(frozen=True)
class Selection:
    """What ``tasks`` narrows by: the plan's filters, buckets and slugs, and how many rows."""

    filters: query.Filters
    buckets: tuple[str, ...] = ()
    slugs: tuple[str, ...] = ()
    limit: int = 50


def task_rows(ws: Workspace, wanted: Selection) -> dict[str, Any]:
    """``tasks``: a short row per matching task, in path order, at most ``limit``."""
    unknown = [bucket for bucket in wanted.buckets if bucket not in BUCKETS]
    if unknown:
        raise UsageError(f"bucket {unknown[0]!r} is not one of {', '.join(BUCKETS)}")
    seen = claims.queue(ws.config, ws.registry())
    chosen = query.select(seen.tasks.tasks, wanted.filters, ws.config)
    rows = [seen.by_slug[task.slug] for task in chosen if task.slug in seen.by_slug]
    rows = [
        row
        for row in rows
        if (not wanted.buckets or row.bucket in wanted.buckets)
        and (not wanted.slugs or row.slug in wanted.slugs)
    ]
    return {
        "count": len(rows),
        "tasks": [_row(row) for row in rows[: wanted.limit]],
        "truncated": len(rows) > wanted.limit,
        "skipped": list(seen.skipped),
    }


def _row(row: Classification) -> dict[str, Any]:
    task, entry = row.task, row.entry
    return {
        "slug": row.slug,
        "title": task.title if task else None,
        "status": task.status if task else None,
        "priority": task.priority if task else None,
        "owner": row.owner,
        "bucket": row.bucket,
        "state": row.state,
        "lease": entry.lease if entry and entry.is_live else None,
    }


def task_view(ws: Workspace, slug: str) -> dict[str, Any]:
    """``task`` and ``task://{slug}``: the task file (frontmatter and body), its
    dependencies and dependents, its classification, registry entry and recent attempts."""
    registry = ws.registry()
    seen = claims.queue(ws.config, registry)
    row = seen.row(slug)  # NotFoundError naming an unreadable file, when that is why
    entry = registry.find(slug)  # released entries too: the classification leaves them out
    task = row.task
    return {
        "slug": slug,
        "task": task.to_dict(body=True) if task else None,
        "dependencies": [_link(link) for link in graph.dependencies(seen.tasks, slug)],
        "dependents": [_link(link) for link in graph.dependents(seen.tasks, slug)],
        "bucket": row.bucket,
        "state": row.state,
        "detail": row.detail,
        "signals": [signal.to_dict() for signal in row.signals],
        "blocked_by": list(row.blocked_by),
        "runtime": runtime_view(entry, registry.clock()),
        "entry": entry.to_dict() if entry else None,
        "attempts": attempts(registry.events(slug).events)[-RECENT_ATTEMPTS:],
    }


def _link(link: graph.Link) -> dict[str, Any]:
    return {"slug": link.slug, "status": link.status, "title": link.title}


def attempts(events: Sequence[Event]) -> list[dict[str, Any]]:
    """One line per attempt, oldest first (``registry.attempts``): each claim and how it ended
    (None: still going)."""
    return [
        {
            "attempt": attempt.number,
            "lease": attempt.lease,
            "worker": attempt.worker,
            "claimed_at": attempt.claimed_at,
            "ended": _ending(attempt),
        }
        for attempt in every_attempt(events)
    ]


def _ending(attempt: Attempt) -> dict[str, Any] | None:
    if attempt.ended_by is None:
        return None
    facts = {
        "exit_code": attempt.exit_code,
        "failure_class": attempt.failure_class,
        "error": attempt.error,
        "cost_usd": attempt.cost_usd,
    }
    return {
        "type": attempt.ended_by,
        "time": attempt.ended_at,
        **{k: v for k, v in facts.items() if v is not None},
    }


def status_view(ws: Workspace, owner: str | None = None) -> dict[str, Any]:
    """``status`` and ``task://status``: counts per bucket, capacity, the last cycle and what
    needs attention (``task status --json`` without the rows, which ``tasks`` lists)."""
    config = ws.config
    canonical = config.owner_named(owner) if owner is not None else None
    seen = observe(
        config, ws.registry(), now=datetime.now(UTC), source=planning_source(config), tolerant=False
    )
    data = seen.only(config, owner=canonical).to_dict()
    return {
        key: data[key]
        for key in ("generated_at", "ref", "counts", "capacity", "cycle", "attention", "warnings")
    }


def ready_view(ws: Workspace) -> dict[str, Any]:
    """``task://ready``: the tasks ``next`` would claim, in the order it claims them."""
    seen = claims.queue(ws.config, ws.registry(), claim_ref(ws.config))
    order = seen.dispatchable()
    return {
        "count": len(order),
        "tasks": [
            {"slug": t.slug, "title": t.title, "priority": t.priority, "owner": t.owner, "path": t.path}
            for t in order
        ],
    }
