"""Configuration: ``[tool.taskfiles]`` in pyproject.toml, or ``taskfiles.toml``.

Both are read from the top of the current worktree; ``taskfiles.toml`` wins
when both exist. Every key has a default, so a repository without any
configuration works.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import git
from .errors import ConfigError

DEFAULT_PRIORITIES = ("p0", "p1", "p2", "p3")
REGISTRY_ENV = "TASKFILES_REGISTRY"


@dataclass(frozen=True)
class Config:
    """Resolved settings for one worktree of one repository."""

    root: Path  # top of the current worktree
    tasks_dir: Path
    registry_dir: Path
    base_ref: str = "main"
    owners: tuple[str, ...] = ()
    owner_aliases: dict[str, str] = field(default_factory=dict)
    priorities: tuple[str, ...] = DEFAULT_PRIORITIES
    default_priority: str = "p2"
    max_file_bytes: int = 1_048_576
    source: Path | None = None  # the file the settings came from, if any
    repo: git.RepoPaths | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the whole section, for later parts

    def canonical_owner(self, owner: str | None) -> str | None:
        """Collapse an owner alias to its canonical name (case-insensitive)."""
        if owner is None:
            return None
        return self.owner_aliases.get(owner.lower(), owner)

    @property
    def git_dir(self) -> Path | None:
        """This worktree's private git folder (home of the parse cache)."""
        return self.repo.git_dir if self.repo else None

    def relpath(self, path: Path) -> str:
        """``path`` relative to the worktree root, posix style."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()


def load(start: Path | None = None) -> Config:
    """Find the repository around ``start`` (default: cwd) and read its settings."""
    here = (start or Path.cwd()).resolve()
    repo = git.discover(here)
    root = repo.root if repo else here
    source, section = _read_section(root)
    return _build(root, repo, source, section)


def _read_section(root: Path) -> tuple[Path | None, dict[str, Any]]:
    standalone = root / "taskfiles.toml"
    if standalone.is_file():
        return standalone, _parse_toml(standalone)
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        section = _parse_toml(pyproject).get("tool", {}).get("taskfiles")
        if section is not None:
            return pyproject, _require_table(pyproject, "tool.taskfiles", section)
    return None, {}


def _parse_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}; fix the file or remove it") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc


def _require_table(path: Path, name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return value


def _build(root: Path, repo: git.RepoPaths | None, source: Path | None, raw: dict[str, Any]) -> Config:
    where = str(source) if source else "configuration"
    owners = _str_list(raw.get("owners", []), f"{where}: owners")
    aliases = _aliases(raw.get("owner_aliases", {}), owners, where)
    priorities = _str_list(raw.get("priorities", list(DEFAULT_PRIORITIES)), f"{where}: priorities")
    if not priorities:
        raise ConfigError(f"{where}: priorities must name at least one priority")
    default_priority = str(raw.get("default_priority", "p2" if "p2" in priorities else priorities[-1]))
    if default_priority not in priorities:
        raise ConfigError(
            f"{where}: default_priority {default_priority!r} is not one of {', '.join(priorities)}"
        )
    return Config(
        root=root,
        tasks_dir=(root / str(raw.get("tasks_dir", "tasks"))).resolve(),
        registry_dir=_registry_dir(root, repo, raw),
        base_ref=str(raw.get("base_ref", "main")),
        owners=tuple(owners),
        owner_aliases=aliases,
        priorities=tuple(priorities),
        default_priority=default_priority,
        max_file_bytes=int(raw.get("max_file_bytes", 1_048_576)),
        source=source,
        repo=repo,
        raw=raw,
    )


def _registry_dir(root: Path, repo: git.RepoPaths | None, raw: dict[str, Any]) -> Path:
    from_env = os.environ.get(REGISTRY_ENV)
    if from_env:
        return Path(from_env).expanduser().resolve()
    # Linked worktrees share the main worktree's registry, found through the common dir.
    main_root = repo.main_root if repo else root
    return (main_root / str(raw.get("registry_dir", "registry"))).resolve()


def _str_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{what} must be a list of strings, e.g. ["alice", "bob"]')
    return value


def _aliases(value: object, owners: list[str], where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: owner_aliases must be a table of alias = "owner"')
    aliases: dict[str, str] = {}
    for alias, canonical in value.items():
        if not isinstance(canonical, str):
            raise ConfigError(f"{where}: owner_aliases.{alias} must be a string")
        if owners and canonical not in owners:
            raise ConfigError(
                f"{where}: owner_aliases.{alias} points at {canonical!r}, "
                f"which is not in owners ({', '.join(owners)})"
            )
        aliases[alias.lower()] = canonical
    return aliases
