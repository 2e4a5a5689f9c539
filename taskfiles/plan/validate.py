"""``task validate``: every problem in the task files, per file and across files.

Per-file problems come from the parser (already in ``TaskSet.problems``); this
module adds the checks that need the whole task set: dependencies on unknown or
unreadable tasks, self-dependencies, dependency cycles and owners outside the
configured list. It also holds the value rules that ``task new`` and ``task
complete`` enforce before writing (``title_problem``, ``pr_problem``), so a file
those commands refuse to write is one that validation reports.
"""

from __future__ import annotations

import bisect
import difflib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from ..config import Config
from . import graph
from .source import TaskSet
from .taskfile import Problem, Task

_SEVERITY_ORDER = {"error": 0, "warning": 1}
_GROUP_NAMES_SHOWN = 5
_SUGGEST_ALL_BELOW = 200

MAX_TITLE_LENGTH = 200  # characters: a title is one line in lists, prompts and the status page
_PR_REFERENCE = re.compile(r"(?:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)?#[0-9]+")
# What splits a title over lines: control characters (C0, DEL, C1) and Unicode's line and
# paragraph separators.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def title_problem(title: str) -> str | None:
    """Why ``title`` is too long for a task, or None."""
    if len(title) <= MAX_TITLE_LENGTH:
        return None
    return (
        f"title is {len(title)} characters, over the limit of {MAX_TITLE_LENGTH}; "
        "shorten it and put the detail in the body"
    )


def title_line_problem(title: str) -> str | None:
    """Why ``title`` is not one line (a line break or control character would split it over
    lines of ``task list``), or None."""
    if not _NOT_ONE_LINE.search(title):
        return None
    return (
        f"the title {title!r} has a line break or control character; a title is one line "
        "(put the detail in the body)"
    )


def pr_problem(pr: str) -> str | None:
    """Why ``pr`` is not a pull request reference, or None.

    Accepted: an http(s) URL, ``#123`` or ``org/repo#123``. Anything else (``javascript:``
    URLs, plain words) is refused: readers of the completion record follow it as a link.
    """
    if _PR_REFERENCE.fullmatch(pr) or _is_web_url(pr):
        return None
    return (
        f"pr {pr!r} is not a pull request; use its http(s) URL "
        "(e.g. https://github.com/org/repo/pull/12), '#12' or 'org/repo#12'"
    )


def validate(
    config: Config,
    taskset: TaskSet,
    paths: Iterable[str | os.PathLike[str]] | None = None,
    *,
    base: str | None = None,
) -> list[Problem]:
    """Every problem in ``taskset``, sorted by path, then line.

    ``paths`` (as pre-commit passes changed files: relative to the repository root,
    or absolute) limits the report to those files; they are still checked against
    the whole task set.

    A dependency cycle is reported on the depends_on line of every task on it, the
    cycle written from that task ("dependency cycle: b -> c -> a -> b"), so each
    file's report stands alone. Tasks in the same strongly connected group that are
    not on the reported cycle get a "part of a dependency cycle" problem.

    With ``base`` (a git ref that the work will merge into), a file whose slug ``base`` got
    at another path since they forked is a ``slug_collision`` (``slugspace.collisions``);
    a ``base`` that names nothing is skipped.
    """
    wanted = None if paths is None else {_relative(config, path) for path in paths}
    problems = [p for p in taskset.problems if wanted is None or p.path in wanted]
    problems.extend(_cross_file(config, taskset, wanted))
    if base is not None:
        from .slugspace import collisions  # reads git: only for callers that name a base

        problems.extend(collisions(config, taskset, base, wanted))
    return sorted(problems, key=_order)


def has_errors(problems: Iterable[Problem]) -> bool:
    """True when any problem is an error (warnings alone do not fail validation)."""
    return any(problem.severity == "error" for problem in problems)


def _relative(config: Config, path: str | os.PathLike[str]) -> str:
    given = Path(path)
    if given.is_absolute():
        return config.relpath(given)
    return given.as_posix()


def _order(problem: Problem) -> tuple[str, int, int, str, str]:
    severity = _SEVERITY_ORDER.get(problem.severity, 2)
    return (problem.path, problem.line, severity, problem.code, problem.message)


@dataclass(frozen=True)
class _Context:
    """What the cross-file checks look things up in."""

    taskset: TaskSet
    unreadable: dict[str, str]  # slug -> path of a skipped file
    owners: tuple[str, ...]
    config: Config

    @cached_property
    def suggester(self) -> _Suggester:
        """Built on the first unknown slug only: most task sets never need it."""
        return _Suggester(self.taskset.by_slug)


class _Suggester:
    """The existing slug closest to a misspelled one.

    difflib over 10,000 similar slugs takes ~0.1 s per lookup, so large sets only
    offer the slugs next to the word in sorted order, and in sorted order of the
    reversed slugs: a typo late in a slug keeps its prefix, one early keeps its
    suffix.
    """

    def __init__(self, slugs: Iterable[str]) -> None:
        self.slugs = sorted(slugs)
        self.reversed = sorted(slug[::-1] for slug in self.slugs)

    def closest(self, word: str) -> str | None:
        """The best match by difflib's ratio (at least 0.6), or None."""
        if len(self.slugs) <= _SUGGEST_ALL_BELOW:
            pool = self.slugs
        else:
            backward = [slug[::-1] for slug in _around(self.reversed, word[::-1])]
            pool = list(dict.fromkeys(_around(self.slugs, word) + backward))
        close = difflib.get_close_matches(word, pool, n=1)
        return close[0] if close else None


def _around(ordered: list[str], word: str, width: int = 8) -> list[str]:
    at = bisect.bisect_left(ordered, word)
    return ordered[max(0, at - width) : at + width]


def _cross_file(config: Config, taskset: TaskSet, wanted: set[str] | None) -> Iterator[Problem]:
    context = _Context(taskset, graph.unreadable(taskset), config.owners, config)
    for task in taskset.tasks:
        if wanted is None or task.path in wanted:
            yield from _value_problems(task)
            yield from _dependency_problems(task, context)
            yield from _owner_problems(task, context)
            yield from _agent_problems(task, config)
    yield from _cycle_problems(taskset, wanted)


def _value_problems(task: Task) -> Iterator[Problem]:
    """The rules ``task new`` and ``task complete`` enforce, for files written by hand."""
    too_long = title_problem(task.title)
    if too_long:
        yield Problem(task.path, task.lines.get("title", 1), too_long, "title_too_long")
    split = title_line_problem(task.title)
    if split:
        yield Problem(task.path, task.lines.get("title", 1), split, "title_not_one_line")
    bad_pr = pr_problem(task.pr) if task.pr is not None else None
    if bad_pr:
        yield Problem(task.path, task.lines.get("pr", 1), bad_pr, "bad_pr")


def _is_web_url(text: str) -> bool:
    if any(char.isspace() or not char.isprintable() for char in text):
        return False
    try:
        parts = urlsplit(text)
        return parts.scheme in ("http", "https") and bool(parts.hostname)  # the scheme comes lowercased
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False


def _dependency_problems(task: Task, context: _Context) -> Iterator[Problem]:
    line = task.lines.get("depends_on", 1)
    seen: set[str] = set()
    for dep in task.depends_on:
        if dep in seen:
            message = f"depends_on lists '{dep}' twice; remove one of them"
            yield Problem(task.path, line, message, "duplicate_dependency", "warning")
            continue
        seen.add(dep)
        problem = _dependency_problem(task, dep, context)
        if problem is not None:
            yield Problem(task.path, line, *problem)


def _dependency_problem(task: Task, dep: str, context: _Context) -> tuple[str, str, str] | None:
    """(message, code, severity) for one dependency, or None when it is fine."""
    if dep == task.slug:
        return f"task depends on itself; remove '{dep}' from depends_on", "self_dependency", "error"
    target = context.taskset.get(dep)
    if target is not None:
        if target.status == "cancelled" and not task.done:
            message = (
                f"depends on '{dep}', which is cancelled, so this task would wait forever; "
                "remove the dependency"
            )
            return message, "cancelled_dependency", "warning"
        return None
    path = context.unreadable.get(dep)
    if path is not None:
        message = f"depends on {dep!r}, but {path} has problems and was skipped; fix that file first"
        return message, "unreadable_dependency", "error"
    return _unknown_dependency(dep, context), "unknown_dependency", "error"


def _unknown_dependency(dep: str, context: _Context) -> str:
    close = context.suggester.closest(dep)
    hint = f"did you mean '{close}'?" if close else "check the slug or remove it from depends_on"
    return f"depends on unknown task {dep!r}; {hint}"


def _owner_problems(task: Task, context: _Context) -> Iterator[Problem]:
    owners = context.owners
    owner = context.config.canonical_owner(task.owner)
    if not owners or owner is None or owner in owners:
        return
    close = context.config.closest_owner(owner)
    hint = f"did you mean '{close}'? " if close else ""
    message = (
        f"owner '{owner}' is not one of the configured owners ({', '.join(owners)}); "
        f"{hint}use one of them, or add '{owner.lower()}' to owner_aliases"
    )
    yield Problem(task.path, task.lines.get("owner", 1), message, "unknown_owner")


def _agent_problems(task: Task, config: Config) -> Iterator[Problem]:
    """A task naming an agent profile the configuration does not have: dispatch could not run it."""
    if task.agent is None:
        return
    from ..settings import DEFAULT_AGENT  # the settings sections: only for a task naming an agent

    if task.agent == DEFAULT_AGENT or task.agent in config.agents:
        return
    yield Problem(task.path, task.lines.get("agent", 1), config.unknown_agent(task.agent), "unknown_agent")


def _cycle_problems(taskset: TaskSet, wanted: set[str] | None) -> Iterator[Problem]:
    for cycle in graph.cycles(taskset.tasks):
        on_cycle = set(cycle.path)
        for slug in cycle.group:
            task = taskset.by_slug[slug]
            if wanted is not None and task.path not in wanted:
                continue
            line = task.lines.get("depends_on", 1)
            if slug in on_cycle:
                message = f"dependency cycle: {cycle.text(slug)}; remove one of these dependencies"
            else:
                message = _group_message(slug, cycle)
            yield Problem(task.path, line, message, "dependency_cycle")


def _group_message(slug: str, cycle: graph.Cycle) -> str:
    # Only the first few names: a group can hold thousands of tasks.
    others = [name for name in cycle.group[: _GROUP_NAMES_SHOWN + 1] if name != slug]
    shown = ", ".join(others[:_GROUP_NAMES_SHOWN])
    hidden = len(cycle.group) - 1 - _GROUP_NAMES_SHOWN
    more = f" and {hidden} more" if hidden > 0 else ""
    return (
        f"part of a dependency cycle with {shown}{more} (e.g. {cycle.text()}); "
        f"remove the dependencies that lead back to '{slug}'"
    )
