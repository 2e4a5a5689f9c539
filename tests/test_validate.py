"""Cross-file validation over real task trees in real git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from taskfiles import config as config_module
from taskfiles.config import Config
from taskfiles.plan import graph
from taskfiles.plan import source as tasksource
from taskfiles.plan.source import TaskSet
from taskfiles.plan.taskfile import Problem, Task
from taskfiles.plan.validate import has_errors, validate

pytestmark = pytest.mark.planning

OWNERS = '[tool.taskfiles]\nowners = ["core", "agents"]\nowner_aliases = { dev = "core", bot = "agents" }\n'


def task_text(title: str = "A task", **fields: str) -> str:
    """A task file; each field is written as a raw 'key: value' line, in order."""
    lines = [f"title: {title}", *(f"{key}: {value}" for key, value in fields.items())]
    return "---\n" + "\n".join(lines) + "\n---\n\n## Plan\n"


def make_repo(root: Path, files: dict[str, str], pyproject: str = "") -> Config:
    """A git repository at ``root`` with ``files`` under tasks/ (and a pyproject.toml)."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    if pyproject:
        (root / "pyproject.toml").write_text(pyproject)
    for rel, text in files.items():
        path = root / "tasks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
    return config_module.load(root)


def check(
    root: Path, files: dict[str, str], pyproject: str = "", paths: list[str] | None = None
) -> list[Problem]:
    cfg = make_repo(root, files, pyproject)
    return validate(cfg, tasksource.load(cfg), paths)


def lines(problems: list[Problem]) -> list[str]:
    return [str(problem) for problem in problems]


def test_clean_tree_has_no_problems(tmp_path: Path) -> None:
    files = {
        "infra/setup-db.md": task_text(status="completed", completed_at="2026-01-02"),
        "infra/migrate.md": task_text(status="ready", depends_on="[setup-db]", owner="core"),
        "app/login.md": task_text(depends_on="[setup-db, migrate]", owner="dev"),
    }
    assert check(tmp_path, files, OWNERS) == []


def test_unknown_dependency_suggests_the_closest_slug(tmp_path: Path) -> None:
    files = {
        "setup-database.md": task_text(),
        "login.md": task_text(owner="core", depends_on="[setup-databse]"),
    }
    assert lines(check(tmp_path, files)) == [
        "tasks/login.md:4: depends on unknown task 'setup-databse'; did you mean 'setup-database'?"
    ]


def test_unknown_dependency_without_a_close_slug(tmp_path: Path) -> None:
    files = {"setup-database.md": task_text(), "login.md": task_text(depends_on="\n  - zzz")}
    (problem,) = check(tmp_path, files)
    assert (problem.code, problem.line, problem.severity) == ("unknown_dependency", 3, "error")
    assert problem.message == "depends on unknown task 'zzz'; check the slug or remove it from depends_on"


def test_a_dependency_with_a_line_break_is_reported_on_one_line(tmp_path: Path) -> None:
    files = {"login.md": task_text(depends_on='["x\\ny"]')}
    (problem,) = check(tmp_path, files)
    assert problem.code == "unknown_dependency" and "\n" not in str(problem)
    assert "depends on unknown task 'x\\ny'" in str(problem)


def test_unknown_dependency_suggestion_in_a_large_set() -> None:
    tasks = [_task(f"service-{n:04d}-deploy") for n in range(1000)]
    tasks.append(_task("app", depends=("service-0421-deplyo", "sevrice-0777-deploy")))
    problems = validate(_config(), TaskSet(tuple(tasks), (), ()))
    assert [p.message.rpartition("; ")[2] for p in problems] == [
        "did you mean 'service-0421-deploy'?",
        "did you mean 'service-0777-deploy'?",
    ]


def test_dependency_on_a_skipped_file_says_so(tmp_path: Path) -> None:
    files = {"broken.md": "---\ntitle: [oops\n---\n", "login.md": task_text(depends_on="[broken]")}
    assert lines(check(tmp_path, files)) == [
        "tasks/broken.md:3: invalid YAML (while parsing a flow sequence on line 2, did not find expected ',' "
        "or ']'); check quoting and indentation",
        "tasks/login.md:3: depends on 'broken', but tasks/broken.md has problems and was skipped; "
        "fix that file first",
    ]


def test_self_dependency(tmp_path: Path) -> None:
    problems = check(tmp_path, {"loop.md": task_text(depends_on="[loop]")})
    assert lines(problems) == ["tasks/loop.md:3: task depends on itself; remove 'loop' from depends_on"]
    assert problems[0].code == "self_dependency"


def test_cycle_reported_on_each_member_from_its_own_point_of_view(tmp_path: Path) -> None:
    files = {
        "a.md": task_text(depends_on="[b]"),
        "b.md": task_text(status="ready", depends_on="[c]"),
        "c.md": task_text(depends_on="[a]"),
        "d.md": task_text(depends_on="[a]"),  # depends on the cycle, is not part of it
    }
    assert lines(check(tmp_path, files)) == [
        "tasks/a.md:3: dependency cycle: a -> b -> c -> a; remove one of these dependencies",
        "tasks/b.md:4: dependency cycle: b -> c -> a -> b; remove one of these dependencies",
        "tasks/c.md:3: dependency cycle: c -> a -> b -> c; remove one of these dependencies",
    ]


def test_cycle_group_members_off_the_shown_cycle(tmp_path: Path) -> None:
    files = {
        "a.md": task_text(depends_on="[b]"),
        "b.md": task_text(depends_on="[a, c]"),
        "c.md": task_text(depends_on="[b]"),
    }
    problems = check(tmp_path, files)
    assert {p.code for p in problems} == {"dependency_cycle"}
    assert lines(problems) == [
        "tasks/a.md:3: dependency cycle: a -> b -> a; remove one of these dependencies",
        "tasks/b.md:3: dependency cycle: b -> a -> b; remove one of these dependencies",
        "tasks/c.md:3: part of a dependency cycle with a, b (e.g. a -> b -> a); "
        "remove the dependencies that lead back to 'c'",
    ]


def test_diamond_is_not_a_cycle(tmp_path: Path) -> None:
    files = {
        "top.md": task_text(depends_on="[left, right]"),
        "left.md": task_text(depends_on="[bottom]"),
        "right.md": task_text(depends_on="[bottom]"),
        "bottom.md": task_text(),
    }
    assert check(tmp_path, files) == []


def test_owners_with_aliases(tmp_path: Path) -> None:
    files = {
        "a.md": task_text(owner="core"),
        "b.md": task_text(owner="dev"),  # alias of core
        "c.md": task_text(owner="BOT"),  # aliases are case-insensitive
        "d.md": task_text(owner="Core"),
        "e.md": task_text(owner="zed"),
        "f.md": task_text(),  # no owner is fine
    }
    problems = check(tmp_path, files, OWNERS)
    assert lines(problems) == [
        "tasks/d.md:3: owner 'Core' is not one of the configured owners (core, agents); did you mean 'core'? "
        "use one of them, or add 'core' to owner_aliases",
        "tasks/e.md:3: owner 'zed' is not one of the configured owners (core, agents); "
        "use one of them, or add 'zed' to owner_aliases",
    ]
    assert {p.code for p in problems} == {"unknown_owner"}


def test_any_owner_when_no_owners_are_configured(tmp_path: Path) -> None:
    assert check(tmp_path, {"a.md": task_text(owner="anyone")}) == []


def test_cancelled_dependency_warns_only_for_open_tasks(tmp_path: Path) -> None:
    files = {
        "dropped.md": task_text(status="cancelled"),
        "open.md": task_text(status="ready", depends_on="[dropped]"),
        "closed.md": task_text(status="cancelled", depends_on="[dropped]"),
    }
    problems = check(tmp_path, files)
    assert [(p.path, p.code, p.severity) for p in problems] == [
        ("tasks/open.md", "cancelled_dependency", "warning")
    ]
    assert not has_errors(problems)


def test_repeated_dependency_warns(tmp_path: Path) -> None:
    files = {"a.md": task_text(depends_on="[b, b]"), "b.md": task_text()}
    assert lines(check(tmp_path, files)) == [
        "tasks/a.md:3: warning: depends_on lists 'b' twice; remove one of them"
    ]


@pytest.mark.parametrize(
    ("pr", "ok"),
    [
        ("https://github.com/org/repo/pull/12", True),
        ("http://git.local/group/repo/-/merge_requests/3", True),
        ("'#12'", True),  # quoted: a bare '#' starts a YAML comment
        ("org/repo#12", True),
        ("javascript:alert(1)", False),
        ("notaurl", False),
        ("12", False),
        ("ftp://host/pr/1", False),
        ("'https://'", False),
        ("'https://host/a b'", False),
    ],
)
def test_pr_must_be_a_web_url_or_a_pull_request_reference(tmp_path: Path, pr: str, ok: bool) -> None:
    text = task_text(status="completed", completed_at="2026-01-02", pr=pr)
    problems = check(tmp_path, {"a.md": text})
    if ok:
        assert problems == []
        return
    assert [(p.line, p.code, p.severity) for p in problems] == [(5, "bad_pr", "error")]
    assert "is not a pull request; use its http(s) URL" in problems[0].message


def test_a_title_over_200_characters_is_an_error_like_task_new_refuses_it(tmp_path: Path) -> None:
    problems = check(tmp_path, {"long.md": task_text("x" * 201), "limit.md": task_text("y" * 200)})
    assert lines(problems) == [
        "tasks/long.md:2: title is 201 characters, over the limit of 200; "
        "shorten it and put the detail in the body"
    ]
    assert problems[0].code == "title_too_long" and has_errors(problems)


def test_per_file_and_cross_file_problems_sorted_by_path_then_line(tmp_path: Path) -> None:
    files = {
        "z.md": task_text(status="in_progress", started_at="2026-01-01", depends_on="[nope]"),
        "a.md": task_text(status="completed"),  # loads, without completed_at
        "m.md": task_text(estimate="3", owner="zed"),
        "ws/a.md": task_text(),  # duplicate slug in another folder
    }
    problems = check(tmp_path, files, OWNERS)
    assert [(p.path, p.line, p.code) for p in problems] == [
        ("tasks/a.md", 3, "missing_completed_at"),
        ("tasks/m.md", 3, "unknown_key"),
        ("tasks/m.md", 4, "unknown_owner"),
        ("tasks/ws/a.md", 1, "duplicate_slug"),
        ("tasks/z.md", 3, "legacy_runtime_keys"),
        ("tasks/z.md", 4, "legacy_runtime_keys"),
        ("tasks/z.md", 5, "unknown_dependency"),
    ]
    assert has_errors(problems)
    assert all(str(p).startswith(f"{p.path}:{p.line}: ") for p in problems)


def test_paths_limit_the_report_but_not_the_checks(tmp_path: Path) -> None:
    files = {
        "a.md": task_text(depends_on="[b]"),
        "b.md": task_text(depends_on="[a]"),
        "c.md": task_text(depends_on="[missing]"),
        "d.md": task_text(status="done"),
    }
    cfg = make_repo(tmp_path, files)
    taskset = tasksource.load(cfg)
    assert [(p.path, p.code) for p in validate(cfg, taskset, ["tasks/b.md"])] == [
        ("tasks/b.md", "dependency_cycle")
    ]
    only_c_and_d = validate(cfg, taskset, [str(tmp_path / "tasks/c.md"), Path("tasks/d.md")])
    assert [(p.path, p.code) for p in only_c_and_d] == [
        ("tasks/c.md", "unknown_dependency"),
        ("tasks/d.md", "bad_status"),
    ]
    assert validate(cfg, taskset, []) == []
    assert validate(cfg, taskset, ["README.md"]) == []
    assert len(validate(cfg, taskset)) == 4


def test_validate_a_git_ref(tmp_path: Path) -> None:
    cfg = make_repo(tmp_path, {"a.md": task_text(depends_on="[b]"), "b.md": task_text()})
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tasks"], check=True)
    (tmp_path / "tasks" / "b.md").unlink()  # uncommitted: the ref still has it
    assert validate(cfg, tasksource.load(cfg, "HEAD"), ["tasks/a.md"]) == []
    assert [p.code for p in validate(cfg, tasksource.load(cfg), ["tasks/a.md"])] == ["unknown_dependency"]


# --- the graph helpers behind validate and `task show` --------------------------------


def _task(slug: str, depends: tuple[str, ...] = (), status: str = "ready") -> Task:
    return Task(
        slug=slug,
        path=f"tasks/{slug}.md",
        title=slug.title(),
        status=status,
        priority="p2",
        depends_on=depends,
    )


def _config() -> Config:
    return Config(root=Path("/repo"), tasks_dir=Path("/repo/tasks"), registry_dir=Path("/repo/registry"))


def test_dependencies_and_dependents(tmp_path: Path) -> None:
    files = {
        "db.md": task_text("Database", status="completed", completed_at="2026-01-02"),
        "broken.md": "no frontmatter\n",
        "api.md": task_text("API", status="ready", depends_on="[db, broken, ghost, db]"),
        "web.md": task_text("Web", depends_on="[api]"),
        "cli.md": task_text("CLI", depends_on="[api]"),
    }
    cfg = make_repo(tmp_path, files)
    taskset = tasksource.load(cfg)
    assert [link.to_dict() for link in graph.dependencies(taskset, "api")] == [
        {"slug": "db", "status": "completed", "title": "Database", "path": "tasks/db.md", "met": True,
         "unreadable": False},
        {"slug": "broken", "status": None, "title": None, "path": "tasks/broken.md", "met": False,
         "unreadable": True},
        {"slug": "ghost", "status": None, "title": None, "path": None, "met": False, "unreadable": False},
    ]  # fmt: skip
    assert [(link.slug, link.status) for link in graph.dependents(taskset, "api")] == [
        ("cli", "not_started"),
        ("web", "not_started"),
    ]
    assert graph.dependencies(taskset, "nope") == []
    assert graph.dependents(taskset, "web") == []


@pytest.mark.parametrize("size", [2, 10_000])
def test_long_ring_is_one_cycle_with_a_short_message(size: int) -> None:
    tasks = tuple(_task(f"t{n:05d}", (f"t{(n + 1) % size:05d}",)) for n in range(size))
    (cycle,) = graph.cycles(tasks)
    assert len(cycle.path) == size
    problems = validate(_config(), TaskSet(tasks, (), ()))
    assert len(problems) == size
    assert max(len(p.message) for p in problems) < 300
    if size == 10_000:
        assert problems[5].message.startswith("dependency cycle: t00005 -> t00006 -> ")
        assert "-> ... (9988 more) -> t00003 -> t00004 -> t00005;" in problems[5].message


def test_long_chain_has_no_cycle_and_no_recursion_limit() -> None:
    tasks = tuple(_task(f"t{n:05d}", (f"t{n + 1:05d}",) if n < 9_999 else ()) for n in range(10_000))
    assert graph.cycles(tasks) == []
    assert validate(_config(), TaskSet(tasks, (), ())) == []


def test_big_cycle_group_messages_stay_short() -> None:
    # Every task depends on the next two: one group of 3,000, many overlapping cycles.
    size = 3_000
    tasks = tuple(
        _task(f"t{n:04d}", (f"t{(n + 1) % size:04d}", f"t{(n + 2) % size:04d}")) for n in range(size)
    )
    problems = validate(_config(), TaskSet(tasks, (), ()))
    assert len(problems) == size
    assert {p.code for p in problems} == {"dependency_cycle"}
    assert max(len(p.message) for p in problems) < 300
    assert sum(p.message.startswith("part of a dependency cycle with ") for p in problems) > 0


def test_a_title_of_several_lines_is_an_error_like_task_new_refuses_it(tmp_path: Path) -> None:
    problems = check(
        tmp_path,
        {
            "split.md": '---\ntitle: "first\\nsecond"\nstatus: ready\n---\n',
            "tab.md": '---\ntitle: "a\\tb"\nstatus: ready\n---\n',
            "fine.md": "---\ntitle: Fix the login — for real\nstatus: ready\n---\n",
        },
    )
    assert [(p.path, p.line, p.code) for p in problems] == [
        ("tasks/split.md", 2, "title_not_one_line"),
        ("tasks/tab.md", 2, "title_not_one_line"),
    ]
    assert "a title is one line" in problems[0].message and has_errors(problems)
