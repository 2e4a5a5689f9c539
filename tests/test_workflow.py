"""The CI workflow (.github/workflows/ci.yml): a job per system, and the commands each runs.

GitHub runs the file, not this machine, so these tests check what can be checked here: a
job for Linux, macOS and Windows; Linux runs ``.ci/run``, which runs ``make test``; macOS
runs ``make test`` with PostgreSQL required; Windows runs the planning tests, and its
command, run here with ``--collect-only``, selects every planning test (and no fewer than
``FLOOR``); the make targets, scripts, Python versions, actions and pins it names are real.
Each check is a function of the parsed workflow and the repository; the last test breaks a
copy of the workflow (or of the repository) in one way at a time and sees the check meant to
catch that way fail.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
SYSTEMS = ("ubuntu", "macos", "windows")
# The planning tests numbered 743 when the workflow was written: a Windows run that selects
# far fewer has lost modules (a marker dropped, a file list that misses them).
FLOOR = 590

Workflow = dict[Any, Any]
Check = Callable[[Workflow, Path], None]


def load(path: Path = WORKFLOW) -> Workflow:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a YAML mapping"
    return data


def job_for(workflow: Workflow, system: str) -> dict[str, Any]:
    """The one job that runs on ``system`` (``runs-on: <system>-latest`` or a version)."""
    jobs = [job for job in workflow["jobs"].values() if str(job.get("runs-on", "")).startswith(f"{system}-")]
    assert len(jobs) == 1, f"{WORKFLOW.name} has {len(jobs)} jobs on {system}, not one"
    job: dict[str, Any] = jobs[0]
    return job


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def command_lines(script: str) -> list[str]:
    """The lines of a shell script that run something (comments and blank lines left out)."""
    return [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]


def step_env(workflow: Workflow, job: dict[str, Any], step: dict[str, Any]) -> dict[str, str]:
    """The variables a step runs with: the workflow's, the job's, the step's own."""
    return {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}


# -- the checks ----------------------------------------------------------------------------------


def check_triggers(workflow: Workflow, root: Path) -> None:
    """Every push and every pull request runs it (PyYAML reads the key ``on`` as True)."""
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict | list), f"no 'on' triggers: {triggers!r}"
    assert {"push", "pull_request"} <= set(triggers), f"triggers: {sorted(triggers)}"


def check_systems(workflow: Workflow, root: Path) -> None:
    """A job per system; a failure on one Python version does not cancel the others."""
    for system in SYSTEMS:
        job = job_for(workflow, system)
        if "strategy" in job:
            assert job["strategy"].get("fail-fast") is False, f"the {system} job's matrix is fail-fast"


def check_linux(workflow: Workflow, root: Path) -> None:
    """Linux runs the project's own CI entry, and that entry runs ``make test``."""
    steps = [command_lines(run) for run in runs(job_for(workflow, "ubuntu"))]
    assert [".ci/run"] in steps, f"no Linux step runs .ci/run alone: {steps}"
    script = (root / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in command_lines(script), ".ci/run does not run 'make test'"


def check_macos(workflow: Workflow, root: Path) -> None:
    """macOS runs the whole suite (``make test``) with a missing PostgreSQL a failure."""
    job = job_for(workflow, "macos")
    steps = [step for step in job["steps"] if "make test" in command_lines(step.get("run", ""))]
    assert len(steps) == 1, f"{len(steps)} macOS steps run 'make test'"
    required = step_env(workflow, job, steps[0]).get("TASKFILES_REQUIRE_POSTGRES")
    assert required == "1", f"make test runs with TASKFILES_REQUIRE_POSTGRES={required!r} on macOS"


def windows_pytest(workflow: Workflow) -> str:
    found = [run for run in runs(job_for(workflow, "windows")) if " -m pytest " in run]
    assert len(found) == 1, f"{len(found)} Windows steps run pytest"
    return found[0]


def check_windows(workflow: Workflow, root: Path) -> None:
    """Windows runs the planning tests with a timeout that needs no SIGALRM, and its command
    selects every planning test (its file list misses none) and at least ``FLOOR``."""
    command = windows_pytest(workflow)
    assert re.search(r"(^|\s)-m planning(\s|$)", command), f"not '-m planning': {command}"
    assert "-o timeout_method=thread" in command, f"the signal timeout needs SIGALRM: {command}"
    assert " -X utf8 -m pytest " in command, f"the tests read task's UTF-8 output in cp1252: {command}"
    markers = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]
    assert any(m.startswith("planning:") for m in markers["ini_options"].get("markers", [])), (
        "the planning marker is not registered in pyproject.toml"
    )
    selected = collect_with(command, root)
    every = planning_tests(root)
    assert selected == every, (
        f"the Windows command leaves out {len(every - selected)} planning tests, "
        f"e.g. {sorted(every - selected)[:3]}; and selects {len(selected - every)} others"
    )
    assert len(selected) >= FLOOR, f"only {len(selected)} planning tests (at least {FLOOR} expected)"


def collect_with(command: str, root: Path) -> set[str]:
    """The test ids a ``python -m pytest ...`` command line selects, run here in bash (as
    the Windows job runs it) with this interpreter and ``--collect-only``."""
    rest = command.split(" -m pytest ", 1)[1]
    here = f"{shlex.quote(sys.executable)} -m pytest {rest} --collect-only --verbosity=-1 -p no:cacheprovider"
    done = subprocess.run(["bash", "-c", here], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"collecting failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr}"
    return {line for line in done.stdout.splitlines() if "::" in line}


@cache
def planning_tests(root: Path) -> set[str]:
    """Every test marked planning, collected from the whole tests folder."""
    return collect_with(f"{sys.executable} -m pytest -m planning", root)


def check_make_targets(workflow: Workflow, root: Path) -> None:
    """Each ``make X`` the workflow runs is a target of the Makefile (``make -n X``)."""
    targets = {
        target
        for job in workflow["jobs"].values()
        for run in runs(job)
        for target in re.findall(r"(?:^|[\s;&|(])make\s+([^\s;&|)]+)", run)
    }
    assert targets, "the workflow runs no make target"
    for target in sorted(targets):
        done = subprocess.run(["make", "-n", target], cwd=root, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"make -n {target}: {done.stderr.strip()}"


REPO_PATH = re.compile(r"\.?[\w-]+(/[\w.-]+)+")


def check_paths(workflow: Workflow, root: Path) -> None:
    """Each repository file a step names exists, and is executable where it is the command
    (``.venv/`` is what the job builds; words with ``$`` or ``*`` are the shell's)."""
    named = 0
    for job in workflow["jobs"].values():
        for run in runs(job):
            for line in command_lines(run):
                for position, word in enumerate(shlex.split(line)):
                    if not REPO_PATH.fullmatch(word) or word.startswith(".venv/"):
                        continue
                    named += 1
                    path = root / word
                    assert path.exists(), f"{word} (named by the step {line!r}) does not exist"
                    if position == 0:
                        assert os.access(path, os.X_OK), f"{word} is run directly but is not executable"
    assert named, "the workflow names no file of the repository"


def check_python_versions(workflow: Workflow, root: Path) -> None:
    """Every Python a job sets up is one the package supports (``requires-python``)."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    supported = SpecifierSet(project["requires-python"])
    for name, job in workflow["jobs"].items():
        wanted = [
            str(step["with"]["python-version"])
            for step in job["steps"]
            if str(step.get("uses", "")).startswith("actions/setup-python@")
        ]
        matrix = job.get("strategy", {}).get("matrix", {})
        versions = [str(v) for w in wanted for v in (matrix["python"] if "matrix.python" in w else [w])]
        assert versions, f"the {name} job sets up no Python"
        for version in versions:
            assert supported.contains(version), f"the {name} job's Python {version} is not {supported}"


def check_actions(workflow: Workflow, root: Path) -> None:
    """Actions are pinned by major version (``actions/checkout@v4``), not a branch."""
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+", step["uses"]), f"unpinned: {step['uses']}"


def check_windows_pins(workflow: Workflow, root: Path) -> None:
    """What Windows installs besides the package carries the dev extra's own pins."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dev = set(project["optional-dependencies"]["dev"])
    lines = [
        line
        for run in runs(job_for(workflow, "windows"))
        for line in command_lines(run)
        if "pip install" in line
    ]
    assert len(lines) == 1, f"{len(lines)} pip install lines on Windows"
    words = shlex.split(lines[0].split("pip install", 1)[1])
    requirements = [w for w in words if not w.startswith("-") and w != "."]
    assert requirements, "Windows installs no test tools"
    for requirement in requirements:
        assert requirement in dev, f"{requirement!r} is not as the dev extra pins it ({sorted(dev)})"


CHECKS: list[Check] = [
    check_triggers,
    check_systems,
    check_linux,
    check_macos,
    check_windows,
    check_make_targets,
    check_paths,
    check_python_versions,
    check_actions,
    check_windows_pins,
]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
def test_the_workflow(check: Check) -> None:
    check(load(), ROOT)


# -- each check fails on a workflow broken its way ---------------------------------------------------


def replace_in_runs(job: dict[str, Any], old: str, new: str) -> None:
    """Replace ``old`` in the job's run steps (it must be there: the case breaks something)."""
    hits = [step for step in job["steps"] if old in step.get("run", "")]
    assert hits, f"no run step has {old!r}"
    for step in hits:
        step["run"] = step["run"].replace(old, new)


def on_system(system: str, change: Callable[[dict[str, Any]], None]) -> Callable[[Workflow], None]:
    return lambda workflow: change(job_for(workflow, system))


def setup_python(job: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup"))
    return step


def without_line(path: Path, pattern: str) -> None:
    """Delete the lines of ``path`` that match ``pattern`` (there must be one)."""
    text, count = re.subn(rf"(?m)^{pattern}.*\n", "", path.read_text(encoding="utf-8"))
    assert count, f"{path.name} has no line matching {pattern!r}"
    path.write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class Broken:
    """One way to break the workflow (or, with ``repository``, a copy of the files of the
    repository it names) and the check that must catch it."""

    check: Check
    workflow: Callable[[Workflow], object] | None = None
    repository: Callable[[Path], object] | None = None


def windows_runs(old: str, new: str) -> Callable[[Workflow], None]:
    return on_system("windows", lambda job: replace_in_runs(job, old, new))


BROKEN: dict[str, Broken] = {
    "no pull request trigger": Broken(check_triggers, lambda w: w[True].pop("pull_request")),
    "no Windows job": Broken(check_systems, lambda w: w["jobs"].pop("windows")),
    "a fail-fast matrix": Broken(
        check_systems, on_system("macos", lambda job: job["strategy"].update({"fail-fast": True}))
    ),
    "Linux runs make test itself": Broken(
        check_linux, on_system("ubuntu", lambda job: replace_in_runs(job, ".ci/run", "make test"))
    ),
    ".ci/run without make test": Broken(
        check_linux, repository=lambda root: without_line(root / ".ci/run", "make test")
    ),
    "macOS without PostgreSQL required": Broken(check_macos, on_system("macos", lambda job: job.pop("env"))),
    "macOS runs pytest alone": Broken(
        check_macos, on_system("macos", lambda job: replace_in_runs(job, "make test", ".venv/bin/pytest -q"))
    ),
    "Windows runs every test": Broken(check_windows, windows_runs("-m planning ", "")),
    "Windows with the signal timeout": Broken(check_windows, windows_runs("-o timeout_method=thread ", "")),
    "Windows reads output in its code page": Broken(check_windows, windows_runs("-X utf8 ", "")),
    "Windows lists only whole modules": Broken(
        check_windows, windows_runs(r"^(pytestmark = \[?|@)", "^pytestmark = ")
    ),
    "the marker not registered": Broken(
        check_windows, repository=lambda root: without_line(root / "pyproject.toml", '    "planning:')
    ),
    "a make target that does not exist": Broken(
        check_make_targets,
        on_system("macos", lambda job: replace_in_runs(job, "make .venv/.installed", "make .venv/installed")),
    ),
    "a script that does not exist": Broken(
        check_paths, on_system("ubuntu", lambda job: replace_in_runs(job, ".ci/run", ".ci/runs"))
    ),
    "a script that is not executable": Broken(
        check_paths, repository=lambda root: (root / ".ci/run").chmod(0o644)
    ),
    "Python 3.10 in a matrix": Broken(
        check_python_versions,
        on_system("ubuntu", lambda job: job["strategy"]["matrix"]["python"].append("3.10")),
    ),
    "Python 3.10 without a matrix": Broken(
        check_python_versions,
        on_system("windows", lambda job: setup_python(job)["with"].update({"python-version": "3.10"})),
    ),
    "an action on a branch": Broken(
        check_actions,
        on_system("ubuntu", lambda job: job["steps"][0].update({"uses": "actions/checkout@main"})),
    ),
    "Windows pytest-timeout unpinned": Broken(
        check_windows_pins, windows_runs('"pytest-timeout==2.4.0"', "pytest-timeout")
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_workflow_broken_this_way_fails_its_check(case: str, tmp_path: Path) -> None:
    broken = BROKEN[case]
    workflow = copy.deepcopy(load())
    if broken.workflow:
        broken.workflow(workflow)
    root = ROOT
    if broken.repository:
        root = tmp_path / "repo"
        (root / ".ci").mkdir(parents=True)
        for name in (".ci/run", "Makefile", "pyproject.toml"):
            shutil.copy2(ROOT / name, root / name)
        broken.repository(root)
    with pytest.raises(AssertionError):
        broken.check(workflow, root)
