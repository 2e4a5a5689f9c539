"""``task validate``'s checks that mutation testing (issue 16) found untested.

In-memory task sets (``Task`` as the parser makes it) where the check needs no file;
the value rules (``pr_problem``, ``title_line_problem``) directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from taskfiles.config import Config
from taskfiles.plan.source import TaskSet
from taskfiles.plan.taskfile import Problem, Task
from taskfiles.plan.validate import pr_problem, title_line_problem, validate

pytestmark = pytest.mark.planning


def _task(slug: str, depends: tuple[str, ...] = (), **fields: object) -> Task:
    values: dict[str, object] = {"title": slug, "status": "ready", "priority": "p2", **fields}
    return Task(slug=slug, path=f"tasks/{slug}.md", depends_on=depends, **values)  # type: ignore[arg-type]


def _config(**fields: object) -> Config:
    root = Path("/repo")
    return Config(root=root, tasks_dir=root / "tasks", registry_dir=root / "registry", **fields)  # type: ignore[arg-type]


def _check(*tasks: Task, config: Config | None = None) -> list[Problem]:
    return validate(config or _config(), TaskSet(tasks, (), ()))


def test_on_one_line_an_error_comes_before_a_warning() -> None:
    # 'cancelled_dependency' (a warning) sorts before 'self_dependency' (an error) by code.
    problems = _check(_task("a", ("dropped", "a")), _task("dropped", status="cancelled"))
    assert [(p.code, p.severity) for p in problems] == [
        ("self_dependency", "error"),
        ("cancelled_dependency", "warning"),
    ]


def test_a_severity_validate_does_not_know_sorts_after_warnings() -> None:
    note = Problem("tasks/a.md", 1, "a note", "a_note", "note")
    tasks = (_task("a", ("dropped", "a")), _task("dropped", status="cancelled"))
    problems = validate(_config(), TaskSet(tasks, (note,), ()))
    assert [p.severity for p in problems] == ["error", "warning", "note"]


def test_a_task_without_line_numbers_is_reported_on_its_first_line() -> None:
    task = _task("a", ("a", "ghost", "b"), title="x\n" * 101, pr="nope", owner="zed", agent="robot")
    problems = _check(task, _task("b", ("a",)), config=_config(owners=("core",)))
    assert sorted(p.code for p in problems) == [
        "bad_pr",
        "dependency_cycle",
        "dependency_cycle",
        "self_dependency",
        "title_not_one_line",
        "title_too_long",
        "unknown_agent",
        "unknown_dependency",
        "unknown_owner",
    ]
    assert {p.line for p in problems} == {1}


def test_a_repeated_dependency_does_not_hide_the_ones_after_it() -> None:
    problems = _check(_task("a", ("b", "b", "ghost")), _task("b"))
    assert [(p.code, p.severity) for p in problems] == [
        ("unknown_dependency", "error"),
        ("duplicate_dependency", "warning"),
    ]


def test_a_dependency_on_a_cancelled_task_and_on_a_skipped_file() -> None:
    tasks = (_task("a", ("dropped", "broken")), _task("dropped", status="cancelled"))
    problems = validate(_config(), TaskSet(tasks, (), ("tasks/broken.md",)))
    assert [(p.code, p.severity, p.message) for p in problems] == [
        (
            "unreadable_dependency",
            "error",
            "depends on 'broken', but tasks/broken.md has problems and was skipped; fix that file first",
        ),
        (
            "cancelled_dependency",
            "warning",
            "depends on 'dropped', which is cancelled, so this task would wait forever; "
            "remove the dependency",
        ),
    ]


@pytest.mark.parametrize(
    "pr",
    ["HTTPS://Example.com/org/repo/pull/1", "Http://git.local/pr/2", "#7", "org.x/re_po-1#12"],
)
def test_accepted_pull_request_references(pr: str) -> None:
    assert pr_problem(pr) is None


@pytest.mark.parametrize(
    "pr",
    [
        "http://[::1/pull/1",  # an unclosed IPv6 bracket: urlsplit raises
        "https://host/pull/1\x7f",  # not printable
        "https://host/pull/\t1",
        "https:///pull/1",  # no host
        "#12a",
        "org/repo#",
        "org/repo/x#1",
        "# 12",
    ],
)
def test_refused_pull_request_references(pr: str) -> None:
    assert pr_problem(pr) == (
        f"pr {pr!r} is not a pull request; use its http(s) URL "
        "(e.g. https://github.com/org/repo/pull/12), '#12' or 'org/repo#12'"
    )


@pytest.mark.parametrize("title", ["a\x00b", "a\x1fb", "a\x7fb", "a\x9fb", "a\u2028b", "a\u2029b", "a\rb"])
def test_a_title_with_a_control_character_or_separator_is_not_one_line(title: str) -> None:
    assert title_line_problem(title) == (
        f"the title {title!r} has a line break or control character; a title is one line "
        "(put the detail in the body)"
    )


@pytest.mark.parametrize("title", ["a b", "a\xa0b", "ab — c", "a\x20b~"])
def test_a_title_with_spaces_and_printable_characters_is_one_line(title: str) -> None:
    assert title_line_problem(title) is None


def _group(size: int) -> tuple[Task, ...]:
    """A cycle a -> b -> a, and tasks t1..t{size-2} each depending on a and depended on by
    b: one strongly connected group of ``size`` tasks, the shown cycle a -> b -> a."""
    others = [f"t{n}" for n in range(1, size - 1)]
    return (_task("a", ("b",)), _task("b", ("a", *others)), *(_task(name, ("a",)) for name in others))


def test_a_group_member_names_five_others_and_counts_the_rest() -> None:
    problems = {p.path: p.message for p in _check(*_group(8))}
    assert problems["tasks/t3.md"] == (
        "part of a dependency cycle with a, b, t1, t2, t4 and 2 more (e.g. a -> b -> a); "
        "remove the dependencies that lead back to 't3'"
    )
    assert problems["tasks/t6.md"].startswith("part of a dependency cycle with a, b, t1, t2, t3 and 2 more ")


def test_a_group_of_seven_counts_the_one_not_named() -> None:
    problems = {p.path: p.message for p in _check(*_group(7))}
    shown = "part of a dependency cycle with a, b, t1, t2, t3 and 1 more (e.g. "
    assert problems["tasks/t5.md"].startswith(shown)


def test_a_group_of_six_names_every_other_member() -> None:
    problems = {p.path: p.message for p in _check(*_group(6))}
    assert problems["tasks/t4.md"].startswith("part of a dependency cycle with a, b, t1, t2, t3 (e.g. ")
    assert problems["tasks/t1.md"].startswith("part of a dependency cycle with a, b, t2, t3, t4 (e.g. ")


def test_up_to_200_tasks_every_slug_is_a_suggestion() -> None:
    # The typo changes the first and the last letter: in a large set neither the slugs
    # next to it in sorted order nor those next to it reversed hold the right one.
    fillers = [_task(f"m{n:03d}m") for n in range(198)]
    tasks = (*fillers, _task("xdeploy-webx"), _task("app", ("adeploy-weba",)))
    (problem,) = _check(*tasks)
    assert problem.message.endswith("did you mean 'xdeploy-webx'?")


@pytest.mark.parametrize(("between", "suggested"), [(7, True), (8, False)])
def test_over_200_tasks_the_suggestions_are_the_8_slugs_on_each_side(between: int, suggested: bool) -> None:
    # In sorted order the typo 'c-deploy-wex' is followed by ``between`` slugs, then the
    # right one; reversed, it sorts after every slug, far from the right one.
    fillers = [_task(f"m{n:03d}m") for n in range(300)] + [_task(f"d{n}") for n in range(between)]
    (problem,) = _check(*fillers, _task("e-deploy-web"), _task("app", ("c-deploy-wex",)))
    hint = "did you mean 'e-deploy-web'?" if suggested else "check the slug or remove it from depends_on"
    assert problem.message.endswith(hint)


def test_over_200_tasks_the_first_slug_in_sorted_order_is_a_suggestion() -> None:
    fillers = [_task(f"m{n:03d}m") for n in range(300)]
    (problem,) = _check(*fillers, _task("b-deploy-web"), _task("z-app", ("a-deploy-wex",)))
    assert problem.message.endswith("did you mean 'b-deploy-web'?")
