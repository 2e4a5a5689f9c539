"""What a pull request changes in the plan: the task files at two points, compared.

``compare`` reads the base side at the merge base (as ``git diff A...B`` does: a pull
request is judged against where it branched, not against what landed since) and the
head side at a commit or in the working tree, each in one batched read of its tree
(``plan.source``). It pairs tasks by slug, then renames, and says what merging does to
the queue by applying THE readiness rule (``state.dispatchable``) and the cycle finder
(``plan.graph.cycles``) to each side. The registry is not read: this is the plan's queue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import git
from .config import Config
from .errors import NotFoundError, UsageError
from .plan import cache, graph, source
from .plan.source import TaskSet
from .plan.taskfile import Problem, Task
from .state import Classification, Inputs, classify, dispatchable

# One-value keys compared on every pair; unknown keys (``Task.extra``) are compared too.
VALUE_KEYS = (
    "title",
    "status",
    "priority",
    "owner",
    "milestone",
    "agent",
    "budget_usd",
    "completed_by",
    "completed_at",
    "pr",
    "path",
)
LIST_KEYS = ("depends_on", "labels")
STATUS_EVENTS = {"ready": "readied", "completed": "completed", "cancelled": "cancelled"}
KEY_EVENTS = {
    "title": "retitled",
    "priority": "reprioritised",
    "owner": "reassigned",
    "depends_on": "dependencies_changed",
    "milestone": "milestone_changed",
    "labels": "labels_changed",
}
COMPLETION_KEYS = frozenset({"completed_by", "completed_at", "pr"})  # part of a status change
# What an edited task's ``events`` may hold, in the order they are listed.
EVENTS = (
    "renamed",
    "moved",
    "readied",
    "completed",
    "cancelled",
    "status_changed",
    *KEY_EVENTS.values(),
    "body_edited",
    "other_keys",
)


@dataclass(frozen=True)
class Range:
    """The two sides compared: the merge base of ``base_ref`` and the head, and the head."""

    base_ref: str  # as given, e.g. "main" or "origin/main"
    base_tip: str  # the commit base_ref names
    base: str  # the commit read: the merge base
    head_ref: str | None  # None: the working tree
    head: str  # the commit read, or the working tree's HEAD commit

    def to_dict(self) -> dict[str, Any]:
        """JSON form: base {ref, commit}, head {ref, commit} (both null for the working tree)."""
        tree = self.head_ref is None
        return {
            "base": {"ref": self.base_ref, "commit": self.base},
            "head": {"ref": self.head_ref, "commit": None if tree else self.head},
        }


@dataclass(frozen=True)
class Edited:
    """A task on both sides (by slug, or renamed) whose file says something different."""

    before: Task
    after: Task
    renamed_by: str | None  # "body" or "title": what paired the two slugs; None: one slug
    values: Mapping[str, tuple[Any, Any]]  # key -> (before, after), for one-value keys
    added: Mapping[str, tuple[str, ...]]  # list key -> items added
    removed: Mapping[str, tuple[str, ...]]  # list key -> items removed
    body_edited: bool

    @property
    def events(self) -> tuple[str, ...]:
        """What happened to the task, in ``EVENTS`` order: readied, reprioritised, ..."""
        found = {"renamed" if self.renamed_by else "moved"} if "path" in self.values else set()
        if "status" in self.values:
            found.add(STATUS_EVENTS.get(self.values["status"][1], "status_changed"))
        found.update(event for key, event in KEY_EVENTS.items() if key in self.values or self._lists(key))
        if self.body_edited:
            found.add("body_edited")
        if self.other_keys:
            found.add("other_keys")
        return tuple(event for event in EVENTS if event in found)

    @property
    def other_keys(self) -> tuple[str, ...]:
        """Changed keys no event names (agent, budget_usd, unknown keys, a completion
        record edited without a status change)."""
        named = {*KEY_EVENTS, "status", "path", *(COMPLETION_KEYS if "status" in self.values else ())}
        return tuple(key for key in self.values if key not in named)

    def _lists(self, key: str) -> bool:
        return key in self.added or key in self.removed

    def to_dict(self) -> dict[str, Any]:
        """JSON form; the keys are documented in the README."""
        before = self.before
        renamed = {"slug": before.slug, "path": before.path, "by": self.renamed_by}
        return {
            **brief(self.after),
            "renamed_from": renamed if self.renamed_by else None,
            "events": list(self.events),
            "changes": {key: {"from": old, "to": new} for key, (old, new) in self.values.items()},
            "added": {key: list(items) for key, items in self.added.items()},
            "removed": {key: list(items) for key, items in self.removed.items()},
            "body_edited": self.body_edited,
        }


@dataclass(frozen=True)
class Left:
    """A task dispatchable at the base that is not at the head, and why (not blocked: that is
    ``Queue.blocked``): removed, unreadable, completed, cancelled, not_started, legacy_in_progress."""

    task: Task  # as it was at the base
    reason: str


@dataclass(frozen=True)
class Queue:
    """What merging does to the plan's queue."""

    dispatchable: tuple[Task, ...]  # dispatchable at the head, not at the base
    blocked: tuple[Classification, ...]  # waiting for dependencies at the head, not at the base
    left: tuple[Left, ...]
    new_cycles: tuple[graph.Cycle, ...]  # at the head, not at the base (a grown cycle is new)
    resolved_cycles: tuple[graph.Cycle, ...]  # at the base (base slugs), gone at the head

    def to_dict(self) -> dict[str, Any]:
        """JSON form: became_dispatchable, became_blocked, left_queue, new_cycles, resolved_cycles."""
        return {
            "became_dispatchable": [brief(task) for task in self.dispatchable],
            "became_blocked": [
                {**brief(c.task), "blocked_by": list(c.blocked_by)} for c in self.blocked if c.task
            ],
            "left_queue": [{**brief(left.task), "reason": left.reason} for left in self.left],
            "new_cycles": [list(cycle.path) for cycle in self.new_cycles],
            "resolved_cycles": [list(cycle.path) for cycle in self.resolved_cycles],
        }


@dataclass(frozen=True)
class Changes:
    """Everything ``task changes`` reports."""

    sides: Range
    added: tuple[Task, ...]
    removed: tuple[Task, ...]
    edited: tuple[Edited, ...]  # renamed tasks too, each with ``renamed_by``
    queue: Queue
    problems: tuple[tuple[str, Problem], ...]  # ("head", an error) or ("base", one the head fixed)

    @property
    def empty(self) -> bool:
        """No task was added, removed or edited and no file has a problem."""
        return not (self.added or self.removed or self.edited or self.problems)

    def counts(self) -> dict[str, int]:
        """Tasks per kind of change and per event, what the queue gains and loses, problems."""
        events = Counter(event for edit in self.edited for event in edit.events)
        queue = self.queue
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "edited": len(self.edited),
            **{event: events[event] for event in EVENTS},
            "became_dispatchable": len(queue.dispatchable),
            "became_blocked": len(queue.blocked),
            "left_queue": len(queue.left),
            "new_cycles": len(queue.new_cycles),
            "resolved_cycles": len(queue.resolved_cycles),
            "problems": len(self.problems),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON form; the keys are documented in the README."""
        return {
            **self.sides.to_dict(),
            "counts": self.counts(),
            "added": [brief(task) for task in self.added],
            "removed": [brief(task) for task in self.removed],
            "edited": [edit.to_dict() for edit in self.edited],
            "queue": self.queue.to_dict(),
            "problems": [{"side": side, **problem.to_dict()} for side, problem in self.problems],
        }


def brief(task: Task) -> dict[str, Any]:
    """A task as the lists of ``task changes --json`` show it."""
    return {
        "slug": task.slug,
        "title": task.title,
        "path": task.path,
        "status": task.status,
        "priority": task.priority,
        "owner": task.owner,
    }


def compare(config: Config, spec: str | None = None) -> Changes:
    """What the plan changes over ``spec`` (see ``resolve``), both sides read without a checkout."""
    sides = resolve(config, spec)
    with cache.gc_paused():  # two task sets of long-lived objects: nothing here is garbage
        # Read by name when the merge base is the base ref's tip: the ref cache is then
        # shared with every other reader of that ref (the dispatcher reads the base ref too).
        base = source.load(config, sides.base_ref if sides.base == sides.base_tip else sides.base)
        head = source.load(config, sides.head_ref)
        return diff(base, head, sides)


def resolve(config: Config, spec: str | None) -> Range:
    """The sides ``spec`` names. None or ``BASE``: the working tree against BASE (default: the
    configured base ref); ``BASE..HEAD`` or ``BASE...HEAD``: commit HEAD against BASE. Either
    way BASE is read at its merge base with the head; an empty side is HEAD, as in git.

    UsageError for a malformed range, a ref that names no commit, or two unrelated histories.
    """
    if config.repo is None:
        raise UsageError(
            f"{config.root.as_posix()} is not in a git repository; task changes compares git commits"
        )
    base_ref, head_ref = _split(spec, config.base_ref)
    base_tip = _commit(config, base_ref, configured=spec is None)
    head = _commit(config, head_ref or "HEAD")
    merge_base = git.merge_base(config.root, base_tip, head)
    if merge_base is None:
        shallow = " (this clone is shallow: fetch more history, e.g. git fetch --unshallow)"
        hint = shallow if git.shallow_commits(config.repo) else ""
        raise UsageError(f"{base_ref} and {head_ref or 'HEAD'} share no commit{hint}; compare related refs")
    return Range(base_ref, base_tip, merge_base, head_ref, head)


def _split(spec: str | None, default: str) -> tuple[str, str | None]:
    if spec is None:
        return default, None
    if "..." in spec:
        base, _, head = spec.partition("...")
    elif ".." in spec:
        base, _, head = spec.partition("..")
    else:
        base, head = spec, None
    if not base and head is None:
        raise UsageError("the range is empty; give BASE, BASE..HEAD or BASE...HEAD (e.g. main..my-branch)")
    if head is not None and (".." in head or head.startswith(".")):
        raise UsageError(f"{spec!r} is not a range; give BASE..HEAD (e.g. main..my-branch)")
    return base or "HEAD", None if head is None else head or "HEAD"


def _commit(config: Config, ref: str, *, configured: bool = False) -> str:
    """The commit ``ref`` names, or UsageError: a bad range is a usage error, exit 2."""
    if ref.startswith("-"):
        raise UsageError(f"{ref!r} is not a git ref (a ref does not start with '-')")
    try:
        return git.resolve_commit(config.root, ref)
    except NotFoundError:
        where = " (the configured base_ref)" if configured else ""
        raise UsageError(
            f"git ref {ref!r}{where} names no commit; check 'git branch -a', run 'git fetch', "
            "or give the range as BASE..HEAD (e.g. origin/main..HEAD)"
        ) from None


def diff(base: TaskSet, head: TaskSet, sides: Range) -> Changes:
    """``head`` compared with ``base``: pure, given the two task sets."""
    unreadable = graph.unreadable(base), graph.unreadable(head)
    gone = [t for t in base.tasks if t.slug not in head.by_slug and t.slug not in unreadable[1]]
    new = [t for t in head.tasks if t.slug not in base.by_slug and t.slug not in unreadable[0]]
    renames = _renames(base, head, gone, new)
    renamed = {before.slug: after.slug for before, after, _ in renames}
    pairs = [(base.by_slug[t.slug], t, None) for t in head.tasks if t.slug in base.by_slug]
    edited = [_edited(b, a, by, renamed) for b, a, by in (*pairs, *renames)]
    changes = tuple(sorted((edit for edit in edited if edit is not None), key=_head_path))
    # Every other task is equal on both sides, and so are its dependencies: its place in
    # the queue and on cycles cannot differ, so only these are classified and searched.
    changed = set(base.by_slug).symmetric_difference(head.by_slug)
    changed.update(slug for edit in changes for slug in (edit.before.slug, edit.after.slug))
    return Changes(
        sides,
        tuple(t for t in new if t.slug not in renamed.values()),
        tuple(t for t in gone if t.slug not in renamed),
        changes,
        _queue(base, head, renamed, unreadable[1], changed),
        _problems(base, head),
    )


def _head_path(edit: Edited) -> str:
    return edit.after.path


def _renames(
    base: TaskSet, head: TaskSet, gone: list[Task], new: list[Task]
) -> list[tuple[Task, Task, str | None]]:
    """Pairs of a gone and a new task that are one task renamed: the same body, when it says
    something (a line besides headings, so ``task new``'s empty sections never pair) and no
    other task on either side has it; else the same title, when no other gone or new task has it."""
    if not gone or not new:
        return []
    both = {task.body for task in gone} & {task.body for task in new}
    lengths = {len(text) for text in both}  # so that only bodies that may match are hashed
    shared = Counter(t.body for t in (*base.tasks, *head.tasks) if len(t.body) in lengths and t.body in both)

    def body(task: Task) -> str | None:
        return task.body if shared[task.body] == 2 and _says_something(task.body) else None

    by_body = _matched(gone, new, body, "body")
    paired = {task.slug for pair in by_body for task in pair[:2]}
    rest_gone = [task for task in gone if task.slug not in paired]
    rest_new = [task for task in new if task.slug not in paired]
    return by_body + _matched(rest_gone, rest_new, lambda task: task.title, "title")


def _says_something(body: str) -> bool:
    """Whether a line of ``body`` is more than blank or a heading."""
    return any(line.strip() and not line.lstrip().startswith("#") for line in body.splitlines())


def _matched(
    gone: list[Task], new: list[Task], key: Callable[[Task], str | None], by: str
) -> list[tuple[Task, Task, str | None]]:
    before, after = _unique(gone, key), _unique(new, key)
    return [(before[k], task, by) for k, task in after.items() if k in before]


def _unique(tasks: Iterable[Task], key: Callable[[Task], str | None]) -> dict[str, Task]:
    """key -> task, for the keys exactly one task has."""
    found: dict[str, Task] = {}
    seen: Counter[str] = Counter()
    for task in tasks:
        value = key(task)
        if value is not None:
            seen[value] += 1
            found[value] = task
    return {value: task for value, task in found.items() if seen[value] == 1}


def _edited(before: Task, after: Task, by: str | None, renamed: Mapping[str, str]) -> Edited | None:
    """How ``after`` differs from ``before``; None when it does not (and is not renamed)."""
    if by is None and vars(before) == vars(after):  # the common case, in one comparison
        return None
    old, new = _values(before), _values(after)
    values = {key: (old.get(key), new.get(key)) for key in {**old, **new} if old.get(key) != new.get(key)}
    added: dict[str, tuple[str, ...]] = {}
    removed: dict[str, tuple[str, ...]] = {}
    for key in LIST_KEYS:
        names = renamed if key == "depends_on" else {}
        more, fewer = _list_change(getattr(before, key), getattr(after, key), names)
        if more:
            added[key] = more
        if fewer:
            removed[key] = fewer
    body_edited = before.body != after.body
    if not (values or added or removed or body_edited or by):
        return None
    return Edited(before, after, by, values, added, removed, body_edited)


def _values(task: Task) -> dict[str, Any]:
    """Every one-value key: the durable ones, runtime keys an older tool left, unknown keys."""
    return {
        **{key: getattr(task, key) for key in VALUE_KEYS},
        "legacy_runtime": dict(task.legacy),
        **task.extra,
    }


def _list_change(
    before: Iterable[str], after: Iterable[str], renamed: Mapping[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(added, removed): a dependency that follows its task's rename is neither."""
    old, new = dict.fromkeys(before), dict.fromkeys(after)
    was = {after_slug: before_slug for before_slug, after_slug in renamed.items()}
    added = tuple(item for item in new if item not in old and was.get(item) not in old)
    removed = tuple(item for item in old if item not in new and renamed.get(item) not in new)
    return added, removed


def _queue(
    base: TaskSet, head: TaskSet, renamed: Mapping[str, str], unreadable: Mapping[str, str], changed: set[str]
) -> Queue:
    """The readiness rule and the cycle finder on each side, their results compared."""
    before, after = _classified(base, changed), _classified(head, changed)
    head_slug = {**{slug: slug for slug in before}, **renamed}
    base_slug = {new: old for old, new in head_slug.items()}

    def at_base(c: Classification) -> Classification | None:
        return before.get(base_slug.get(c.slug, c.slug))

    became = [c for c in after.values() if dispatchable(c) and not _holds(at_base(c), dispatchable)]
    blocked = [c for c in after.values() if c.blocked_by and not _holds(at_base(c), _waits)]
    left = []
    for c in before.values():
        now = after.get(head_slug[c.slug])
        if dispatchable(c) and c.task and not (now and (dispatchable(now) or now.blocked_by)):
            reason = now.state if now else "unreadable" if head_slug[c.slug] in unreadable else "removed"
            left.append(Left(c.task, reason))
    base_cycles, head_cycles = _cycles_through(base, changed), _cycles_through(head, changed)
    groups_before = {frozenset(head_slug.get(slug, slug) for slug in c.group) for c in base_cycles}
    groups_after = {frozenset(c.group) for c in head_cycles}
    new = tuple(c for c in head_cycles if frozenset(c.group) not in groups_before)
    gone = tuple(
        c for c in base_cycles if frozenset(head_slug.get(s, s) for s in c.group) not in groups_after
    )
    return Queue(tuple(c.task for c in became if c.task), tuple(blocked), tuple(left), new, gone)


def _classified(tasks: TaskSet, changed: set[str]) -> dict[str, Classification]:
    """What the plan alone (no registry entry) says of each changed task and each task that
    depends on one."""
    inputs = Inputs(now=datetime.now(UTC))
    return {
        task.slug: classify(task, None, tasks, inputs)
        for task in tasks.tasks
        if task.slug in changed or not changed.isdisjoint(task.depends_on)
    }


def _holds(c: Classification | None, test: Callable[[Classification], bool]) -> bool:
    return c is not None and test(c)


def _waits(c: Classification) -> bool:
    return bool(c.blocked_by)


def _cycles_through(tasks: TaskSet, changed: set[str]) -> list[graph.Cycle]:
    """The cycles with a changed task on them: the cycle finder run on what the changed tasks
    reach through their dependencies (a cycle through a task lies within what it reaches)."""
    reached: set[str] = set()
    todo = [slug for slug in changed if slug in tasks.by_slug]
    while todo:
        slug = todo.pop()
        if slug not in reached:
            reached.add(slug)
            todo.extend(dep for dep in tasks.by_slug[slug].depends_on if dep in tasks.by_slug)
    found = graph.cycles(sorted((tasks.by_slug[slug] for slug in reached), key=lambda task: task.path))
    return [cycle for cycle in found if not changed.isdisjoint(cycle.group)]


def _problems(base: TaskSet, head: TaskSet) -> tuple[tuple[str, Problem], ...]:
    """Every error reading a file at the head, then each one at the base the head no longer has
    (a file the change fixed): one still there at the head is not said twice."""
    at_head = [problem for problem in head.problems if problem.severity == "error"]
    still = {(problem.path, problem.code, problem.message) for problem in at_head}
    fixed = [
        problem
        for problem in base.problems
        if problem.severity == "error" and (problem.path, problem.code, problem.message) not in still
    ]
    return (*(("head", problem) for problem in at_head), *(("base", problem) for problem in fixed))
