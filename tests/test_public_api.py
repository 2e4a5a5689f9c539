"""The library API: exactly the names ``taskfiles.__all__`` promises (README lists them), each
importable, none loaded before it is used, and enough to drive the queue from a program."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import taskfiles

from .conftest import commit_all, write_task

PUBLIC = [
    "Classification",
    "Config",
    "ConfigError",
    "ConflictError",
    "GitError",
    "NotFoundError",
    "Observation",
    "Registry",
    "RegistryEntry",
    "RegistryError",
    "StaleLeaseError",
    "Task",
    "TaskFileError",
    "TaskSet",
    "TaskfilesError",
    "UsageError",
    "ValidationFailed",
    "load_config",
    "load_tasks",
    "observe",
    "open_registry",
    "planning_source",
]


def test_all_is_exactly_the_public_names_and_each_one_resolves() -> None:
    assert sorted(taskfiles.__all__) == PUBLIC
    namespace: dict[str, object] = {}
    exec("from taskfiles import *", namespace)
    assert sorted(name for name in namespace if not name.startswith("__")) == PUBLIC
    assert issubclass(taskfiles.StaleLeaseError, taskfiles.ConflictError)
    assert issubclass(taskfiles.ConflictError, taskfiles.TaskfilesError)


def test_importing_the_package_loads_none_of_the_layers() -> None:
    code = "import sys, taskfiles; print(sorted(m for m in sys.modules if m.startswith('taskfiles.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        taskfiles.nothing_here  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "nothing_here" in str(error)
    else:
        raise AssertionError("taskfiles.nothing_here resolved")


def test_a_program_drives_the_queue_with_the_public_names_only(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\npriority: p0\n---\n")
    write_task(repo, "b.md", "---\ntitle: B\nstatus: ready\ndepends_on: [a]\n---\n")
    commit_all(repo)
    config = taskfiles.load_config(repo)
    tasks = taskfiles.load_tasks(config, "main")
    assert [task.slug for task in tasks.tasks] == ["a", "b"]
    registry = taskfiles.open_registry(config)
    entry = registry.claim("a", worker="my-program")
    seen = taskfiles.observe(
        config, registry, now=datetime.now(UTC), source=taskfiles.planning_source(config)
    )
    assert isinstance(seen, taskfiles.Observation)
    assert {c.slug: c.bucket for c in seen.rows} == {"a": "active", "b": "waiting"}
    assert seen.by_slug["a"].entry == entry and seen.dispatchable() == []
    try:
        registry.claim("a", worker="someone-else")
    except taskfiles.ConflictError as refused:
        assert "live claim" in str(refused)
    else:
        raise AssertionError("a second claim of a live task succeeded")
