"""Dispatch: hand ready tasks to detached worker wrappers, one worktree and branch per task.

For each task, highest priority first and up to the free capacity: claim it with a
new lease (once the registry, read again, still leaves this host a slot: other
dispatch hosts claim from their own readings), create or reuse
``.worktrees/<slug>`` on branch ``task/<slug>`` from the base commit (an earlier
attempt's worktree and branch are kept unless the task was retried fresh), write the
prompt file with this host's files, start ``task worker run`` in a new session (it
survives the cycle) with the agent profile and budget the task file names, then record
its pid, start time, worktree and agent profile. The wrapper waits on its
stdin until that record is written, so the registry never misses the pid of a worker
that ends quickly. A dispatch that fails after the claim fails the attempt with the
class ``dispatch_failed``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .. import git, process
from ..config import Config
from ..errors import ConflictError, GitError, TaskfilesError
from ..plan.source import TaskSet, with_body
from ..plan.taskfile import Task
from ..registry import RegistryEntry
from ..status import Capacity
from . import prompt
from .scene import Scene, dispatcher_worker
from .worker import GO, Intent


@dataclass(frozen=True)
class Dispatched:
    """A task handed to a worker (``error`` set: the dispatch failed after the claim)."""

    slug: str
    lease: int
    attempt: int
    worktree: str | None = None
    branch: str | None = None
    pid: int | None = None
    prompt_file: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, without empty parts."""
        return {k: v for k, v in vars(self).items() if v is not None}


def dispatch(scene: Scene, tasks: TaskSet, chosen: Sequence[Task], capacity: Capacity) -> list[Dispatched]:
    """Dispatch each of ``chosen`` while the registry leaves this host a slot under
    ``capacity``'s limits (``max_parallel``, ``max_parallel_per_host``); a task claimed by
    someone else meanwhile is skipped.

    At most as many claims as ``capacity`` (the cycle's observation) had free for this host:
    a dispatch that fails after its claim frees its slot again, and without this bound a
    broken launch (a full disk, a git error) would fail one attempt of every candidate.
    """
    done: list[Dispatched] = []
    for task in chosen:
        if len(done) >= capacity.free_on(scene.host) or room(scene, capacity) < 1:
            break
        result = dispatch_one(scene, tasks, task)
        if result is not None:
            done.append(result)
    return done


def room(scene: Scene, capacity: Capacity) -> int:
    """How many workers this host may start now, counted on the registry as it is now.

    The cycle chose from its observation, but another host's cycle may have claimed
    since (cron starts every host's at the same minute): reading again just before each
    claim leaves only the moment between that read and the claim for two hosts to race.
    """
    live = scene.registry.unreleased().values()  # only live ones count; released are history
    return Capacity.of(live, capacity.max_parallel, capacity.max_parallel_per_host).free_on(scene.host)


def dispatch_one(scene: Scene, tasks: TaskSet, task: Task) -> Dispatched | None:
    """Claim ``task`` and start its worker; None when it could not be claimed."""
    settings = scene.config.worker
    try:
        entry = scene.registry.claim(
            task.slug,
            worker=dispatcher_worker(scene.host),
            owner=task.owner,
            max_attempts=settings.max_attempts,
            task_blob=tasks.paths_to_blobs.get(task.path),
        )
    except ConflictError:
        return None
    try:
        return _launch(scene, tasks, task, entry)
    except (TaskfilesError, OSError) as exc:
        error = str(exc) if isinstance(exc, TaskfilesError) else f"{exc.strerror or exc} ({exc.filename})"
        _record_failure(scene, entry, error)
        return Dispatched(task.slug, entry.lease, entry.attempt, error=error)


def _launch(scene: Scene, tasks: TaskSet, task: Task, entry: RegistryEntry) -> Dispatched:
    intent = Intent.of(task)
    intent.settings(scene.config)  # an agent profile that is not configured fails here, not in the wrapper
    worktree, branch = prepare_worktree(
        scene.config, task.slug, tasks.commit or scene.config.base_ref, entry.fresh
    )
    full = with_body(scene.config, tasks, task)  # the cycle reads the tasks without their bodies
    text = prompt.for_attempt(scene.registry, full, entry, worktree, branch)
    prompt_file = scene.host_files.write_prompt(task.slug, entry.attempt, text)
    child = _spawn(scene, task, entry, worktree, prompt_file, intent)
    try:
        scene.registry.start(
            task.slug,
            entry.lease,
            pid=child.pid,
            pid_start_time=process.pid_start_time(child.pid),
            worktree=str(worktree),
            branch=branch,
            agent=intent.profile,
        )
    except BaseException:
        _abandon(child)
        raise
    _go(child)
    return Dispatched(
        task.slug, entry.lease, entry.attempt, str(worktree), branch, child.pid, str(prompt_file)
    )


def prepare_worktree(config: Config, slug: str, base: str, fresh: bool) -> tuple[Path, str]:
    """Create or reuse ``.worktrees/<slug>`` in the main worktree on branch ``task/<slug>``
    from ``base`` (``fresh``: start the branch over from it); return the worktree and branch.

    The one way a task gets its worktree: the cycle's dispatch and ``task mcp``'s ``next``.
    """
    repo = config.repo
    if repo is None:
        raise GitError(f"{config.root} is not a git repository; worktrees need one")
    settings = config.heartbeat
    worktree = repo.main_root / settings.worktrees_dir / slug
    branch = settings.branch_prefix + slug
    # Ignored through info/exclude: the cycle must never write a tracked file such as .gitignore.
    git.ensure_excluded(repo.common_dir, f"/{settings.worktrees_dir}/")
    git.add_worktree(repo.main_root, worktree, branch, base, fresh=fresh)
    return worktree, branch


def wrapper_command(
    scene: Scene, task: Task, entry: RegistryEntry, prompt_file: Path, intent: Intent
) -> list[str]:
    """The argv that starts the worker wrapper for this attempt (with the task's ``intent``,
    as read at the base ref: the branch's copy of the task file is the agent's to edit)."""
    return [
        sys.executable,
        "-m",
        "taskfiles",
        "--repo",
        str(scene.main_root),
        "worker",
        "run",
        task.slug,
        "--lease",
        str(entry.lease),
        "--task-file",
        task.path,
        "--prompt-file",
        str(prompt_file),
        *intent.options(),
        "--dispatched",
    ]


def _spawn(
    scene: Scene, task: Task, entry: RegistryEntry, worktree: Path, prompt_file: Path, intent: Intent
) -> subprocess.Popen[bytes]:
    """Start the wrapper detached: a new session, no terminal, output to a file under the registry."""
    out_path = scene.host_files.worker_output(task.slug, entry.attempt)
    env = {
        **git.env_for_worktree(),
        "TASKFILES_REGISTRY": str(scene.config.registry_dir),
        process.HOST_ENV: scene.host,  # the wrapper and its agent write as the host that recorded the pid
    }
    with open(out_path, "ab") as out:
        return subprocess.Popen(
            wrapper_command(scene, task, entry, prompt_file, intent),
            cwd=worktree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def _go(child: subprocess.Popen[bytes]) -> None:
    """Tell the wrapper its start is recorded, and let go of it."""
    stdin: IO[bytes] | None = child.stdin
    if stdin is None:
        return
    with contextlib.suppress(OSError):  # it died already: the next cycle finds it gone
        stdin.write(GO)
    with contextlib.suppress(OSError):
        stdin.close()


def _abandon(child: subprocess.Popen[bytes]) -> None:
    """The start could not be recorded: the wrapper must not run."""
    with contextlib.suppress(OSError):
        if child.stdin is not None:
            child.stdin.close()  # EOF without "go": the wrapper exits on its own
    process.kill_group(child.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)


def _record_failure(scene: Scene, entry: RegistryEntry, error: str) -> None:
    """Fail the attempt as ``dispatch_failed``; reconciliation retries or parks it next cycle."""
    with contextlib.suppress(ConflictError):
        scene.registry.fail(entry.slug, entry.lease, failure_class="dispatch_failed", error=error)
