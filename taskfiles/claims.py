"""Claims: the observation decides, the registry makes it atomic.

``task claim``, ``task next`` and ``task next --claim`` all read one ``Observation``
(``status.observe``): ``next`` names the first task of its dispatch order, ``next
--claim`` claims the first of that same order that the registry still lets it take,
and ``claim`` refuses with the reason its row gives. The registry refuses a live
claim, a backoff or a parked entry in the same transaction that would claim it, so
two claimers never both win.

Whoever claims, the claim records the task file's blob id at the base ref, as the
heartbeat's dispatch does: the heartbeat raises ``root_task_edited`` when the file
at the base ref changes after the claim, for hand claims too.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import git
from .config import Config
from .errors import ConflictError, NotFoundError
from .plan import query
from .plan.source import TaskSet
from .plan.taskfile import Task
from .registry import Registry, RegistryEntry
from .registry.records import utc_now
from .state import Classification
from .status import Observation, classify, observe, planning_source

if TYPE_CHECKING:
    # Imported where used: they load YAML, which 'task next' never needs.
    from .plan.batch import Batch
    from .plan.edits import Selection


def claim(
    config: Config, registry: Registry, slug: str, *, worker: str, ref: str | None = None
) -> RegistryEntry:
    """Claim a task the classification calls ready; ConflictError with the reason otherwise.

    The plan's refusals (not ready, waiting, legacy keys) come from the task's row;
    the registry refuses a live claim, a backoff or a parked entry in the same
    transaction that would claim it, so two claimers never both win.
    """
    seen = queue(config, registry, ref)
    task = query.find(seen.tasks, slug)  # says where it looked, or which file cannot be read
    row = seen.by_slug[slug]
    refusal = plan_refusal(row, seen.tasks)
    if refusal:
        raise ConflictError(refusal)
    return registry.claim(
        slug,
        worker=worker,
        owner=task.owner,
        max_attempts=config.worker.max_attempts,
        task_blob=base_blobs(config, seen.tasks).get(slug),
    )


def base_blobs(config: Config, tasks: TaskSet) -> Mapping[str, str]:
    """The blob id of each task's file at the base ref (what the heartbeat compares against
    for ``root_task_edited``); a task not on the base ref has none.

    ``tasks`` read at the base ref carry them already; read from the working tree (a hand
    claim) or another ref, one ``git ls-tree`` of the tasks folder at the base ref finds them.
    """
    if tasks.ref == config.base_ref:
        return tasks.blobs
    if config.repo is None:
        return {}
    try:
        listed = git.ls_tree(config.root, config.base_ref, config.relpath(config.tasks_dir), sizes=False)
    except NotFoundError:  # no base ref yet (a new repository): nothing to compare against
        return {}
    by_path = {entry.path: entry.blob for entry in listed}
    return {task.slug: by_path[task.path] for task in tasks.tasks if task.path in by_path}


def plan_refusal(row: Classification, tasks: TaskSet) -> str | None:
    """Why the planning record forbids claiming the row's task, read off its classification."""
    task, slug = row.task, row.slug
    if task is None:
        return f"'{slug}' has no task file"
    if row.state == "legacy_in_progress":
        keys = ", ".join(f"{key}: {value}" for key, value in task.legacy.items())
        return f"'{slug}' is claimed in its frontmatter by an older tool ({keys}); run 'task migrate' first"
    if task.status != "ready":
        hint = "run 'task ready' and land it first" if task.status == "not_started" else "it is finished"
        return f"'{slug}' is {task.status}, not ready; {hint}"
    if task.legacy:  # classified needs_attention (legacy_runtime_keys), so the heartbeat skips it too
        keys = ", ".join(sorted(task.legacy))
        return f"'{slug}' has runtime keys in its frontmatter ({keys}); run 'task migrate' first"
    if row.blocked_by:
        blocked = [f"{dep} ({_status_of(tasks, dep)})" for dep in row.blocked_by]
        return f"'{slug}' waits for {', '.join(blocked)}; its dependencies must be completed first"
    return None


def _status_of(tasks: TaskSet, slug: str) -> str:
    dep = tasks.get(slug)
    return dep.status if dep else "missing"


def claim_next(
    config: Config, registry: Registry, *, worker: str, owner: str | None = None, ref: str | None = None
) -> RegistryEntry | None:
    """Claim the first task ``next`` names, recording its owner; never the same task twice.

    Candidates (the observation's dispatch order) go to the registry in runs of one
    owner, each run one transaction that claims its first claimable task, so the
    claim records the task's owner as ``task claim`` does, and two agents racing
    still never get the same task.
    """
    seen = queue(config, registry, ref)
    candidates = _candidates(seen, config, owner)
    blobs = base_blobs(config, seen.tasks) if candidates else {}
    for task_owner, run in itertools.groupby(candidates, key=lambda task: task.owner):
        entry = registry.claim_first(
            [task.slug for task in run],
            worker=worker,
            owner=task_owner,
            max_attempts=config.worker.max_attempts,
            task_blobs=blobs,
        )
        if entry is not None:
            return entry
    return None


def next_task(seen: Observation, config: Config, owner: str | None = None) -> Task | None:
    """The task ``task next`` names in ``seen`` (``queue``): the one ``next --claim`` would take now."""
    candidates = _candidates(seen, config, owner)
    return candidates[0] if candidates else None


def _candidates(seen: Observation, config: Config, owner: str | None) -> list[Task]:
    """The dispatch order, of ``owner``'s tasks only when given (UsageError for an owner
    the configuration does not know: ``Config.owner_named``)."""
    canonical = config.owner_named(owner) if owner is not None else None
    return seen.dispatchable([canonical] if canonical else ())


def queue(config: Config, registry: Registry | None, ref: str | None = None) -> Observation:
    """What claims see: the working tree (or ``ref``) against a registry that must be readable.

    ``registry`` None: nothing ever ran here (no registry yet), so no entry holds a task.
    """
    source = planning_source(config, ref, working_tree=ref is None)
    if registry is None:
        return classify(config, source, {}, None, now=utc_now())
    return observe(config, registry, now=registry.clock(), source=source, tolerant=False)


@dataclass(frozen=True)
class Cancellation:
    """What ``task cancel`` did (with ``dry_run``: would do): the file edits, and the
    runtime claims it ended."""

    batch: Batch
    stopped: tuple[RegistryEntry, ...]  # live attempts stopped (as they were before)
    released: tuple[RegistryEntry, ...]  # entries released, the stopped ones included (as before)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``changed``, ``unchanged`` (``Batch.to_dict``), ``stopped`` and
        ``released`` (each ``[{slug, lease, state}]``, the state the entry was in)."""
        ended = [{"slug": e.slug, "lease": e.lease, "state": e.state} for e in self.released]
        stopped = {entry.slug for entry in self.stopped}
        return {
            **self.batch.to_dict(),
            "stopped": [item for item in ended if item["slug"] in stopped],
            "released": ended,
        }


def cancel(
    config: Config,
    registry: Registry | None,
    selection: Selection,
    *,
    reason: str | None = None,
    dry_run: bool = False,
) -> Cancellation:
    """Cancel the selected tasks: ``status: cancelled`` in each file, and an end to each
    one's runtime claim: a live attempt is stopped (its worker's next write is refused,
    exit 5) and the entry released, each event recording ``reason`` and the actor.

    The file edits are all computed and checked first (``plan.edits.plan_cancel``; a completed
    task is refused); then the registry records a ``task.cancelled`` event (with ``reason``)
    for each task the command cancels, entry or not, and the claims end; then the files are
    written, so a registry that cannot be written stops the command before any file
    changes. The reason lives in the registry's events only: a task file keeps the durable
    status, no more. ``registry`` None: nothing ever ran here (and nothing is recorded). A
    dry run reads the registry and writes nothing.
    """
    from .plan.edits import plan_cancel

    batch = plan_cancel(config, selection)
    unreleased = registry.unreleased() if registry is not None else {}
    ending = tuple(unreleased[edit.slug] for edit in batch.edits if edit.slug in unreleased)
    if not dry_run:
        # Before the registry records anything: a file saved meanwhile stops the command
        # with nothing written (``write`` checks again, for the instant in between).
        batch.check_unchanged(config.root)
        if registry is not None:
            for edit in batch.changed:
                registry.cancelled(edit.slug, reason=reason)
            why = f"task cancelled: {reason}" if reason else "task cancelled"
            for entry in ending:
                _end_claim(registry, entry, why)
        batch.write(config.root)
    return Cancellation(batch, tuple(entry for entry in ending if entry.is_live), ending)


def _end_claim(registry: Registry, entry: RegistryEntry, reason: str) -> None:
    """Stop a live attempt, then release the entry (a lease, once retired, is never reused)."""
    if entry.is_live:
        # ConflictError: the attempt ended since it was read; there is only the entry to release.
        with contextlib.suppress(ConflictError):
            registry.stop(entry.slug, reason=reason)
    registry.release(entry.slug, reason=reason)
