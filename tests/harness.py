"""A sample repository, a scripted agent and a movable clock for the heartbeat and worker tests.

The agent is a real process (``AGENT`` below, written to a file outside the
repository). What it does on each attempt of each task comes from a JSON plan:
``{"slug": ["exit:1", "complete"]}`` fails the first attempt and completes the
second. The clock is the only thing faked: cycles run at ``real time + offset``.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from taskfiles import config as tconfig
from taskfiles import process
from taskfiles.dispatch import cycle as heartbeat
from taskfiles.registry import Registry, RegistryEntry, open_registry

from .conftest import commit_all, git, wait_until, write_task

AGENT = r"""
import json, os, subprocess, sys, time
from pathlib import Path

plan_file, slug = sys.argv[1], sys.argv[2]
steps = json.loads(Path(plan_file).read_text()).get(slug, ["ok"])
attempt = int(os.environ["TASKFILES_ATTEMPT"])
step = steps[min(attempt, len(steps)) - 1]
print(f"agent {slug} attempt {attempt}: {step}", flush=True)
env_dump = Path(plan_file).with_name(f"env-{slug}-{attempt}.json")
env_dump.write_text(json.dumps({k: v for k, v in os.environ.items() if k.startswith("TASKFILES_")}))
kind, _, arg = step.partition(":")
if kind == "exit":
    print(f"failing with {arg}", file=sys.stderr, flush=True)
    sys.exit(int(arg))
if kind == "hang":
    time.sleep(600)
if kind == "cost":
    task = Path(sys.executable).with_name("task")
    subprocess.run([str(task), "heartbeat", slug, "--cost-usd", arg], check=True, capture_output=True)
    time.sleep(600)
if kind == "complete":
    from taskfiles import config
    from taskfiles.plan import edits as planning
    Path(f"work-{slug}.txt").write_text(f"done by attempt {attempt}\n")
    planning.complete(config.load(Path.cwd()), slug)
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"{slug}: done"], check=True)
sys.exit(0)
"""

CONFIG = """\
base_ref = "main"
owners = ["core", "agents"]
owner_aliases = {{ dev = "core", bot = "agents" }}

[worker]
command = {command}
heartbeat_seconds = {heartbeat_seconds}
max_attempts = {max_attempts}
exit_codes = {{ "3" = "usage" }}
non_retryable = ["usage", "cost_cap"]
kill_grace_seconds = 1
{worker_extra}

[heartbeat]
max_parallel = {max_parallel}
backoff_base_seconds = 100
backoff_jitter = 0
circuit_breaker = {circuit_breaker}
orphan_grace_seconds = 300

[limits]
stall_after_seconds = 600
review_grace_seconds = 3600
pickup_overdue_seconds = 900
"""


class Clock:
    """Real time plus an offset that tests move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


class Site:
    """A repository with task files, a plan for the agent, and a registry under it."""

    def __init__(self, root: Path, plan_file: Path) -> None:
        self.root = root
        self.plan_file = plan_file
        self.clock = Clock()

    # -- set-up ---------------------------------------------------------------------------------

    def configure(
        self,
        *,
        max_parallel: int = 4,
        max_attempts: int = 3,
        circuit_breaker: int = 3,
        heartbeat_seconds: float = 30,
        worker_extra: str = "",
    ) -> None:
        """Write taskfiles.toml (committed, so the worktrees get the same file)."""
        command = [sys.executable, str(self.plan_file.with_name("agent.py")), str(self.plan_file), "{slug}"]
        text = CONFIG.format(
            command=json.dumps(command),
            heartbeat_seconds=heartbeat_seconds,
            max_attempts=max_attempts,
            max_parallel=max_parallel,
            circuit_breaker=circuit_breaker,
            worker_extra=worker_extra,
        )
        (self.root / "taskfiles.toml").write_text(text, encoding="utf-8")
        commit_all(self.root, "configure")

    def plan(self, steps: Mapping[str, list[str]]) -> None:
        """What the agent does on each attempt of each task."""
        self.plan_file.write_text(json.dumps(steps), encoding="utf-8")

    def task(
        self, slug: str, *, deps: Iterable[str] = (), owner: str | None = None, status: str = "ready"
    ) -> None:
        """Write and commit ``tasks/<slug>.md``."""
        lines = [f"title: Task {slug}", f"status: {status}"]
        if owner:
            lines.append(f"owner: {owner}")
        if deps:
            lines.append(f"depends_on: [{', '.join(deps)}]")
        write_task(self.root, f"{slug}.md", "---\n" + "\n".join(lines) + f"\n---\n\nDo {slug}.\n")
        commit_all(self.root, f"add {slug}")

    # -- running --------------------------------------------------------------------------------

    @property
    def config(self) -> tconfig.Config:
        return tconfig.load(self.root)

    def registry(self) -> Registry:
        return open_registry(self.config, clock=self.clock)

    def cycle(self, **options: Any) -> heartbeat.CycleResult:
        """One heartbeat cycle at the site's clock."""
        return heartbeat.run_cycle(self.config, heartbeat.CycleOptions(**options), clock=self.clock)

    def entry(self, slug: str) -> RegistryEntry:
        return self.registry().get(slug)

    def wait(self, slug: str, *states: str, timeout: float = 60) -> RegistryEntry:
        """Wait (not assert on time) until ``slug``'s entry is in one of ``states``."""
        wait_until(lambda: self.entry(slug).state in states, timeout, f"{slug} to be {'/'.join(states)}")
        return self.entry(slug)

    def wait_started(self, slug: str) -> RegistryEntry:
        """Wait until the agent of the current attempt has started (it wrote its env dump)."""
        attempt = self.entry(slug).attempt
        dump = self.plan_file.with_name(f"env-{slug}-{attempt}.json")
        wait_until(dump.exists, 60, f"the agent of {slug} attempt {attempt} to start")
        return self.entry(slug)

    def merge(self, slug: str) -> None:
        """Squash-merge ``task/<slug>`` into main, as a pull request would."""
        git(self.root, "merge", "--squash", "-q", f"task/{slug}")
        git(self.root, "commit", "-q", "-m", f"Merge {slug} (squash)")

    def kill_all(self) -> None:
        """Kill every worker session any entry or event ever recorded (teardown)."""
        for event in self.registry().events().events:
            entry = (event.change or {}).get("set", {})
            if event.type == "task.started" and entry.get("pid"):
                process.kill_session(int(entry["pid"]), entry.get("pid_start_time"), signal.SIGKILL)


def make_site(tmp_path: Path) -> Site:
    """A fresh repository on main with an ignored registry and the agent script."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "tasks").mkdir()
    (root / "registry").mkdir()
    (root / "registry" / ".gitignore").write_text("*\n!.gitignore\n", encoding="utf-8")
    (tmp_path / "agent.py").write_text(AGENT, encoding="utf-8")
    site = Site(root, tmp_path / "plan.json")
    site.plan({})
    site.configure()
    return site


def tree_digest(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def env_of(site: Site, slug: str, attempt: int) -> dict[str, str]:
    """The TASKFILES_* variables the agent saw on that attempt."""
    data: dict[str, str] = json.loads(site.plan_file.with_name(f"env-{slug}-{attempt}.json").read_text())
    return data


def alive(pid: int | None) -> bool:
    return pid is not None and process.is_alive(pid)
