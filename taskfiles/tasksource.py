"""Load every task file, from the working tree or from a git ref.

People read the working tree; the dispatcher reads a ref (the base branch) so
it acts on what has landed, not on someone's uncommitted edit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import git
from .config import Config
from .taskfile import Parsed, Problem, Schema, Task, parse

NOT_TASKS = frozenset({"README.md", "readme.md", "index.md"})


@dataclass(frozen=True)
class TaskSet:
    """Every usable task, and every problem found while reading them."""

    tasks: tuple[Task, ...]  # sorted by path
    problems: tuple[Problem, ...]
    skipped: tuple[str, ...]  # paths that produced no task
    ref: str | None = None  # None: the working tree
    commit: str | None = None

    @cached_property
    def by_slug(self) -> dict[str, Task]:
        return {task.slug: task for task in self.tasks}

    def get(self, slug: str) -> Task | None:
        return self.by_slug.get(slug)


def schema_of(config: Config) -> Schema:
    return Schema(config.priorities, config.default_priority)


def load(config: Config, ref: str | None = None) -> TaskSet:
    """Read all tasks from the working tree, or from ``ref`` when given."""
    if ref is not None:
        return _load_ref(config, ref)
    return _assemble(_scan_tree(config), config)


def _is_task_name(name: str) -> bool:
    return name.endswith(".md") and name not in NOT_TASKS and not name.startswith(("_", "."))


def _workstream(relative_to_tasks: str) -> str | None:
    folder = relative_to_tasks.rpartition("/")[0]
    return folder or None


def _scan_tree(config: Config) -> list[tuple[str, Parsed]]:
    tasks_dir = config.tasks_dir
    if not tasks_dir.is_dir():
        return []
    schema = schema_of(config)
    results = []
    for folder, dirs, files in os.walk(tasks_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not _is_task_name(name):
                continue
            path = Path(folder) / name
            rel = config.relpath(path)
            inner = path.relative_to(tasks_dir).as_posix()
            results.append((rel, _read_file(path, rel, _workstream(inner), config, schema)))
    return results


def _read_file(path: Path, rel: str, workstream: str | None, config: Config, schema: Schema) -> Parsed:
    problem = _refuse(path, rel, config)
    if problem is not None:
        return Parsed(None, (problem,))
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Parsed(None, (Problem(rel, 1, f"cannot read: {exc.strerror}", "unreadable"),))
    return parse(data, rel, workstream, schema)


def _refuse(path: Path, rel: str, config: Config) -> Problem | None:
    """Files that are not read at all: symlinks leaving tasks/, and huge files."""
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(config.tasks_dir) or not target.is_file():
            return Problem(rel, 1, f"symlink points outside {config.relpath(config.tasks_dir)}/ ({target}); not read", "symlink_outside")
    size = path.stat().st_size
    if size > config.max_file_bytes:
        return Problem(rel, 1, f"file is {size} bytes, over the {config.max_file_bytes}-byte limit (max_file_bytes); split it", "too_large")
    return None


def _load_ref(config: Config, ref: str) -> TaskSet:
    folder = config.relpath(config.tasks_dir)
    entries = [e for e in git.ls_tree(config.root, ref, folder) if _is_task_name(e.path.rsplit("/", 1)[-1])]
    schema = schema_of(config)
    blobs = git.read_blobs(config.root, [e.blob for e in entries if e.size <= config.max_file_bytes])
    results = []
    for entry in entries:
        inner = entry.path.removeprefix(folder + "/")
        if entry.mode == "120000":
            parsed = Parsed(None, (Problem(entry.path, 1, "symlink in git tree; not read at a ref", "symlink_outside"),))
        elif entry.size > config.max_file_bytes:
            parsed = Parsed(None, (Problem(entry.path, 1, f"file is {entry.size} bytes, over the {config.max_file_bytes}-byte limit (max_file_bytes); split it", "too_large"),))
        else:
            parsed = parse(blobs[entry.blob], entry.path, _workstream(inner), schema)
        results.append((entry.path, parsed))
    return _assemble(results, config, ref=ref)


def _assemble(results: list[tuple[str, Parsed]], config: Config, ref: str | None = None) -> TaskSet:
    results.sort(key=lambda item: item[0])
    tasks: list[Task] = []
    problems: list[Problem] = []
    skipped: list[str] = []
    first_path: dict[str, str] = {}
    for rel, parsed in results:
        problems.extend(parsed.problems)
        task = parsed.task
        if task is None:
            skipped.append(rel)
            continue
        if task.slug in first_path:
            message = f"duplicate slug {task.slug!r}, also {first_path[task.slug]}; rename one of the files"
            problems.append(Problem(rel, 1, message, "duplicate_slug"))
            skipped.append(rel)
            continue
        first_path[task.slug] = rel
        tasks.append(_canonical(task, config))
    return TaskSet(tuple(tasks), tuple(problems), tuple(skipped), ref)


def _canonical(task: Task, config: Config) -> Task:
    owner = config.canonical_owner(task.owner)
    if owner == task.owner:
        return task
    from dataclasses import replace

    return replace(task, owner=owner)
