"""The task-file merge driver (``merge``) in a repository: install it, remove it, say if it is there.

Two settings make git use it. ``.gitattributes`` (committed, so every clone knows which
files it is for) gets ``<tasks_dir>/**/*.md merge=taskfiles``; the repository's own git
config (``.git/config``: git never runs a command that a clone brings in) gets
``[merge "taskfiles"]`` with the command. A clone with the attribute but without the
config merges task files as text, as git always did.

The command is this interpreter's ``-P -m taskfiles``, by its full path: git runs drivers
from IDEs and hooks whose PATH may not have the virtualenv's ``task`` on it. ``-P``: git
runs it in the work tree, and plain ``-m`` would import a ``taskfiles`` folder a branch
committed there before the installed package, running the branch's code. When that
interpreter moves (a virtualenv made anew elsewhere), ``state`` says so and ``install``
writes the new one.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import atomic, git
from ..config import Config
from ..errors import ConfigError, ConflictError, TaskFileError, UsageError

__all__ = ["ATTRIBUTES", "DriverState", "attribute_line", "driver_command", "install", "state", "uninstall"]

NAME = "taskfiles"
SECTION = f"merge.{NAME}"
ATTRIBUTES = ".gitattributes"
DESCRIPTION = "taskfiles: task files merged key by key (task merge-driver install)"
ADDED_LINE = "addedattribute"  # set when install wrote the .gitattributes line in this clone
OUR_RUN = "-m taskfiles merge-driver run"  # in every command install writes, whichever interpreter
_GLOB = re.compile(r"([*?\[\\])")


@dataclass(frozen=True)
class DriverState:
    """What a repository has of the driver, against what ``install`` writes."""

    attribute: str  # the .gitattributes line
    has_attribute: bool
    command: str | None  # merge.taskfiles.driver as configured
    expected: str  # the command install writes
    effective: str  # what git says the merge attribute of a task file is

    @property
    def installed(self) -> bool:
        """Both settings are there (the command may be another interpreter's)."""
        return self.has_attribute and self.command is not None

    @property
    def missing(self) -> list[str]:
        """What install would add: the attribute line, the config section, both or neither."""
        parts = [(f"{ATTRIBUTES} line", self.has_attribute), ("git config section", self.command is not None)]
        return [part for part, there in parts if not there]

    @property
    def current(self) -> bool:
        """Installed with this interpreter's command, and no later attribute overrides it."""
        return self.installed and self.command == self.expected and self.effective == NAME

    def to_dict(self) -> dict[str, Any]:
        """JSON form: installed, current, attribute, has_attribute, command, expected, effective."""
        return {
            "installed": self.installed,
            "current": self.current,
            "attribute": self.attribute,
            "has_attribute": self.has_attribute,
            "command": self.command,
            "expected": self.expected,
            "effective": self.effective,
        }


def driver_command() -> str:
    """The command git runs for a task file both branches changed (a shell line: the
    interpreter's path is quoted; git quotes the %P path itself)."""
    # Forward slashes: git runs the line with sh on every system, Windows' too.
    python = shlex.quote(Path(sys.executable).as_posix())
    return f"{python} -P -m taskfiles merge-driver run %O %A %B %L %P"


def attribute_line(cfg: Config) -> str:
    """``<tasks_dir>/**/*.md merge=taskfiles``, the folder written as git reads patterns."""
    if not cfg.tasks_dir.is_relative_to(cfg.root):
        raise UsageError(
            f"tasks_dir {cfg.relpath(cfg.tasks_dir)} is outside the repository {cfg.root.as_posix()}; "
            "a .gitattributes pattern can only name files inside it"
        )
    folder = cfg.relpath(cfg.tasks_dir)
    pattern = "*.md" if folder == "." else _GLOB.sub(r"\\\1", folder) + "/**/*.md"
    if re.search(r'[\s"]', pattern) or pattern[0] in "#!":
        pattern = '"' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{pattern} merge={NAME}"


def state(cfg: Config) -> DriverState:
    """What the repository around ``cfg`` has of the driver."""
    root = _root(cfg)
    line = attribute_line(cfg)
    probe = cfg.relpath(cfg.tasks_dir / "example.md")
    return DriverState(
        attribute=line,
        has_attribute=line in _attribute_lines(root),
        command=git.config_get(root, f"{SECTION}.driver"),
        expected=driver_command(),
        effective=git.check_attr(root, "merge", probe),
    )


def install(cfg: Config) -> list[str]:
    """Add the attribute line and the config section where missing or out of date; return
    what changed, one sentence each (none: it was all there)."""
    root = _root(cfg)
    line = attribute_line(cfg)
    command = driver_command()
    configured = git.config_get(root, f"{SECTION}.driver")
    if configured is not None and OUR_RUN not in configured:
        raise ConflictError(
            f'{_config_file(cfg)} already has a [merge "{NAME}"] driver that is not this tool\'s '
            f"({configured}); remove it first (git config --remove-section {SECTION}) if it may go"
        )
    changes = []
    if _add_line(root / ATTRIBUTES, line):
        git.config_set(root, f"{SECTION}.{ADDED_LINE}", "true")  # so uninstall takes only its own line
        changes.append(f"added '{line}' to {ATTRIBUTES}")
    if configured != command:
        git.config_set(root, f"{SECTION}.name", DESCRIPTION)
        git.config_set(root, f"{SECTION}.driver", command)
        was = "" if configured is None else f" (was: {configured})"
        changes.append(f'set [merge "{NAME}"] driver = {command} in {_config_file(cfg)}{was}')
    return changes


def uninstall(cfg: Config) -> list[str]:
    """Remove what ``install`` adds (the attribute line, the config section) and nothing
    else; return what changed (none: it was not there)."""
    root = _root(cfg)
    line = attribute_line(cfg)
    changes = []
    if git.config_get(root, f"{SECTION}.{ADDED_LINE}") == "true" and _remove_line(root / ATTRIBUTES, line):
        changes.append(f"removed '{line}' from {ATTRIBUTES}")
    elif line in _attribute_lines(root):
        changes.append(f"kept '{line}' in {ATTRIBUTES}: install did not add it in this clone")
    if any(git.config_get(root, f"{SECTION}.{key}") is not None for key in ("driver", "name")):
        git.config_remove_section(root, SECTION)
        changes.append(f'removed [merge "{NAME}"] from {_config_file(cfg)}')
    return changes


def _root(cfg: Config) -> Path:
    if cfg.repo is None:
        raise ConfigError(f"{cfg.root.as_posix()} is not inside a git repository; run 'git init' first")
    return cfg.root


def _config_file(cfg: Config) -> str:
    assert cfg.repo is not None  # _root checked it
    return cfg.relpath(cfg.repo.common_dir / "config")


def _read(path: Path) -> str:
    """A file at the top of the worktree (``.gitattributes``): its name is its path in messages."""
    try:
        return path.read_bytes().decode("utf-8")  # as it is: read_text would turn CRLF into LF
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"cannot read {path.name}: {getattr(exc, 'strerror', None) or exc}") from None


def _attribute_lines(root: Path) -> list[str]:
    return [line.rstrip("\r") for line in _read(root / ATTRIBUTES).split("\n")]


def _add_line(path: Path, line: str) -> bool:
    text = _read(path)
    if line in (old.rstrip("\r") for old in text.split("\n")):
        return False
    eol = "\r\n" if "\r\n" in text else "\n"
    _write(path, text + ("" if not text or text.endswith("\n") else eol) + line + eol)
    return True


def _remove_line(path: Path, line: str) -> bool:
    text = _read(path)
    lines = text.split("\n")
    kept = [old for old in lines if old.rstrip("\r") != line]
    if len(kept) == len(lines):
        return False
    rest = "\n".join(kept)
    if rest:
        _write(path, rest)
    else:
        path.unlink()  # install made it: nothing else was ever in it
    return True


def _write(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    try:
        atomic.atomic_write(path, text.encode("utf-8"), mode=mode)
    except OSError as exc:
        raise TaskFileError(f"cannot write {path.name}: {exc.strerror}") from None
