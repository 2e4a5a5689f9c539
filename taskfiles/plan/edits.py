"""The durable edits: create a task file, mark it ready, record its completion.

These are the only writers of task files (with ``migrate``). Each one changes
only the lines it means to change and replaces the file atomically.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import portable
from ..config import Config
from ..errors import ConflictError, NotFoundError, UsageError
from ..slugs import candidates, slugify
from . import graph, slugspace
from .batch import Batch, edit_file, write_atomic
from .query import Filters, find, select
from .source import TaskSet, load
from .taskfile import Task, render_new
from .validate import _Suggester, pr_problem, title_line_problem, title_problem

_WORKSTREAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
ACTOR_ENV = "TASKFILES_ACTOR"
__all__ = [
    "Changes",
    "Edit",
    "Selection",
    "actor_name",
    "assign",
    "assignments",
    "complete",
    "mark_ready",
    "new_task",
    "plan_cancel",
    "select_tasks",
    "set_fields",
    "write_atomic",
]


@dataclass(frozen=True)
class Edit:
    """The outcome of a durable edit."""

    slug: str
    path: str
    changed: bool
    keys: tuple[str, ...]  # the frontmatter keys written


def actor_name() -> str:
    """Who is acting: $TASKFILES_ACTOR, else the login name."""
    return os.environ.get(ACTOR_ENV) or portable.user_name()


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
    elsewhere: Collection[str] = (),
) -> Path:
    """Write a new task file with a unique slug and the conventional sections.

    The slug is the title's, or the first of ``slugs.candidates`` free both in the working
    tree and in ``elsewhere`` (slugs other branches hold: ``slugspace.taken_on_refs``).

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
        "owner": config.owner_named(owner) if owner is not None else None,  # an alias, canonical
        "milestone": milestone,
        "depends_on": tuple(depends_on),
        "labels": tuple(labels),
    }
    taken = _existing_slugs(config) | set(elsewhere)
    return _create_unique(config, folder, slugify(title), render_new(fields), taken)


def _title(title: str) -> str:
    title = title.strip()
    if not title:
        raise UsageError("the title is empty; give the task a short title")
    too_long = title_problem(title)
    if too_long:
        raise UsageError(too_long)
    split = title_line_problem(title)
    if split:
        raise UsageError(split)
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


def _create_unique(config: Config, folder: Path, base: str, text: str, taken: set[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for slug in candidates(base):
        if slug in taken:
            continue
        path = folder / f"{slug}.md"
        try:
            # O_EXCL: two 'task new' runs with the same title never share a file.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | portable.FILE_FLAGS, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        return path
    raise ConflictError(f"no free slug for {base!r} in {config.relpath(folder)}")


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
    batch = Batch((edit_file(config, task, updates),))
    batch.write(config.root)
    edit = batch.edits[0]
    return Edit(task.slug, task.path, edit.changed, edit.keys)


# -- task set, assign and cancel: many tasks, all or nothing ------------------------------------

SETTABLE = ("priority", "owner", "milestone", "title")
REMOVABLE = frozenset({"owner", "milestone"})  # 'key=' removes these; the others must have a value


@dataclass(frozen=True)
class Selection:
    """Which tasks a command edits: the named slugs, or every task passing ``filters``
    (the same filters as ``task list``, ``query.select``)."""

    slugs: tuple[str, ...] = ()
    filters: Filters | None = None


@dataclass(frozen=True)
class Changes:
    """What ``task set`` changes on each selected task."""

    values: Mapping[str, str | None] = field(default_factory=dict)  # a SETTABLE key -> value; None removes
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    add_deps: tuple[str, ...] = ()
    remove_deps: tuple[str, ...] = ()


def assignments(pairs: Iterable[str]) -> dict[str, str | None]:
    """``key=value`` arguments as values for ``Changes``: ``key=`` is None (remove the key).

    UsageError for an argument without '=' and for a key given twice; which keys may be
    set, and to what, ``set_fields`` checks.
    """
    values: dict[str, str | None] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise UsageError(f"{pair!r} is not key=value; write e.g. priority=p1 (settable: {_settable()})")
        if key in values:
            raise UsageError(f"{key} is given twice ({key}={values[key] or ''} and {pair}); give it once")
        values[key] = value if value else None
    return values


def set_fields(config: Config, selection: Selection, changes: Changes, *, dry_run: bool = False) -> Batch:
    """Apply ``changes`` to every selected task, all or nothing; write unless ``dry_run``.

    Checked before any file is read for editing: the values (a configured priority, a
    configured owner or alias, written canonical; a title of 1..200 characters; no empty
    milestone or label), and the new dependencies: NotFoundError (with the closest slug)
    for an unknown one, UsageError for a task depending on itself, ConflictError naming the
    cycle for one that would close a dependency cycle. A label or dependency already there
    (or not there, to remove) changes nothing; a task left as it was is ``unchanged``.
    """
    values = _checked_values(config, changes.values)
    _check_lists(changes)
    tasks = load(config)
    targets = select_tasks(config, tasks, selection)
    _check_new_deps(tasks, targets, changes.add_deps)
    plans = {task.slug: _updates(task, values, changes) for task in targets}
    _check_cycles(tasks, plans)
    batch = Batch(tuple(edit_file(config, task, plans[task.slug]) for task in targets))
    if not dry_run:
        batch.write(config.root)
    return batch


def assign(config: Config, selection: Selection, owner: str, *, dry_run: bool = False) -> Batch:
    """Set the owner of every selected task (an alias is written as its canonical owner)."""
    return set_fields(config, selection, Changes({"owner": owner}), dry_run=dry_run)


def plan_cancel(config: Config, selection: Selection) -> Batch:
    """The edits (not written) that set ``status: cancelled`` on every selected task.

    ConflictError for a completed task: what was done stays done. An already cancelled
    task is unchanged. Whoever runs it also ends the task's runtime claim
    (``claims.cancel``), which is not the plan's business.
    """
    targets = select_tasks(config, load(config), selection)
    done = [task for task in targets if task.status == "completed"]
    if done:
        more = f" (and {len(done) - 1} more)" if len(done) > 1 else ""
        raise ConflictError(
            f"{done[0].path}: task is completed{more}; a completed task cannot be cancelled "
            "(leave it out, e.g. select with --status not_started --status ready)"
        )
    return Batch(tuple(edit_file(config, task, _cancel_updates(task)) for task in targets))


def _cancel_updates(task: Task) -> dict[str, object]:
    if task.status == "cancelled" and not task.legacy.get("status"):
        return {}
    return {"status": "cancelled"}


def select_tasks(config: Config, tasks: TaskSet, selection: Selection) -> list[Task]:
    """The tasks ``selection`` names, in the order given (slugs) or path order (filters).

    UsageError when it names none or both ways; NotFoundError for an unknown slug.
    """
    if selection.slugs and selection.filters is not None:
        raise UsageError("give task slugs or a selection (--milestone, --status, ...), not both")
    if selection.slugs:
        return [find(tasks, slug) for slug in dict.fromkeys(selection.slugs)]
    if selection.filters is not None:
        return select(tasks.tasks, selection.filters, config)
    raise UsageError(
        "name the tasks to edit: give their slugs, or select them with "
        "--milestone, --status, --owner, --label or --workstream"
    )


def _settable() -> str:
    return ", ".join(SETTABLE)


def _checked_values(config: Config, values: Mapping[str, str | None]) -> dict[str, str | None]:
    """The values to write: each key settable, each value allowed (owners canonical)."""
    checked: dict[str, str | None] = {}
    for key, value in values.items():
        if key not in SETTABLE:
            raise UsageError(
                f"cannot set {key!r}; the keys 'task set' sets are {_settable()} (labels and "
                "dependencies: --add-label, --remove-label, --add-dep, --remove-dep; status: "
                "'task ready', 'task complete', 'task cancel')"
            )
        if value is None and key not in REMOVABLE:
            raise UsageError(f"{key}= is empty; give {key} a value (only owner= and milestone= remove a key)")
        checked[key] = None if value is None else _checked_value(config, key, value)
    return checked


def _checked_value(config: Config, key: str, value: str) -> str:
    if key == "priority":
        _check_fields(config, value, None, ())
        return value
    if key == "owner":
        return config.owner_named(value)
    if key == "title":
        return _title(value)
    _check_names(value, ())
    return value


def _check_lists(changes: Changes) -> None:
    for option, added, removed in (
        ("label", changes.add_labels, changes.remove_labels),
        ("dep", changes.add_deps, changes.remove_deps),
    ):
        for item in (*added, *removed):
            if not item.strip():
                raise UsageError(f"--add-{option}/--remove-{option} {item!r} is empty; name one")
        both = sorted(set(added) & set(removed))
        if both:
            raise UsageError(f"{both[0]!r} is given to both --add-{option} and --remove-{option}; pick one")
    lists = (changes.add_labels, changes.remove_labels, changes.add_deps, changes.remove_deps)
    if not changes.values and not any(lists):
        raise UsageError(
            f"nothing to set; give key=value ({_settable()}) or --add-label, --remove-label, "
            "--add-dep, --remove-dep"
        )


def _check_new_deps(tasks: TaskSet, targets: Sequence[Task], add_deps: Sequence[str]) -> None:
    for dep in add_deps:
        if dep in tasks.by_slug:
            continue
        if any(path.rsplit("/", 1)[-1] == f"{dep}.md" for path in tasks.skipped):
            find(tasks, dep)  # says which file cannot be read
        close = _Suggester(tasks.by_slug).closest(dep)
        hint = f"did you mean '{close}'?" if close else "'task list' shows the slugs"
        raise NotFoundError(f"--add-dep {dep!r} is not a task; {hint}")
    for task in targets:
        if task.slug in add_deps:
            raise UsageError(f"--add-dep {task.slug!r}: a task cannot depend on itself ({task.path})")


def _updates(task: Task, values: Mapping[str, str | None], changes: Changes) -> dict[str, object]:
    """The keys whose value changes on ``task``: what is already so is not written again."""
    updates: dict[str, object] = {key: value for key, value in values.items() if getattr(task, key) != value}
    for key, added, removed in (
        ("labels", changes.add_labels, changes.remove_labels),
        ("depends_on", changes.add_deps, changes.remove_deps),
    ):
        old: tuple[str, ...] = getattr(task, key)
        new = tuple(item for item in old if item not in removed)
        new += tuple(item for item in dict.fromkeys(added) if item not in old)
        if new != old:
            updates[key] = new
    return updates


def _check_cycles(tasks: TaskSet, plans: Mapping[str, Mapping[str, object]]) -> None:
    """ConflictError when the new dependencies close a cycle that was not there before."""
    new_deps = {
        slug: deps for slug, plan in plans.items() if isinstance(deps := plan.get("depends_on"), tuple)
    }
    if not new_deps:
        return
    before = {frozenset(cycle.group) for cycle in graph.cycles(tasks.tasks)}
    after = [replace(task, depends_on=new_deps.get(task.slug, task.depends_on)) for task in tasks.tasks]
    for cycle in graph.cycles(after):
        if frozenset(cycle.group) in before:
            continue
        edited = next((slug for slug in cycle.path if slug in new_deps), cycle.path[0])
        raise ConflictError(
            f"the new dependencies would make a dependency cycle: {cycle.text(edited)}; "
            "a task cannot wait for a task that waits for it"
        )


@dataclass(frozen=True)
class NewTask:
    """What ``create`` wrote, and the slugs it passed over on the way."""

    path: Path
    passed_over: tuple[tuple[str, slugspace.Place], ...]  # (slug, where it is taken), in the order tried


def create(config: Config, title: str, **fields: Any) -> NewTask:
    """``new_task`` with a slug free on the base ref and every branch too (what ``task new``
    and MCP's create run).

    ``fields`` are ``new_task``'s keyword arguments. Each slug passed over is
    returned with the place that holds it, so the caller can say why the file is not
    named after the title.
    """
    taken = slugspace.taken_on_refs(config)
    path = new_task(config, title, elsewhere=taken, **fields)
    passed = []
    for slug in candidates(slugify(title)):
        if slug == path.stem:
            break
        passed.append((slug, taken.get(slug) or slugspace.in_tree(config, slug)))
    return NewTask(path, tuple(passed))
