"""The durable edits: create a task file, mark it ready, record its completion.

These are the only writers of task files (with ``migrate``). Each one changes
only the lines it means to change and replaces the file atomically.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import atomic
from ..config import Config
from ..errors import ConflictError, TaskFileError, UsageError
from ..slugs import slugify
from . import frontmatter
from .query import find
from .source import load
from .taskfile import Task, render_new
from .validate import pr_problem, title_problem

_WORKSTREAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ACTOR_ENV = "TASKFILES_ACTOR"


@dataclass(frozen=True)
class Edit:
    """The outcome of a durable edit."""

    slug: str
    path: str
    changed: bool
    keys: tuple[str, ...]  # the frontmatter keys written


def actor_name() -> str:
    """Who is acting: $TASKFILES_ACTOR, else the login name."""
    name = os.environ.get(ACTOR_ENV)
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def new_task(
    config: Config,
    title: str,
    *,
    workstream: str | None = None,
    priority: str | None = None,
    owner: str | None = None,
    milestone: str | None = None,
    depends_on: Sequence[str] = (),
    labels: Sequence[str] = (),
    ready: bool = False,
) -> Path:
    """Write a new task file with a unique slug and the conventional sections.

    UsageError, before anything is written, for an empty or too long title, an empty
    owner, milestone or label, a workstream that is not one folder name, and values the
    configuration does not know (priority, owner, dependency).
    """
    title = _title(title)
    folder = _task_folder(config, workstream)
    _check_fields(config, priority, owner, depends_on)
    _check_names(milestone, labels)
    fields = {
        "title": title,
        "status": "ready" if ready else "not_started",
        "priority": priority or config.default_priority,
        "owner": owner,
        "milestone": milestone,
        "depends_on": tuple(depends_on),
        "labels": tuple(labels),
    }
    return _create_unique(folder, slugify(title), render_new(fields), _existing_slugs(config))


def _title(title: str) -> str:
    title = title.strip()
    if not title:
        raise UsageError("the title is empty; give the task a short title")
    too_long = title_problem(title)
    if too_long:
        raise UsageError(too_long)
    return title


def _task_folder(config: Config, workstream: str | None) -> Path:
    if workstream is None:
        return config.tasks_dir
    if not _WORKSTREAM.fullmatch(workstream):
        raise UsageError(
            f"workstream {workstream!r} is not a folder name; use one name of letters, digits, "
            "'.', '_', '-' (no '/'), e.g. --workstream api"
        )
    return config.tasks_dir / workstream


def _check_fields(config: Config, priority: str | None, owner: str | None, depends_on: Iterable[str]) -> None:
    if priority is not None and priority not in config.priorities:
        raise UsageError(f"priority {priority!r} is not one of {', '.join(config.priorities)}")
    if owner is not None:
        config.owner_named(owner)
    known = _existing_slugs(config)
    for slug in depends_on:
        if slug not in known:
            raise UsageError(f"--depends-on {slug!r} is not a task; check 'task list' for the slug")


def _check_names(milestone: str | None, labels: Iterable[str]) -> None:
    if milestone is not None and not milestone.strip():
        raise UsageError("the milestone is empty; name one, e.g. --milestone m2, or leave it out")
    for label in labels:
        if not label.strip():
            raise UsageError(f"--label {label!r} is empty; give each label a name, e.g. --label web")


def _existing_slugs(config: Config) -> set[str]:
    """Stems of every markdown file under tasks/, parseable or not."""
    if not config.tasks_dir.is_dir():
        return set()
    return {path.stem for path in config.tasks_dir.rglob("*.md")}


def _create_unique(folder: Path, base: str, text: str, taken: set[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        slug = base if n == 1 else f"{base}-{n}"
        if slug in taken:
            continue
        path = folder / f"{slug}.md"
        try:
            # O_EXCL: two 'task new' runs with the same title never share a file.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        return path
    raise ConflictError(f"no free slug for {base!r} in {folder}")


def mark_ready(config: Config, slug: str) -> Edit:
    """Set ``status: ready`` (the queue intent) on a planned task."""
    task = find(load(config), slug)
    if task.done:
        raise ConflictError(f"{task.path}: task is {task.status}; create a new task instead of reopening it")
    if task.status == "ready" and not task.legacy.get("status"):
        return Edit(slug, task.path, False, ())
    return _edit(config, task, {"status": "ready"})


def complete(config: Config, slug: str, *, by: str | None = None, pr: str | None = None) -> Edit:
    """Record the completion: status, completed_by, completed_at and optionally pr.

    ``pr`` must be an http(s) URL, ``#123`` or ``org/repo#123`` (``validate.pr_problem``).
    """
    bad_pr = pr_problem(pr) if pr is not None else None
    if bad_pr:
        raise UsageError(bad_pr)
    task = find(load(config), slug)
    if task.status == "cancelled":
        raise ConflictError(f"{task.path}: task is cancelled; it cannot be completed")
    if task.status == "completed":
        # Completing twice must not rewrite the record (a needless diff that merges badly):
        # only what the caller adds or changes is written.
        again = {"completed_by": by, "pr": pr}
        return _edit(config, task, {k: v for k, v in again.items() if v and v != getattr(task, k)})
    updates: dict[str, object] = {
        "status": "completed",
        "completed_by": by or actor_name(),
        "completed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if pr:
        updates["pr"] = pr
    return _edit(config, task, updates)


def _edit(config: Config, task: Task, updates: Mapping[str, object]) -> Edit:
    path = config.root / task.path
    data = path.read_bytes()
    text = data.decode("utf-8")
    try:
        new = frontmatter.set_keys(text, updates)
    except TaskFileError as error:
        raise TaskFileError(f"{task.path}: {error}") from error
    if new == text:
        return Edit(task.slug, task.path, False, ())
    write_atomic(path, new.encode("utf-8"))
    return Edit(task.slug, task.path, True, tuple(updates))


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a task file in one step (see ``atomic.atomic_write``), keeping its permission bits."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    atomic.atomic_write(path, data, mode=mode)
