"""Backlog.md beside taskfiles: find or install its ``backlog`` command, write the same tasks
in its format, and count what ``backlog task list --plain`` lists.

Backlog.md keeps one Markdown file per task under ``backlog/tasks/`` (``task-N - Title.md``)
with YAML frontmatter (id, title, status, assignee, created_date, labels, milestone,
dependencies, priority, ordinal) and its sections between ``<!-- SECTION:...:BEGIN/END -->``
markers. The project is made by ``backlog init`` itself (so its config is what the
installed version writes), with cross-branch checks and remote operations off: the
fastest listing Backlog.md offers, which keeps the ratio against it conservative.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gen_tasks import TaskSpec, commit_all, specs
from machine import child_env
from timing import Retake, run_output

PACKAGE = "backlog.md"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "taskfiles-bench" / PACKAGE
STATUS = {"not_started": "To Do", "ready": "To Do", "completed": "Done", "cancelled": "Done"}
PRIORITY = {"p0": "high", "p1": "high", "p2": "medium", "p3": "low"}
# A task line of `backlog task list --plain`: "  [HIGH] TASK-12 - Title (ac: 0/3)".
LISTED = re.compile(r"^\s+(\[[A-Z]+\]\s+)?TASK-\d+ - ", re.MULTILINE)
INIT = ["init", "bench", "--defaults", "--integration-mode", "none", "--check-branches", "false"]
INIT += ["--include-remote", "false", "--auto-open-browser", "false"]


def find(install: bool) -> tuple[str | None, str]:
    """The ``backlog`` command to run and where it came from, or None and why there is none.

    ``backlog`` on PATH is used as it is; otherwise, with ``install``, ``npm install
    backlog.md`` into a cache folder (once; later runs reuse it)."""
    on_path = shutil.which("backlog")
    if on_path:
        return on_path, f"backlog on PATH ({on_path})"
    if not install:
        return (
            None,
            "backlog is not on PATH and --backlog was not given: Backlog.md not run, no ratio measured",
        )
    command = CACHE / "node_modules" / ".bin" / "backlog"
    if not command.exists():
        npm = shutil.which("npm")
        if npm is None:
            return None, "npm is not on PATH, so Backlog.md could not be installed: no ratio measured"
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", PACKAGE],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not command.exists():
            return None, f"npm install {PACKAGE} failed (exit {done.returncode}): {done.stderr[-400:]}"
    return str(command), f"npm install {PACKAGE} into {CACHE}"


def version(command: str) -> str:
    """What ``backlog --version`` says."""
    return subprocess.run(
        [command, "--version"], capture_output=True, text=True, env=child_env()
    ).stdout.strip()


def write_project(command: str, dest: Path, count: int, seed: int = 1) -> Path:
    """A git repository at ``dest`` made by ``backlog init``, holding the ``count`` generated
    tasks (the ones gen_tasks.py writes for taskfiles) as Backlog.md task files, committed."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True, env=child_env())
    done = subprocess.run(
        [command, *INIT], cwd=dest, capture_output=True, text=True, env=child_env(), stdin=subprocess.DEVNULL
    )
    folder = dest / "backlog" / "tasks"
    if done.returncode != 0 or not folder.is_dir():
        raise SystemExit(f"backlog init failed in {dest} (exit {done.returncode}): {done.stderr[-800:]}")
    generated = list(specs(count, seed))
    ids = {spec.slug: f"TASK-{spec.index + 1}" for spec in generated}
    for spec in generated:
        name = f"task-{spec.index + 1} - {re.sub(r'[^A-Za-z0-9]+', '-', spec.title).strip('-')}.md"
        (folder / name).write_text(task_text(spec, ids), encoding="utf-8")
    commit_all(dest)
    return dest


def task_text(spec: TaskSpec, ids: dict[str, str]) -> str:
    """One generated task in Backlog.md's task file format."""
    lines = [
        "---",
        f"id: {ids[spec.slug]}",
        f"title: '{spec.title}'",
        f"status: {STATUS[spec.status]}",
        "assignee:" + (f"\n  - '@{spec.owner}'" if spec.owner else " []"),
        "created_date: '2026-01-05 10:00'",
        "labels:" + ("".join(f"\n  - {label}" for label in spec.labels) if spec.labels else " []"),
        *([f"milestone: {spec.milestone}"] if spec.milestone else []),
        "dependencies:" + ("".join(f"\n  - {ids[d]}" for d in spec.depends_on) if spec.depends_on else " []"),
        *([f"priority: {PRIORITY[spec.priority]}"] if spec.priority else []),
        f"ordinal: {(spec.index + 1) * 1000}",
        "---",
        "",
    ]
    return "\n".join(lines) + "\n" + "\n".join(_sections(dict(spec.sections)))


def _sections(texts: dict[str, str]) -> list[str]:
    """Backlog.md's sections from ours: the problem and context make its description, the
    acceptance criteria its numbered checklist, the plan its plan, the progress its notes."""
    description = "\n\n".join(texts[k] for k in ("Problem", "Context", "Possible solutions") if texts.get(k))
    out = [_marked("Description", "DESCRIPTION", description)]
    criteria = [line.removeprefix("- [ ] ") for line in texts.get("Acceptance criteria", "").splitlines()]
    if criteria:
        items = "\n".join(f"- [ ] #{n} {text}" for n, text in enumerate(criteria, 1))
        out.append(f"## Acceptance Criteria\n<!-- AC:BEGIN -->\n{items}\n<!-- AC:END -->\n")
    if texts.get("Plan"):
        out.append(_marked("Implementation Plan", "PLAN", texts["Plan"]))
    notes = "\n\n".join(texts[k] for k in ("Implementation progress", "Review feedback") if texts.get(k))
    if notes:
        out.append(_marked("Implementation Notes", "NOTES", notes))
    return out


def _marked(heading: str, marker: str, text: str) -> str:
    return f"## {heading}\n\n<!-- SECTION:{marker}:BEGIN -->\n{text}\n<!-- SECTION:{marker}:END -->\n"


def listed(output: bytes) -> int:
    """How many tasks a ``backlog task list --plain`` output lists."""
    return len(LISTED.findall(output.decode("utf-8", "replace")))


@dataclass
class Listing:
    """Timed runs of ``backlog task list --plain`` in ``project``, where only a run that lists
    all ``count`` tasks is a sample (a run that lists fewer is kept in ``incomplete`` and the
    listing is run again, up to ``tries`` times in a row).

    Its output goes to a file: Backlog.md 1.52 loses chunks of its plain output when stdout
    is a pipe that its reader does not drain at once (seen on a loaded machine: 8,560 to
    9,988 of 10,000 task lines, exit 0, nothing on stderr; written to a file, every line).
    """

    command: str
    project: Path
    count: int
    tries: int = 3
    incomplete: list[dict[str, float]] = field(default_factory=list)

    def sample(self) -> float:
        """Milliseconds of one complete listing."""
        for _ in range(self.tries):
            output = self.project.parent / f"{self.project.name}.out"
            took, out = run_output([self.command, "task", "list", "--plain"], self.project, into=output)
            found = listed(out)
            if found == self.count:
                return took
            self.incomplete.append({"listed": found, "ms": round(took, 1)})
        raise Retake(
            f"backlog task list --plain listed fewer than {self.count} tasks {self.tries} times in a row"
        )
