"""The `task` commands, run through click's CliRunner against real repositories."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from taskfiles.cli import app

from .conftest import commit_all, git, list_json_in_a_process, write_task

runner = CliRunner()


def run(root: Path, *args: str, code: int = 0) -> str:
    """Invoke ``task -C root ARGS`` and check its exit code; return stdout."""
    result = runner.invoke(app, ["-C", str(root), *args])
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}{result.stderr}"
    return result.stdout


def run_err(root: Path, *args: str, code: int) -> str:
    """Invoke a command that must fail; return its stderr."""
    result = runner.invoke(app, ["-C", str(root), *args])
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}"
    return result.stderr


@pytest.mark.planning
def test_init_is_idempotent_and_keeps_files(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "SKILL.md").write_text("mine\n")
    first = run(tmp_path, "init", str(tmp_path))
    assert "created tasks/" in first and "created registry/.gitignore" in first
    assert "kept    SKILL.md" in first
    assert (tmp_path / "SKILL.md").read_text() == "mine\n"
    assert (tmp_path / "taskfiles.toml").is_file()
    second = run(tmp_path, "init", str(tmp_path))
    assert "created" not in second
    git(tmp_path, "add", "-A")
    tracked = git(tmp_path, "ls-files").split()
    assert "registry/.gitignore" in tracked and "registry/README.md" in tracked


@pytest.mark.planning
def test_init_outside_git_is_an_error(tmp_path: Path) -> None:
    assert "not inside a git repository" in run_err(tmp_path, "init", str(tmp_path), code=2)


@pytest.mark.planning
def test_new_writes_sections_and_unique_slugs(repo: Path) -> None:
    first = run(repo, "new", "Add login page", "--priority", "p1", "--label", "web", "--ready").strip()
    second = run(repo, "new", "Add login page", "--workstream", "web").strip()
    assert first == "tasks/add-login-page.md"
    assert second == "tasks/web/add-login-page-2.md"
    text = (repo / first).read_text()
    assert text.startswith("---\ntitle: Add login page\nstatus: ready\npriority: p1\nlabels: [web]\n---\n")
    for section in ("## Problem", "## Acceptance criteria", "## Review feedback"):
        assert section in text
    assert json.loads(run(repo, "show", "add-login-page-2", "--json"))["workstream"] == "web"


@pytest.mark.planning
@pytest.mark.parametrize("title", ["index", "README"])
def test_new_never_takes_a_name_the_tasks_folder_keeps_for_other_pages(repo: Path, title: str) -> None:
    path = run(repo, "new", title).strip()
    assert path == f"tasks/{title.lower()}-2.md"
    assert json.loads(run(repo, "show", f"{title.lower()}-2", "--json"))["title"] == title


@pytest.mark.planning
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new", "x", "--priority", "p9"], "priority 'p9' is not one of p0, p1, p2, p3"),
        (["new", "x", "--depends-on", "ghost"], "--depends-on 'ghost' is not a task"),
        (["new", "x", "--workstream", "../escape"], "is not a folder name"),
        (["new", "   "], "the title is empty"),
        (["show", "ghost"], "no task with slug 'ghost'"),
        (["ready", "ghost"], "no task with slug 'ghost'"),
    ],
)
def test_bad_values_are_clear_errors(repo: Path, args: list[str], message: str) -> None:
    stderr = run_err(repo, *args, code=2 if args[0] == "new" else 3)
    assert stderr.startswith("error: ") and message in stderr
    assert not (repo / "escape").exists()


@pytest.mark.planning
def test_list_filters_and_json_keys(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: Alpha db\nstatus: ready\npriority: p1\nowner: dev\n---\nbody\n")
    write_task(repo, "infra/b.md", "---\ntitle: Beta\nlabels: [ops]\nmilestone: m1\n---\nneedle here\n")
    (repo / "taskfiles.toml").write_text('owners = ["core"]\nowner_aliases = { dev = "core" }\n')
    rows = json.loads(run(repo, "list", "--json"))
    assert [r["slug"] for r in rows] == ["a", "b"]
    assert {"slug", "title", "status", "path", "priority", "owner", "depends_on"} <= set(rows[0])
    assert rows[0]["owner"] == "core"  # the alias collapsed
    assert [r["slug"] for r in json.loads(run(repo, "list", "--json", "--owner", "dev"))] == ["a"]
    assert [r["slug"] for r in json.loads(run(repo, "list", "--json", "--label", "ops"))] == ["b"]
    assert [r["slug"] for r in json.loads(run(repo, "list", "--json", "--search", "NEEDLE"))] == ["b"]
    assert [r["slug"] for r in json.loads(run(repo, "list", "--json", "--workstream", "infra"))] == ["b"]
    assert json.loads(run(repo, "list", "--json", "--status", "completed")) == []
    assert "Alpha db" in run(repo, "list")


@pytest.mark.planning
def test_a_repeated_list_filter_keeps_tasks_with_any_of_its_values(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\npriority: p1\nlabels: [web]\n---\n")
    write_task(repo, "b.md", "---\ntitle: B\nstatus: not_started\npriority: p2\nlabels: [ops, db]\n---\n")
    write_task(repo, "c.md", "---\ntitle: C\nstatus: completed\ncompleted_at: '2026-01-01'\n---\n")

    def slugs(*args: str) -> list[str]:
        return [row["slug"] for row in json.loads(run(repo, "list", "--json", *args))]

    assert slugs("--status", "ready", "--status", "not_started") == ["a", "b"]  # not just the last
    assert slugs("--priority", "p1", "--priority", "p2") == ["a", "b", "c"]  # c has the default p2
    assert slugs("--label", "web", "--label", "db") == ["a", "b"]
    assert slugs("--status", "ready", "--status", "completed", "--priority", "p2") == ["c"]  # filters AND


@pytest.mark.planning
def test_list_skips_a_malformed_file_with_a_warning(repo: Path) -> None:
    write_task(repo, "good.md", "---\ntitle: Good\n---\n")
    write_task(repo, "bad.md", "---\ntitle: [unclosed\n---\n")
    result = runner.invoke(app, ["-C", str(repo), "list", "--json"])
    assert result.exit_code == 0
    assert [r["slug"] for r in json.loads(result.stdout)] == ["good"]
    assert "warning: skipped 1 unreadable task file(s): tasks/bad.md" in result.stderr


@pytest.mark.planning
def test_show_lists_dependencies_and_dependents(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: completed\ncompleted_at: '2026-01-01'\n---\n")
    write_task(repo, "b.md", "---\ntitle: B\ndepends_on: [a, gone]\n---\n## Plan\nsteps\n")
    write_task(repo, "c.md", "---\ntitle: C\ndepends_on: [b]\n---\n")
    shown = json.loads(run(repo, "show", "b", "--json"))
    assert shown["dependencies"] == [
        {"slug": "a", "status": "completed", "title": "A"},
        {"slug": "gone", "status": None, "title": None},
    ]
    assert shown["dependents"] == [{"slug": "c", "status": "not_started", "title": "C"}]
    assert shown["body"] == "## Plan\nsteps\n"
    text = run(repo, "show", "b")
    assert "depends on: a (completed), gone (missing)" in text and "needed by:  c (not_started)" in text


@pytest.mark.planning
def test_ready_and_complete_change_only_their_lines(repo: Path) -> None:
    original = (
        "---\n# planning header comment\ntitle: 'Quoted: title'\nstatus: not_started  # keep me\n"
        "priority: p1\ncustom_key: {a: 1}\n---\n\nBody with --- and status: fake\n"
    )
    path = write_task(repo, "t.md", original)
    assert "status: ready" in run(repo, "ready", "t")
    assert path.read_text() == original.replace("status: not_started  #", "status: ready  #")
    assert "already ready" in run(repo, "ready", "t")
    run(repo, "complete", "t", "--by", "alice", "--pr", "https://example.invalid/pr/7")
    lines = path.read_text().splitlines()
    assert lines[:3] == original.splitlines()[:3]
    assert lines[3] == "status: completed  # keep me"
    assert lines[4:6] == ["priority: p1", "custom_key: {a: 1}"]
    assert lines[6] == "completed_by: alice"
    assert lines[7].startswith('completed_at: "20') and lines[7].endswith('Z"')
    assert lines[8] == "pr: https://example.invalid/pr/7"
    assert path.read_text().endswith("---\n\nBody with --- and status: fake\n")
    assert "create a new task" in run_err(repo, "ready", "t", code=4)


@pytest.mark.planning
def test_validate_reports_path_line_and_exit_code(repo: Path) -> None:
    write_task(repo, "ok.md", "---\ntitle: OK\n---\n")
    assert run(repo, "validate") == ""
    write_task(repo, "bad.md", "---\ntitle: Bad\nstatus: done\n---\n")
    result = runner.invoke(app, ["-C", str(repo), "validate"])
    assert result.exit_code == 1
    assert "tasks/bad.md:3: status 'done' is not one of" in result.stdout
    assert result.stderr.rstrip().endswith(
        "error: 1 error(s) in task files; fix them and run 'task validate' again"
    )
    report = json.loads(runner.invoke(app, ["-C", str(repo), "validate", "--json"]).stdout)
    assert report["ok"] is False and report["errors"] == 1
    assert report["problems"][0]["line"] == 3 and report["problems"][0]["path"] == "tasks/bad.md"


@pytest.mark.planning
def test_validate_refuses_a_path_that_does_not_exist(repo: Path) -> None:
    good = write_task(repo, "ok.md", "---\ntitle: OK\n---\n")
    assert runner.invoke(app, ["-C", str(repo), "validate", str(good)]).exit_code == 0
    typo = repo / "tasks" / "okk.md"
    result = runner.invoke(app, ["-C", str(repo), "validate", str(good), str(typo), "--format", "github"])
    assert result.exit_code == 2
    assert "error: no such file: tasks/okk.md; give paths of task files" in result.stderr


@pytest.mark.planning
def test_next_orders_by_priority_then_slug_and_waits_for_dependencies(repo: Path) -> None:
    write_task(repo, "zeta.md", "---\ntitle: Z\nstatus: ready\npriority: p0\ndepends_on: [base]\n---\n")
    write_task(repo, "beta.md", "---\ntitle: B\nstatus: ready\npriority: p1\nowner: bob\n---\n")
    write_task(repo, "alpha.md", "---\ntitle: A\nstatus: ready\npriority: p1\n---\n")
    write_task(repo, "base.md", "---\ntitle: Base\nstatus: ready\npriority: p3\n---\n")
    assert json.loads(run(repo, "next", "--json"))["slug"] == "alpha"
    assert json.loads(run(repo, "next", "--json", "--owner", "bob"))["slug"] == "beta"
    run(repo, "complete", "base")
    assert json.loads(run(repo, "next", "--json"))["slug"] == "zeta"
    assert json.loads(run(repo, "next", "--json", "--owner", "nobody")) is None


@pytest.mark.planning
def test_ref_reads_committed_files_not_the_working_tree(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: Committed\nstatus: ready\n---\n")
    commit_all(repo)
    write_task(repo, "a.md", "---\ntitle: Edited\nstatus: ready\n---\n")
    write_task(repo, "new.md", "---\ntitle: Uncommitted\n---\n")
    at_main = json.loads(run(repo, "list", "--json", "--ref", "main"))
    assert [(r["slug"], r["title"]) for r in at_main] == [("a", "Committed")]
    assert json.loads(run(repo, "show", "a", "--ref", "main", "--json"))["title"] == "Committed"
    assert len(json.loads(run(repo, "list", "--json"))) == 2
    assert "does not exist" in run_err(repo, "list", "--ref", "nope", code=3)


def _commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the top-level group builds its commands on lookup
        command = group.get_command(ctx, name)
        assert command is not None
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
    return found


def test_every_command_has_help_and_listing_commands_take_json() -> None:
    for path, command in _commands(app):
        assert command.help and len(command.help) > 20, f"task {' '.join(path)} has no help text"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.stdout
        if path[-1] in {"list", "show", "validate", "next", "status", "events"}:
            assert "--json" in [opt for param in command.params for opt in param.opts], path


@pytest.mark.planning
def test_console_scripts_run_as_real_processes(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\n---\n")
    bindir = Path(sys.executable).parent
    for script in ("task", "taskfiles"):
        done = subprocess.run([bindir / script, "list", "--json"], cwd=repo, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["slug"] == "a"
    done = subprocess.run([bindir / "task", "show", "nope"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 3 and done.stderr.startswith("error: no task with slug 'nope'")


# -- the runtime view in list and show ---------------------------------------------------------

RUNTIME_KEYS = {"state", "lease", "attempt", "max_attempts", "worker", "heartbeat_at"} | {
    "heartbeat_age_seconds"
}


def test_list_and_show_carry_the_runtime_view(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    write_task(repo, "b.md", "---\ntitle: B\nstatus: ready\n---\n")
    run(repo, "claim", "a", "--worker", "w1")
    run(repo, "start", "a", "--lease", "1")
    run(repo, "heartbeat", "a", "--lease", "1", "--note", "halfway")
    rows = {r["slug"]: r for r in json.loads(run(repo, "list", "--json"))}
    assert set(rows["a"]["runtime"]) == RUNTIME_KEYS and rows["b"]["runtime"] is None
    runtime = rows["a"]["runtime"]
    assert [runtime[k] for k in ("state", "lease", "attempt", "worker")] == ["running", 1, 1, "w1"]
    assert runtime["max_attempts"] == 3 and runtime["heartbeat_age_seconds"] >= 0
    lines = run(repo, "list").splitlines()
    assert lines[0].split() == ["PRI", "STATUS", "STATE", "SLUG", "OWNER", "TITLE"]
    assert lines[1].split()[:4] == ["p2", "ready", "running", "a"]
    assert lines[2].split()[:4] == ["p2", "ready", "-", "b"]
    shown = json.loads(run(repo, "show", "a", "--json"))
    age = shown["runtime"]["heartbeat_age_seconds"]
    assert shown["runtime"] == {**runtime, "heartbeat_age_seconds": age}
    assert shown["entry"]["progress"] == "halfway" and shown["entry"]["lease"] == 1
    text = run(repo, "show", "a")
    assert "runtime:   running, lease 1, attempt 1 · 0/3 failures, worker w1" in text
    assert "progress: halfway" in text
    assert json.loads(run(repo, "show", "b", "--json"))["entry"] is None
    assert "runtime:   - (no registry entry" in run(repo, "show", "b")


@pytest.mark.planning
def test_list_without_a_registry_opens_none_and_creates_none(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\n---\n")
    result = runner.invoke(app, ["-C", str(repo), "list", "--json"])
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout)[0]["runtime"] is None
    assert not (repo / "registry").exists()


def test_a_corrupt_registry_is_a_warning_in_list_and_show(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    run(repo, "claim", "a")
    (repo / "registry" / "registry.json").write_text("{broken")
    for args in (["list", "--json"], ["list"], ["show", "a", "--json"]):
        result = runner.invoke(app, ["-C", str(repo), *args])
        assert result.exit_code == 0, args
        assert result.stderr.startswith("warning: runtime state not shown: ")
        assert "registry.json" in result.stderr and "task registry repair" in result.stderr
    assert json.loads(runner.invoke(app, ["-C", str(repo), "list", "--json"]).stdout)[0]["runtime"] is None


def test_warm_list_json_with_a_registry_imports_neither_yaml_nor_gitpython(repo: Path) -> None:
    from taskfiles import config as config_module
    from taskfiles.plan import source as tasksource

    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    run(repo, "claim", "a")
    # Fill the parse cache as if the file had been written long ago (the racy rule).
    tasksource.load_tree(config_module.load(repo), now_ns=time.time_ns() + 10**10)
    rows, imported = list_json_in_a_process(repo, "yaml", "git")
    assert rows[0]["runtime"]["state"] == "claimed"
    assert imported == set()


@pytest.mark.planning
def test_warm_list_reads_no_body_unless_it_searches_them(repo: Path) -> None:
    from taskfiles import config as config_module
    from taskfiles.plan import cache
    from taskfiles.plan import source as tasksource

    write_task(repo, "a.md", "---\ntitle: A\n---\nthe needle is here\n")
    write_task(repo, "b.md", "---\ntitle: B\n---\nhay\n")
    tasksource.load_tree(config_module.load(repo), now_ns=time.time_ns() + 10**10)  # settled
    path = repo / ".git" / "taskfiles" / cache.TREE_FILE
    data = path.read_bytes()
    head = int.from_bytes(data[: cache.HEAD_SIZE], "little") + cache.HEAD_SIZE
    path.write_bytes(data[:head])  # the head alone: a read of any body fails
    assert [row["slug"] for row in json.loads(run(repo, "list", "--json"))] == ["a", "b"]
    assert path.read_bytes() == data[:head]  # served from the head: nothing parsed, nothing written
    assert [row["slug"] for row in json.loads(run(repo, "list", "--json", "--search", "needle"))] == ["a"]


def test_complete_twice_keeps_the_record_and_edits_keep_the_file_mode(repo: Path) -> None:
    path = write_task(repo, "t.md", "---\ntitle: T\nstatus: ready\n---\n")
    path.chmod(0o600)
    run(repo, "complete", "t", "--by", "alice")
    first = path.read_text()
    assert "unchanged" in run(repo, "complete", "t")
    assert path.read_text() == first  # completed_at was not rewritten
    run(repo, "complete", "t", "--pr", "https://example.invalid/pull/9")
    added = [line for line in path.read_text().splitlines() if line not in first.splitlines()]
    assert added == ["pr: https://example.invalid/pull/9"]
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.planning
def test_new_writes_the_canonical_owner_for_an_alias_as_set_and_assign_do(repo: Path) -> None:
    (repo / "taskfiles.toml").write_text('owners = ["core"]\nowner_aliases = { dev = "core" }\n')
    path = run(repo, "new", "Fix login", "--owner", "dev").strip()
    assert "owner: core\n" in (repo / path).read_text(encoding="utf-8")


@pytest.mark.planning
@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Ünïcode — title", "unicode-title"),
        ("Café au lait: naïve façade", "cafe-au-lait-naive-facade"),
        ("修复登录", "task"),  # no letter has an ASCII base: the fallback
    ],
)
def test_new_keeps_the_base_letter_of_accented_titles_in_the_slug(repo: Path, title: str, slug: str) -> None:
    assert run(repo, "new", title).strip() == f"tasks/{slug}.md"
