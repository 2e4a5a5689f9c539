"""An agent's attempt through MCP: claim the next task, report on it, finish it.

``next`` claims as ``task next --claim`` does (one registry transaction: two agents never
get the same task), then prepares the task's worktree and branch exactly as the cycle's
dispatch does (``dispatch.launch.prepare_worktree``), writes the prompt with this host's
files and records the start with the worktree and branch. It records no pid: the server
is not the worker, so nothing probes a process for ``worker_gone``; the agent's reports
are its heartbeats, and without them the task stalls after ``stall_after_seconds``.
Nothing here writes a tracked file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import claims, git, process
from ..config import Config
from ..dispatch import prompt
from ..dispatch.hostfiles import HostFiles
from ..dispatch.launch import prepare_worktree
from ..errors import ConflictError, NotFoundError, TaskfilesError, UsageError, described
from ..plan import query, source
from ..registry import Actor, RegistryEntry, lifecycle
from ..registry.transaction import Plan, Snapshot
from .workspace import Workspace

WORKER_ENV = "TASKFILES_WORKER"


def worker_id(client: str | None = None) -> str:
    """$TASKFILES_WORKER, else ``mcp:<client>@<host>`` (the client's name, else the actor's):
    a claim made through MCP says so in the registry."""
    actor = Actor.current()
    return os.environ.get(WORKER_ENV) or f"mcp:{client or actor.who}@{actor.host}"


def take_next(ws: Workspace, *, worker: str, owner: str | None = None) -> dict[str, Any] | None:
    """Claim the next ready task and prepare its attempt: ``{slug, lease, attempt, worktree,
    branch, prompt_file, prompt}``; None when nothing is claimable.

    A preparation that fails after the claim fails the attempt as ``dispatch_failed`` (the
    heartbeat retries it, as it does a failed dispatch) and is raised.
    """
    config, registry = ws.config, ws.registry()
    ref = claim_ref(config)
    entry = claims.claim_next(config, registry, worker=worker, owner=owner, ref=ref)
    if entry is None:
        return None
    try:
        return _prepare(ws, entry, ref)
    except (TaskfilesError, OSError) as exc:
        error = described(exc)
        with contextlib.suppress(ConflictError):
            registry.fail(entry.slug, entry.lease, failure_class="dispatch_failed", error=error)
        raise


def claim_ref(config: Config) -> str | None:
    """Where ``next`` reads the task files: the base ref, as the dispatcher does (the task's
    worktree is made from it, so the task file the prompt names is there), else the
    working tree while the base ref does not exist yet (a new repository)."""
    if config.repo is None:
        return None
    try:
        git.resolve_commit(config.root, config.base_ref)
    except NotFoundError:
        return None
    return config.base_ref


def _prepare(ws: Workspace, entry: RegistryEntry, ref: str | None) -> dict[str, Any]:
    config = ws.config
    task = query.find(source.load(config, ref), entry.slug)  # the reading the claim was made from
    worktree, branch = prepare_worktree(config, task.slug, ref or "HEAD", entry.fresh)
    text = prompt.for_attempt(ws.registry(), task, entry, worktree, branch, mcp=True)
    prompt_file = HostFiles.of(config).write_prompt(task.slug, entry.attempt, text)
    ws.registry().start(task.slug, entry.lease, worktree=worktree.as_posix(), branch=branch)
    return {
        "slug": task.slug,
        "lease": entry.lease,
        "attempt": entry.attempt,
        "worktree": worktree.as_posix(),
        "branch": branch,
        "prompt_file": prompt_file.as_posix(),
        "prompt": text,
    }


@dataclass(frozen=True)
class Evidence:
    """A command run as evidence and how it ended."""

    command: str
    exit_code: int
    summary: str | None = None


@dataclass(frozen=True)
class Report:
    """What one ``report`` carries; every part is optional, the heartbeat always happens."""

    progress: int | None = None
    message: str | None = None
    note: str | None = None
    blocker: str | None = None
    clear_blocker: bool = False
    evidence: Evidence | None = None
    artifact: str | None = None
    cost_usd: float | None = None


def report(ws: Workspace, slug: str, lease: int, facts: Report) -> dict[str, Any]:
    """Heartbeat (with the cost) and record each fact given, every write fenced by ``lease``;
    the entry as they left it. All of it is one registry transaction: a stale lease (or any
    refused fact) writes nothing."""
    if facts.blocker and facts.clear_blocker:
        raise UsageError("give blocker or clear_blocker, not both")
    if facts.message is not None and facts.progress is None:
        raise UsageError("message goes with progress (0-100); use note for a message on its own")
    steps: list[Callable[[Snapshot], Plan[Any]]] = [
        lambda s: lifecycle.heartbeat(s, slug, lease, cost_usd=facts.cost_usd)
    ]
    if facts.progress is not None:
        percent = facts.progress
        steps.append(lambda s: lifecycle.progress(s, slug, percent, facts.message, lease=lease))
    if facts.note:
        note = facts.note
        steps.append(lambda s: lifecycle.note(s, slug, note, lease=lease))
    if facts.blocker or facts.clear_blocker:
        steps.append(lambda s: lifecycle.blocker(s, slug, facts.blocker or None, lease=lease))
    if facts.evidence is not None:
        found = facts.evidence
        code = process.exit_code(found.exit_code, "evidence.exit_code")
        steps.append(lambda s: lifecycle.evidence(s, slug, found.command, code, found.summary, lease=lease))
    if facts.artifact:
        ref = facts.artifact
        steps.append(lambda s: lifecycle.artifact(s, slug, ref, lease=lease))
    # One transaction: every fact is fenced by the same reading of the lease, and a refusal
    # of any of them (a stale lease, a bad percentage) records none.
    entry: RegistryEntry = ws.registry().transact(lambda s: lifecycle.chain(s, steps))
    return entry.to_dict()


def finish(ws: Workspace, slug: str, lease: int, exit_code: int, error: str | None = None) -> dict[str, Any]:
    """End the attempt: 0 is ``exited`` (waiting for review and merge), else ``failed``."""
    code = process.exit_code(exit_code, "exit_code")
    return ws.registry().finish(slug, lease, code, error=error).to_dict()
