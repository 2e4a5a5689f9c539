"""``task init``: lay out taskfiles in a git repository without touching what is there."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .. import git
from ..errors import ConfigError

REGISTRY_GITIGNORE = """\
# The runtime registry is never committed: everything here but this file and README.md.
*
!.gitignore
!README.md
"""
REGISTRY_README = """\
# registry/

Runtime state of this repository's tasks (claims, leases, heartbeats, attempts,
events, logs), written by taskfiles' commands and workers. Never committed; the
planning record lives in tasks/.
"""
TASKS_README = """\
# tasks/

One markdown file per task, `tasks/[<workstream>/]<slug>.md`, with YAML frontmatter.
Create them with `task new "Title"`; check them with `task validate`. See SKILL.md.
"""
CONFIG = """\
# taskfiles configuration (see the taskfiles README for every key).
tasks_dir = "tasks"
registry_dir = "registry"
base_ref = "main"
# owners = ["alice", "bob"]
# owner_aliases = { al = "alice" }
"""


@dataclass(frozen=True)
class InitResult:
    """What ``init`` created and what it found already there (and kept)."""

    root: Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def init(start: Path) -> InitResult:
    """Create tasks/, registry/, the config and SKILL.md; never overwrite anything."""
    repo = git.discover(start)
    if repo is None:
        raise ConfigError(f"{start.as_posix()} is not inside a git repository; run 'git init' first")
    result = InitResult(repo.root)
    _mkdir(result, "tasks")
    _write(result, "tasks/README.md", TASKS_README)
    _mkdir(result, "registry")
    _write(result, "registry/.gitignore", REGISTRY_GITIGNORE)
    _write(result, "registry/README.md", REGISTRY_README)
    if _has_pyproject_section(repo.root):
        result.kept.append("pyproject.toml [tool.taskfiles]")
    else:
        _write(result, "taskfiles.toml", CONFIG)
    _write(result, "SKILL.md", skill_text())
    return result


def skill_text() -> str:
    """The agent guide shipped with the package."""
    return linked_text(Path(str(resources.files("taskfiles").joinpath("data/SKILL.md"))))


def linked_text(path: Path) -> str:
    """The text of ``path``, a symlink in the repository (``data/SKILL.md`` -> the root's).

    A wheel holds the file itself. A checkout without symlinks (Windows' default,
    ``core.symlinks=false``) holds a file whose text is the link's target: it is followed.
    """
    text = path.read_text(encoding="utf-8")
    target = text.strip()
    if target.startswith("../") and "\n" not in target and len(target) < 256:
        return (path.parent / target).read_text(encoding="utf-8")
    return text


def _has_pyproject_section(root: Path) -> bool:
    pyproject = root / "pyproject.toml"
    return pyproject.is_file() and "[tool.taskfiles]" in pyproject.read_text(encoding="utf-8")


def _mkdir(result: InitResult, rel: str) -> None:
    path = result.root / rel
    if path.is_dir():
        result.kept.append(rel + "/")
        return
    path.mkdir(parents=True)
    result.created.append(rel + "/")


def _write(result: InitResult, rel: str, text: str) -> None:
    path = result.root / rel
    if path.exists():
        result.kept.append(rel)
        return
    path.write_text(text, encoding="utf-8", newline="")  # LF on every system, as in the package
    result.created.append(rel)
