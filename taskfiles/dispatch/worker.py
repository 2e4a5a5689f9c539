"""The worker wrapper (``task worker run SLUG --lease N``): runs one attempt of one task.

It runs the configured agent command (an argument list with placeholders, never a
shell string built from task text; the task's ``agent`` names a profile of
``[agents]``) in the task's worktree, with ``TASKFILES_*``
variables so the agent can call ``task heartbeat``, ``task log``, ``task progress``
and ``task complete``. While the agent lives the wrapper heartbeats on a timer,
tees the agent's output into the attempt's log, enforces the wall-clock deadline
and the cost cap (per attempt: the task's ``budget_usd``, else ``cost_cap_usd``), and stops
at once when its lease is retired. It records the exit
with its lease. One wrapper per task and one per worktree at a time: a second one for
the same task, or for another task in the same worktree, refuses to start.

The agent runs in a process group of its own, so the wrapper can kill the agent
and everything it started without killing itself.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from .. import git, process
from ..config import Config
from ..errors import ConflictError, StaleLeaseError, TaskfilesError
from ..plan import query, source
from ..plan.taskfile import Task
from ..registry import Registry, RegistryEntry
from ..settings import DEFAULT_AGENT, WorkerSettings
from . import prompt
from .hostfiles import HostFiles

TICK = 0.2  # seconds between looks at the agent
MAX_LINE = 8000  # characters of one output line kept in the log
GO = b"go\n"  # the dispatcher's word that the start is recorded


@dataclass(frozen=True)
class Intent:
    """What a task file asks of each of its attempts: which agent profile runs it
    (``agent``; None: ``[worker] command``) and the cost cap (``budget_usd``; None:
    the profile's ``cost_cap_usd``)."""

    agent: str | None = None
    budget_usd: float | None = None

    @classmethod
    def of(cls, task: Task) -> Intent:
        """The intent ``task``'s frontmatter states."""
        return cls(task.agent, task.budget_usd)

    @property
    def profile(self) -> str:
        """The agent profile's name, as events and messages say it."""
        return self.agent or DEFAULT_AGENT

    def settings(self, config: Config) -> WorkerSettings:
        """The settings the attempt runs with; ConfigError for an agent that is not configured."""
        chosen = config.worker_for(self.agent)
        return chosen if self.budget_usd is None else replace(chosen, cost_cap_usd=self.budget_usd)

    def options(self) -> list[str]:
        """The ``task worker run`` options that carry it to a wrapper."""
        budget = ["--budget-usd", repr(self.budget_usd)] if self.budget_usd is not None else []
        return ["--agent", self.profile, *budget]


@dataclass(frozen=True)
class Job:
    """One attempt: who, where, and with which lease."""

    slug: str
    lease: int
    attempt: int
    worktree: Path
    branch: str
    task_file: Path
    prompt_file: Path
    registry_dir: Path
    repo: Path
    budget_usd: float | None = None  # the task's own cap, which the cost cap message names


@dataclass(frozen=True)
class WorkerResult:
    """How the attempt ended: ``exited``, ``failed``, ``deadline``, ``cost_cap``,
    ``terminated``, ``lease_lost`` or ``not_started``."""

    slug: str
    lease: int
    outcome: str
    exit_code: int | None = None  # the agent's (negative: killed by that signal)
    failure_class: str | None = None
    detail: str = ""

    @property
    def status(self) -> int:
        """The wrapper's own exit status: 0 when the agent succeeded, else non-zero."""
        if self.outcome == "exited":
            return 0
        if self.outcome == "lease_lost":
            return StaleLeaseError.exit_code
        code = self.exit_code or 1
        return code if 0 < code < 256 else 1


def run(
    config: Config,
    registry: Registry,
    slug: str,
    lease: int,
    *,
    task_file: str | None = None,
    prompt_file: str | None = None,
    worktree: Path | None = None,
    dispatched: bool = False,
    intent: Intent | None = None,
    go: IO[bytes] | None = None,
) -> WorkerResult:
    """Run one attempt of ``slug`` under ``lease`` until the agent ends; record how it ended.

    ``dispatched``: started by the heartbeat, which records the start and then writes
    "go" to ``go`` (default: stdin); without it the wrapper records the start itself.
    ``intent``: the agent profile and budget (the dispatcher passes what it read at the
    base ref); None reads them from the task file in the working tree, as a hand run does.
    ConflictError, before anything is recorded, while another wrapper runs for ``slug``
    or in the same worktree (by default the one the claim recorded, else the repository);
    ConfigError, before anything is recorded, for an agent profile that is not configured.
    """
    host = HostFiles.of(config)
    with host.worker_lock(slug):
        if dispatched and (go or sys.stdin.buffer).readline() != GO:
            return WorkerResult(slug, lease, "not_started", detail="the dispatcher did not confirm the start")
        place = worktree or _recorded_worktree(registry, slug, dispatched) or config.root
        with host.worktree_lock(place, slug):
            # Read the task files only when something is missing: a dispatched wrapper has it all.
            lookup = functools.cache(lambda: query.find(source.load(config), slug))
            wanted = intent or Intent.of(lookup())
            settings = wanted.settings(config)
            entry = _started(registry, slug, lease, dispatched, place, wanted)
            job = _job(config, registry, entry, lease, lookup, task_file, prompt_file, wanted)
            return Supervisor(settings, registry, job).run()


def _recorded_worktree(registry: Registry, slug: str, dispatched: bool) -> Path | None:
    """Where the dispatcher put the attempt (it records the worktree before saying "go")."""
    if not dispatched:
        return None
    recorded = registry.find(slug)
    return Path(recorded.worktree) if recorded and recorded.worktree else None


def _started(
    registry: Registry, slug: str, lease: int, dispatched: bool, worktree: Path, intent: Intent
) -> RegistryEntry:
    if dispatched:  # the heartbeat recorded the start; this also checks the lease
        return registry.heartbeat(slug, lease)
    pid = os.getpid()
    return registry.start(
        slug,
        lease,
        pid=pid,
        pid_start_time=process.pid_start_time(pid),
        worktree=str(worktree),
        agent=intent.profile,
    )


def _job(
    config: Config,
    registry: Registry,
    entry: RegistryEntry,
    lease: int,
    lookup: Callable[[], Task],
    task_file: str | None,
    prompt_file: str | None,
    intent: Intent,
) -> Job:
    """The attempt's facts; by hand (no --task-file/--prompt-file) the task is looked up and
    its prompt written with this host's files, as the heartbeat would have (with the same
    account of earlier attempts)."""
    worktree = Path(entry.worktree or config.root)
    branch = entry.branch or ""
    if task_file is None or prompt_file is None:
        task = lookup()
        task_file = task_file or task.path
        if prompt_file is None:
            text = prompt.for_attempt(registry, task, entry, worktree, branch)
            prompt_file = str(HostFiles.of(config).write_prompt(entry.slug, entry.attempt, text))
    repo = config.repo.main_root if config.repo else config.root
    return Job(
        slug=entry.slug,
        lease=lease,
        attempt=entry.attempt,
        worktree=worktree,
        branch=branch,
        task_file=worktree / task_file,
        prompt_file=Path(prompt_file),
        registry_dir=config.registry_dir,
        repo=repo,
        budget_usd=intent.budget_usd,
    )


def command_for(template: tuple[str, ...], job: Job) -> list[str]:
    """The agent's argv: each placeholder replaced inside its own argument, no shell involved."""
    values = {
        "{slug}": job.slug,
        "{task_file}": str(job.task_file),
        "{worktree}": str(job.worktree),
        "{branch}": job.branch,
        "{prompt_file}": str(job.prompt_file),
    }
    argv = []
    for arg in template:
        for key, value in values.items():
            arg = arg.replace(key, value)
        argv.append(arg)
    return argv


def agent_env(job: Job) -> dict[str, str]:
    """The agent's environment: ours without the variables that tie git to one repository,
    plus TASKFILES_* and ``task`` on PATH."""
    env = git.env_for_worktree()
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
    env.update(
        TASKFILES_SLUG=job.slug,
        TASKFILES_LEASE=str(job.lease),
        TASKFILES_ATTEMPT=str(job.attempt),
        TASKFILES_TASK_FILE=str(job.task_file),
        TASKFILES_WORKTREE=str(job.worktree),
        TASKFILES_BRANCH=job.branch,
        TASKFILES_PROMPT_FILE=str(job.prompt_file),
        TASKFILES_REGISTRY=str(job.registry_dir),
        TASKFILES_REPO=str(job.repo),
        TASKFILES_ACTOR=os.environ.get("TASKFILES_ACTOR") or "agent",
        TASKFILES_HOST=process.host_identity(),  # the agent's writes name the host its worker runs on
    )
    return env


class Supervisor:
    """Runs the agent and watches it: output, heartbeats, deadline, cost cap, lease."""

    def __init__(self, settings: WorkerSettings, registry: Registry, job: Job) -> None:
        self.settings = settings
        self.registry = registry
        self.job = job
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.stderr_tail = ""
        self.terminated = False

    def run(self) -> WorkerResult:
        """Start the agent and supervise it to the end."""
        argv = command_for(self.settings.command, self.job)
        if not argv:
            return self._record(127, "command_not_found", "[worker] command is not set", "failed")
        try:
            child = subprocess.Popen(
                argv,
                cwd=self.job.worktree,
                env=agent_env(self.job),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                process_group=0,
            )
        except OSError as exc:
            error = f"cannot start {argv[0]!r}: {exc.strerror}; check [worker] command"
            return self._record(127, "command_not_found", error, "failed")
        with self._sigterm():
            return self._watch(child)

    @contextlib.contextmanager
    def _sigterm(self) -> Iterator[None]:
        """SIGTERM stops the agent and ends the attempt cleanly (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: object) -> None:
            self.terminated = True

        previous = signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _watch(self, child: subprocess.Popen[bytes]) -> WorkerResult:
        readers = [self._pump(child.stdout, "info"), self._pump(child.stderr, "warning")]
        started = time.monotonic()
        next_beat = started + self.settings.heartbeat_seconds
        deadline = self.settings.deadline_seconds
        try:
            while (code := _wait(child)) is None:
                self._flush()
                if deadline is not None and time.monotonic() - started >= deadline:
                    return self._end(child, readers, "deadline", f"deadline of {deadline:g} s passed")
                if self.terminated:
                    return self._end(child, readers, "terminated", "the wrapper got SIGTERM")
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.settings.heartbeat_seconds
                    over = self._beat()
                    if over:
                        return self._end(child, readers, "cost_cap", over)
        except StaleLeaseError as exc:
            self._stop(child, readers)
            return WorkerResult(
                self.job.slug, self.job.lease, "lease_lost", child.returncode, detail=str(exc)
            )
        except TaskfilesError:
            # The registry refuses our writes (unreadable, full disk): an agent left running
            # would be unsupervised, so stop it before the error ends the wrapper.
            with contextlib.suppress(TaskfilesError):
                self._stop(child, readers)
            raise
        self._drain(readers)
        return self._exited(code)

    def _pump(self, stream: IO[bytes] | None, level: str) -> threading.Thread:
        def read() -> None:
            assert stream is not None
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")[:MAX_LINE]
                if level == "warning" and line.strip():
                    self.stderr_tail = line
                self.lines.put((level, line))
            stream.close()

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    def _flush(self) -> None:
        """Write the waiting output lines to the log, one write per run of the same level."""
        batch: list[tuple[str, str]] = []
        with contextlib.suppress(queue.Empty):
            while True:
                batch.append(self.lines.get_nowait())
        while batch:
            level = batch[0][0]
            run = [line for lvl, line in _take_while(batch, level)]
            self.registry.log_many(self.job.slug, run, lease=self.job.lease, level=level, source="agent")

    def _beat(self) -> str | None:
        """Heartbeat; return why the cost cap stops the task, if it does.

        The cap is per attempt: it compares this attempt's reported cost, so a task
        unparked or retried after hitting the cap gets a fresh budget. The task's own
        ``budget_usd`` is the cap when it has one (``Intent.settings``).
        """
        entry = self.registry.heartbeat(self.job.slug, self.job.lease)
        cap = self.settings.cost_cap_usd
        if cap is None or entry.cost_usd <= cap:
            return None
        limit = "the task's budget_usd" if self.job.budget_usd is not None else "the cost cap"
        return f"this attempt's reported cost ${entry.cost_usd:.2f} passed {limit} ${cap:.2f}"

    def _drain(self, readers: list[threading.Thread]) -> None:
        for reader in readers:  # an agent's leftover children may hold the pipes: do not wait forever
            reader.join(timeout=2)
        with contextlib.suppress(StaleLeaseError):
            self._flush()

    def _stop(self, child: subprocess.Popen[bytes], readers: list[threading.Thread]) -> None:
        """Stop the agent's process group: SIGTERM, then SIGKILL after the grace period."""
        process.kill_group(child.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=self.settings.kill_grace_seconds)
        process.kill_group(child.pid, signal.SIGKILL)  # and whatever it left in its group
        child.wait()
        self._drain(readers)

    def _end(
        self, child: subprocess.Popen[bytes], readers: list[threading.Thread], why: str, error: str
    ) -> WorkerResult:
        self._stop(child, readers)
        result = self._record(child.returncode, why, error, why)
        if why == "cost_cap" and result.outcome == why:
            with contextlib.suppress(ConflictError):
                self.registry.park(self.job.slug, reason=error, lease=self.job.lease)
        return result

    def _exited(self, code: int) -> WorkerResult:
        if code == 0:
            return self._record(0, None, None, "exited")
        error = self.stderr_tail[-300:] or f"exit code {code}"
        return self._record(code, self.settings.failure_class(code), error, "failed")

    def _record(self, code: int, failure_class: str | None, error: str | None, outcome: str) -> WorkerResult:
        """Record the exit with the lease; a retired lease means someone else decided already."""
        job = self.job
        try:
            self.registry.finish(job.slug, job.lease, code, error=error, failure_class=failure_class)
        except StaleLeaseError as exc:
            return WorkerResult(job.slug, job.lease, "lease_lost", code, failure_class, str(exc))
        return WorkerResult(job.slug, job.lease, outcome, code, failure_class, error or "")


def _wait(child: subprocess.Popen[bytes]) -> int | None:
    """The agent's exit code, or None when it still runs after one tick."""
    try:
        return child.wait(timeout=TICK)
    except subprocess.TimeoutExpired:
        return None


def _take_while(batch: list[tuple[str, str]], level: str) -> list[tuple[str, str]]:
    """Remove and return the leading items of ``batch`` at ``level``."""
    count = 0
    while count < len(batch) and batch[count][0] == level:
        count += 1
    taken = batch[:count]
    del batch[:count]
    return taken
