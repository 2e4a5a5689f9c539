"""Checks for pull requests: validate's GitHub annotations, slugs across branches, and the
README's CI files run as GitHub and GitLab would run them.

Real repositories: a bare ``origin`` and a clone of it, so remote-tracking branches exist;
``task`` runs as a subprocess from this virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskfiles.cli.annotations import annotation
from taskfiles.plan.taskfile import Problem

from .conftest import commit_all, git, write_task

BIN = Path(sys.executable).parent
TASK = BIN / "task"
README = Path(__file__).resolve().parents[1] / "README.md"


def task(cwd: Path, *args: str, code: int | None = 0, env: dict[str, str] | None = None) -> Any:
    """Run ``task ARGS`` in ``cwd``; check the exit code unless ``code`` is None."""
    done = subprocess.run(
        [str(TASK), *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if code is not None:
        assert done.returncode == code, f"exit {done.returncode}: {done.stdout}{done.stderr}"
    return done


def text(title: str, *lines: str) -> str:
    return "---\n" + "\n".join([f"title: {title}", *lines]) + "\n---\n\n## Plan\n"


def commit(root: Path, rel: str, content: str, message: str = "tasks") -> None:
    write_task(root, rel, content)
    commit_all(root, message)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare remote whose main holds tasks/a.md."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    commit(seed, "a.md", text("Task a"))
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


def clone(origin: Path, where: Path) -> Path:
    git(where.parent, "clone", "-q", str(origin), str(where))
    return where


def push_branch(origin: Path, tmp_path: Path, branch: str, files: dict[str, str], base: str = "main") -> None:
    """Make ``branch`` on ``origin`` from ``base`` with ``files`` added (from a scratch clone)."""
    scratch = clone(origin, tmp_path / f"scratch-{branch.replace('/', '-')}")
    git(scratch, "checkout", "-q", "-B", branch, f"origin/{base}")
    for rel, content in files.items():
        write_task(scratch, rel, content)
    commit_all(scratch, f"{branch}: tasks")
    git(scratch, "push", "-q", "origin", branch)


# -- task validate --format github ----------------------------------------------------------------

ANNOTATION = re.compile(r"::(error|warning) ([^:]*)::(.*)")


def unescape_data(value: str) -> str:
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(value: str) -> str:
    return unescape_data(value.replace("%3A", ":").replace("%2C", ","))


def parse_annotation(line: str) -> dict[str, Any]:
    """A workflow command line back into a problem, unescaped as GitHub's runner does."""
    found = ANNOTATION.fullmatch(line)
    assert found, f"not an annotation: {line!r}"
    severity, properties, message = found.groups()
    fields = dict(item.split("=", 1) for item in properties.split(","))
    return {
        "path": unescape_property(fields["file"]),
        "line": int(fields["line"]) if "line" in fields else 0,
        "severity": severity,
        "code": unescape_property(fields["title"]),
        "message": unescape_data(message),
    }


def test_github_annotations_are_the_json_problems_one_to_one(repo: Path) -> None:
    write_task(repo, "ok.md", text("Fine"))
    write_task(repo, "deps.md", text("Odd dependency", 'depends_on: ["100%,a:b\\nc", ok]'))
    write_task(repo, "warn.md", text("Unknown key", "colour: red"))
    write_task(repo, "bad-status.md", text("Bad status", "status: doing"))
    write_task(repo, "odd%,:name.md", text("Odd name"))
    github = task(repo, "validate", "--format", "github", code=1)
    document = json.loads(task(repo, "validate", "--format", "json", code=1).stdout)
    lines = github.stdout.splitlines()
    assert [parse_annotation(line) for line in lines] == document["problems"]
    codes = {p["code"] for p in document["problems"]}
    assert {"unknown_dependency", "unknown_key", "bad_status", "bad_slug"} <= codes
    # the slug's % and line break come back (the message quotes it as Python would: one line;
    # a raw line break's %0A is test_annotation_escapes_as_the_toolkit_does)
    assert any("'100%,a:b\\nc'" in p["message"] for p in document["problems"])
    assert any(line.startswith("::warning file=tasks/warn.md,line=") for line in lines)
    assert "::error file=tasks/odd%25%2C%3Aname.md,line=1,title=bad_slug::" in github.stdout
    assert "5 files, " in github.stderr and "error: " in github.stderr  # as text: summary, exit 1


@pytest.mark.planning
def test_annotation_escapes_as_the_toolkit_does() -> None:
    problem = Problem("tasks/a%b,c:d.md", 0, "100% done\r\nnext: a, b", "x:y,z%", "warning")
    line = annotation(problem)
    assert line == "::warning file=tasks/a%25b%2Cc%3Ad.md,title=x%3Ay%2Cz%25::100%25 done%0D%0Anext: a, b"
    assert parse_annotation(line) == problem.to_dict()  # no line property for line 0
    assert annotation(Problem("tasks/a.md", 4, "m", "c")) == "::error file=tasks/a.md,line=4,title=c::m"


@pytest.mark.planning
def test_format_json_is_json_and_the_two_must_agree(repo: Path) -> None:
    write_task(repo, "a.md", text("A", "colour: red"))
    assert task(repo, "validate", "--json").stdout == task(repo, "validate", "--format", "json").stdout
    assert task(repo, "validate").stdout == task(repo, "validate", "--format", "text").stdout
    clash = task(repo, "validate", "--json", "--format", "github", code=2)
    assert "--json and --format github disagree" in clash.stderr
    assert "'xml' is not one of" in task(repo, "validate", "--format", "xml", code=2).stderr


# -- task new: a slug no branch holds ---------------------------------------------------------------


@pytest.mark.planning
def test_new_passes_over_slugs_on_remote_and_local_branches_and_says_where(
    origin: Path, tmp_path: Path
) -> None:
    push_branch(origin, tmp_path, "feature-x", {"web/fix-login.md": text("Fix login")})
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "-b", "mine")
    commit(work, "fix-login-2.md", text("Fix login again"))
    git(work, "checkout", "-q", "main")
    write_task(work, "api/fix-login-3.md", text("Fix login, third"))  # not committed
    free = task(work, "new", "Fix logout")
    assert (free.stdout, free.stderr) == ("tasks/fix-logout.md\n", "")
    done = task(work, "new", "Fix login")
    assert done.stdout == "tasks/fix-login-4.md\n"
    assert done.stderr == (
        "slug fix-login is taken on origin/feature-x (tasks/web/fix-login.md), "
        "fix-login-2 on mine (tasks/fix-login-2.md), "
        "fix-login-3 in the working tree (tasks/api/fix-login-3.md); created fix-login-4\n"
    )


@pytest.mark.planning
def test_new_checks_the_base_ref_when_it_is_no_branch(repo: Path) -> None:
    (repo / "taskfiles.toml").write_text('base_ref = "release"\n')
    commit(repo, "a.md", text("A"))
    git(repo, "checkout", "-q", "-b", "cut")
    commit(repo, "ship-it.md", text("Ship it"))
    git(repo, "tag", "release")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "cut")
    done = task(repo, "new", "Ship it")
    assert done.stdout == "tasks/ship-it-2.md\n"
    assert "slug ship-it is taken on release (tasks/ship-it.md); created ship-it-2" in done.stderr


@pytest.mark.planning
def test_new_passes_over_the_slugs_of_many_branches(origin: Path, tmp_path: Path) -> None:
    work = clone(origin, tmp_path / "work")
    for n in range(1, 31):
        slug = "fix-login" if n == 1 else f"fix-login-{n}"
        git(work, "checkout", "-q", "-b", f"b{n}", "main")
        commit(work, f"ws{n % 3}/{slug}.md", text(f"Fix login {n}"))
    git(work, "push", "-q", "origin", *[f"b{n}" for n in range(1, 31, 2)])
    git(work, "checkout", "-q", "main")
    done = task(work, "new", "Fix login")
    assert done.stdout == "tasks/fix-login-31.md\n"
    assert done.stderr.endswith(" and 27 more; created fix-login-31\n")
    assert done.stderr.startswith(
        "slug fix-login is taken on b1 (tasks/ws1/fix-login.md), fix-login-2 on b2 "
    )


# -- task validate: slug_collision ------------------------------------------------------------------


def collision_repo(repo: Path) -> None:
    """main got tasks/b/fix-login.md after branch mine forked; mine adds tasks/a/fix-login.md."""
    commit(repo, "a.md", text("A"))
    git(repo, "checkout", "-q", "-b", "mine")
    git(repo, "checkout", "-q", "main")
    commit(repo, "b/fix-login.md", text("Fix login on main"))
    git(repo, "checkout", "-q", "mine")
    write_task(repo, "a/fix-login.md", text("Fix login here"))


@pytest.mark.planning
def test_validate_reports_a_slug_the_base_ref_got_since_the_branch_forked(repo: Path) -> None:
    collision_repo(repo)
    done = task(repo, "validate", code=1)
    assert done.stdout == (
        "tasks/a/fix-login.md:1: slug 'fix-login' is also main:tasks/b/fix-login.md, a file added "
        "since the two forked: merged, one slug would name two tasks; rename this one (git mv "
        "tasks/a/fix-login.md tasks/a/fix-login-2.md, and update the depends_on lists that name "
        "'fix-login'), or delete one if they are the same task\n"
    )
    commit_all(repo, "mine: fix login")
    problems = json.loads(task(repo, "validate", "--json", code=1).stdout)["problems"]
    assert [(p["path"], p["code"], p["severity"]) for p in problems] == [
        ("tasks/a/fix-login.md", "slug_collision", "error")
    ]
    git(repo, "checkout", "-q", "main")
    at_ref = task(repo, "validate", "--ref", "mine", "--format", "github", code=1).stdout
    assert at_ref.startswith(
        "::error file=tasks/a/fix-login.md,line=1,title=slug_collision::slug 'fix-login'"
    )
    assert task(repo, "validate", "--ref", "mine", "tasks/a.md").stdout == ""  # only the files named


def move(repo: Path, old: str, new: str, content: str) -> None:
    """``git mv tasks/OLD tasks/NEW``, then NEW gets ``content``."""
    (repo / "tasks" / new).parent.mkdir(parents=True, exist_ok=True)
    git(repo, "mv", f"tasks/{old}", f"tasks/{new}")
    write_task(repo, new, content)


@pytest.mark.planning
def test_edits_moves_and_copies_are_no_collision(repo: Path) -> None:
    commit(repo, "a/edited.md", text("Edited"))
    commit(repo, "a/moved-here.md", text("Moved here"))
    commit(repo, "a/moved-there.md", text("Moved there"))
    git(repo, "checkout", "-q", "-b", "mine")
    git(repo, "checkout", "-q", "main")
    commit(repo, "a/edited.md", text("Edited on main"))
    move(repo, "a/moved-there.md", "c/moved-there.md", text("Moved there, and edited on main"))
    commit_all(repo, "main: moved")
    commit(repo, "d/same.md", text("Same on both"))
    git(repo, "checkout", "-q", "mine")
    write_task(repo, "a/edited.md", text("Edited here"))
    move(repo, "a/moved-here.md", "b/moved-here.md", text("Moved here, and edited here"))
    write_task(repo, "e/same.md", text("Same on both"))
    assert task(repo, "validate", "--base", "main").stdout == ""


@pytest.mark.planning
def test_collision_needs_a_base_ref(repo: Path) -> None:
    collision_repo(repo)
    git(repo, "branch", "-q", "-m", "main", "trunk")  # base_ref 'main' is gone
    assert task(repo, "validate").stdout == ""
    assert (
        "slug 'fix-login' is also trunk:tasks/b/fix-login.md"
        in task(repo, "validate", "--base", "trunk", code=1).stdout
    )
    missing = task(repo, "validate", "--base", "nope", code=3)
    assert "git ref 'nope' does not exist" in missing.stderr


@pytest.mark.planning
def test_validate_in_a_repository_without_commits(repo: Path) -> None:
    write_task(repo, "a.md", text("A", "colour: red"))
    done = task(repo, "validate", "--format", "github")
    assert done.stdout.startswith("::warning file=tasks/a.md,line=3,title=unknown_key::")


# -- the README's CI files, run as the CI services run them -----------------------------------------


def readme_yaml(first_line: str) -> dict[Any, Any]:
    """The YAML block of README's CI section that starts with ``first_line``, parsed."""
    section = README.read_text(encoding="utf-8").split("## Validating in pre-commit and CI", 1)[1]
    blocks = re.findall(r"```yaml\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    found = [block for block in blocks if block.startswith(first_line + "\n")]
    assert len(found) == 1, f"README has {len(found)} yaml blocks starting {first_line!r}"
    data = yaml.safe_load(found[0])
    assert isinstance(data, dict)
    return data


def shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``script`` as a runner runs a step: bash, stop at the first failure, in ``cwd``."""
    environment = {**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=environment,
    )


INSTALL = 'pip install "taskfiles @ git+https://github.com/your-org/taskfiles@v0.1.0"'


def pull_request(origin: Path, tmp_path: Path) -> Path:
    """A clone checked out as GitHub checks out a pull request: feature merged into main."""
    push_branch(
        origin,
        tmp_path,
        "feature",
        {"new-thing.md": text("New thing", "status: ready"), "broken.md": text("Broken", "status: doing")},
    )
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "--detach", "origin/main")
    git(work, "merge", "-q", "--no-ff", "--no-edit", "origin/feature")
    return work


def run_github_steps(workflow: dict[str, Any], work: Path, env: dict[str, str]) -> list[Any]:
    """Each run step of the workflow's job, in order, as the runner would (skipping the
    install and the steps whose ``if`` is false for this event)."""
    (job,) = workflow["jobs"].values()
    results = []
    for step in job["steps"]:
        if "run" not in step:
            continue
        if step["run"] == INSTALL:  # this virtualenv has taskfiles installed already
            continue
        condition = step.get("if")
        assert condition in (None, "github.event_name == 'pull_request'"), condition
        if condition and env["GITHUB_EVENT_NAME"] != "pull_request":
            continue
        results.append((step["run"], shell(step["run"], work, env)))
    return results


def test_readme_github_workflow_annotates_and_summarises_a_pull_request(origin: Path, tmp_path: Path) -> None:
    workflow = readme_yaml("# .github/workflows/tasks.yml")
    (job,) = workflow["jobs"].values()
    uses = {step["uses"].split("@")[0]: step.get("with", {}) for step in job["steps"] if "uses" in step}
    assert uses["actions/checkout"] == {"fetch-depth": 0}
    assert "python-version" in uses["actions/setup-python"]
    assert set(workflow[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key 'on' as true
    work = pull_request(origin, tmp_path)
    summary = tmp_path / "step_summary.md"
    env = {
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_BASE_REF": "main",
        "GITHUB_HEAD_REF": "feature",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_WORKSPACE": str(work),
    }
    (changes, summarised), (validate, validated) = run_github_steps(workflow, work, env)
    assert changes.startswith("task changes") and summarised.returncode == 0
    written = summary.read_text(encoding="utf-8")
    assert written.startswith("### Task changes") and "**1 added**" in written
    assert "| added | `new-thing` | New thing | p2, ready |" in written
    assert "| head | tasks/broken.md:3 | status 'doing' is not one of" in written  # unreadable there
    assert validate.startswith("task validate") and validated.returncode == 1
    annotations = [parse_annotation(line) for line in validated.stdout.splitlines()]
    assert [(a["path"], a["line"], a["severity"], a["code"]) for a in annotations] == [
        ("tasks/broken.md", 3, "error", "bad_status")
    ]


def test_readme_github_workflow_on_a_push_validates_only(origin: Path, tmp_path: Path) -> None:
    workflow = readme_yaml("# .github/workflows/tasks.yml")
    work = clone(origin, tmp_path / "work")
    summary = tmp_path / "step_summary.md"
    env = {"GITHUB_EVENT_NAME": "push", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(work)}
    ((validate, validated),) = run_github_steps(workflow, work, env)
    assert validate.startswith("task validate")
    assert (validated.returncode, validated.stdout) == (0, "")
    assert not summary.exists()


def test_readme_gitlab_job_reports_a_slug_collision_with_the_target_branch(
    origin: Path, tmp_path: Path
) -> None:
    job = readme_yaml("# .gitlab-ci.yml")["tasks"]
    assert job["variables"] == {"GIT_DEPTH": "0"}
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    push_branch(origin, tmp_path, "feature", {"web/fix-login.md": text("Fix login in the web app")})
    push_branch(origin, tmp_path, "main", {"api/fix-login.md": text("Fix login in the API")})
    work = clone(origin, tmp_path / "work")
    git(work, "checkout", "-q", "--detach", "origin/feature")  # the merge request's source head
    git(work, "update-ref", "-d", "refs/remotes/origin/main")  # fetched by the job itself
    env = {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
    }
    assert job["script"][0] == INSTALL
    outputs = []
    for line in job["script"][1:]:  # GitLab stops at the first line that fails
        done = shell(line, work, env)
        outputs.append(done)
        if done.returncode:
            break
    fetched, changes, validated = outputs
    assert fetched.returncode == 0 and changes.returncode == 0
    assert "added (1):\n  fix-login  p2, not_started  Fix login in the web app" in changes.stdout
    assert validated.returncode == 1
    assert validated.stdout.startswith(
        "tasks/web/fix-login.md:1: slug 'fix-login' is also origin/main:tasks/api/fix-login.md"
    )


@pytest.mark.planning
def test_slugs_across_branches_in_a_sha256_repository(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main", "--object-format=sha256")
    collision_repo(root)
    done = task(root, "validate", "--json", code=1)
    assert [p["code"] for p in json.loads(done.stdout)["problems"]] == ["slug_collision"]
    commit_all(root, "mine: fix login")
    assert task(root, "validate", "--ref", "mine", code=1).stdout.startswith("tasks/a/fix-login.md:1: slug")
    git(root, "checkout", "-q", "main")
    git(root, "rm", "-q", "tasks/b/fix-login.md")  # only the refs have the slug now
    done = task(root, "new", "Fix login")
    assert done.stdout == "tasks/fix-login-2.md\n"
    assert done.stderr == "slug fix-login is taken on main (tasks/b/fix-login.md); created fix-login-2\n"
