"""Configuration: ``[tool.taskfiles]`` in pyproject.toml, or ``taskfiles.toml``.

Both are read from the top of the current worktree; ``taskfiles.toml`` wins
when both exist. Every key has a default, so a repository without any
configuration works.
"""

from __future__ import annotations

import marshal
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from . import git
from .errors import ConfigError, UsageError, reason

if TYPE_CHECKING:  # re-exported: module __getattr__ below loads them at run time
    from .settings import DEFAULT_AGENT as DEFAULT_AGENT
    from .settings import MAX_DAYS as MAX_DAYS
    from .settings import HeartbeatSettings as HeartbeatSettings
    from .settings import Limits as Limits
    from .settings import LogSettings as LogSettings
    from .settings import WorkerSettings as WorkerSettings
    from .settings import agent_profiles as agent_profiles

DEFAULT_PRIORITIES = ("p0", "p1", "p2", "p3")
REGISTRY_ENV = "TASKFILES_REGISTRY"
REGISTRY_URL_ENV = "TASKFILES_REGISTRY_URL"
# The parsed TOML, kept while its file is unchanged: importing tomllib is ~2 ms of every
# command, reading this a few µs. Per worktree, beside the parse caches.
TOML_CACHE = "config.marshal"
TOML_CACHE_FORMAT = 1
RACY_NS = 2_000_000_000  # a file changed this recently is parsed but not kept (plan/cache.py)
# The settings sections live in settings.py, imported on first use; their names are
# still importable from here.
SETTINGS = frozenset(
    {
        "WorkerSettings",
        "HeartbeatSettings",
        "LogSettings",
        "Limits",
        "agent_profiles",
        "DEFAULT_AGENT",
        "MAX_DAYS",
    }
)


def __getattr__(name: str) -> Any:
    if name in SETTINGS:
        from . import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    registry_url: str | None = None  # a PostgreSQL registry (None: the JSON files in registry_dir)

    def canonical_owner(self, owner: str | None) -> str | None:
        """Collapse an owner alias to its canonical name (case-insensitive)."""
        if owner is None:
            return None
        return self.owner_aliases.get(owner.lower(), owner)

    def owner_named(self, name: str) -> str:
        """The canonical owner ``name`` stands for, as a command option names one.

        UsageError for an empty name, and, when ``owners`` is configured, for a name that
        is neither a configured owner nor an alias (a typo in a cron line would otherwise
        match nothing, silently); the message suggests the closest one.
        """
        if not name.strip():
            raise UsageError("the owner is empty; name one, e.g. --owner alice")
        canonical = self.canonical_owner(name) or name
        if not self.owners or canonical in self.owners:
            return canonical
        close = self.closest_owner(name)
        hint = f"did you mean '{close}'? " if close else ""
        aliases = f"; aliases: {', '.join(sorted(self.owner_aliases))}" if self.owner_aliases else ""
        raise UsageError(
            f"owner {name!r} is not one of the configured owners ({', '.join(self.owners)}{aliases}); "
            f"{hint}use one of them, or add it to owners in {self._source_name}"
        )

    def closest_owner(self, name: str) -> str | None:
        """The configured owner or alias most like ``name`` (case-insensitive), or None."""
        import difflib  # only on a miss: most commands never need it

        names = {known.lower(): known for known in (*self.owners, *self.owner_aliases)}
        close = difflib.get_close_matches(name.lower(), names, n=1)
        return names[close[0]] if close else None

    @property
    def has_registry(self) -> bool:
        """Whether a registry may hold anything yet: a database is named, or the JSON store's
        folder exists (a repository where nothing ever ran has none, and read-only views
        need not open, or create, one)."""
        return self.registry_url is not None or self.registry_dir.exists()

    @property
    def git_dir(self) -> Path | None:
        """This worktree's private git folder (home of the parse cache)."""
        return self.repo.git_dir if self.repo else None

    @cached_property
    def worker(self) -> WorkerSettings:
        """``[worker]``: what the worker wrapper runs and the limits it enforces."""
        from .settings import WorkerSettings

        return WorkerSettings.from_raw(self.raw.get("worker", {}), self._where("worker"))

    @cached_property
    def agents(self) -> Mapping[str, WorkerSettings]:
        """``[agents.NAME]``: named agent profiles, each ``[worker]`` with its own command
        (and, when given, its own ``deadline_seconds`` and ``cost_cap_usd``)."""
        from .settings import agent_profiles

        return agent_profiles(self.raw.get("agents", {}), self.worker, self._where("agents"))

    def worker_for(self, agent: str | None) -> WorkerSettings:
        """The settings an attempt runs with when its task names ``agent`` (None or
        ``default``: ``[worker]``); ConfigError for a profile that is not configured."""
        from .settings import DEFAULT_AGENT

        if agent is None or agent == DEFAULT_AGENT:
            return self.worker
        profile = self.agents.get(agent)
        if profile is None:
            raise ConfigError(self.unknown_agent(agent))
        return profile

    def unknown_agent(self, agent: str) -> str:
        """The message for a task naming an agent profile that is not configured."""
        import difflib  # only on a miss

        from .settings import DEFAULT_AGENT

        known = sorted(self.agents)
        close = difflib.get_close_matches(agent, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        listed = ", ".join(known) if known else "none yet"
        return (
            f"agent {agent!r} is not a configured agent profile; {hint}profiles are [agents.NAME] "
            f"tables in {self._source_name} (configured: {listed}; "
            f"'{DEFAULT_AGENT}' is [worker] command)"
        )

    @cached_property
    def logs(self) -> LogSettings:
        """``[logs]``: how long attempt logs are kept."""
        from .settings import LogSettings

        return LogSettings.from_raw(self.raw.get("logs", {}), self._where("logs"))

    @cached_property
    def heartbeat(self) -> HeartbeatSettings:
        """``[heartbeat]``: what one heartbeat cycle does."""
        from .settings import HeartbeatSettings

        return HeartbeatSettings.from_raw(self.raw.get("heartbeat", {}), self._where("heartbeat"))

    @cached_property
    def limits(self) -> Limits:
        """``[limits]``: how long things may take before they become signals; parsed once."""
        from .settings import Limits

        return Limits.from_config(self.raw, self._where("limits"))

    def _where(self, section: str) -> str:
        prefix = "tool.taskfiles." if self.source and self.source.name == "pyproject.toml" else ""
        where = self.relpath(self.source) if self.source else "configuration"
        return f"{where}: [{prefix}{section}]"

    @property
    def _source_name(self) -> str:
        return self.relpath(self.source) if self.source else "taskfiles.toml"

    def relpath(self, path: Path) -> str:
        """How output names ``path``: ``shown_path`` from this worktree's root."""
        return shown_path(path, self.root)


def shown_path(path: PurePath, root: PurePath) -> str:
    """How output and JSON name ``path``, on every platform: relative to ``root`` (the
    worktree) with forward slashes, as git names files (``tasks/core/x.md``, never
    ``tasks\\core\\x.md``); a path outside it absolute, forward slashes too, as git for
    Windows writes one (``C:/Users/me/registry``)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def load(start: Path | None = None) -> Config:
    """Find the repository around ``start`` (default: cwd) and read its settings."""
    here = (start or Path.cwd()).resolve()
    repo = git.discover(here)
    root = repo.root if repo else here
    source, section = _read_section(root, repo.git_dir / "taskfiles" / TOML_CACHE if repo else None)
    return _build(root, repo, source, section)


def _read_section(root: Path, cache: Path | None) -> tuple[Path | None, dict[str, Any]]:
    standalone = root / "taskfiles.toml"
    if standalone.is_file():
        return standalone, _toml(standalone, cache)
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        section = _toml(pyproject, cache).get("tool", {}).get("taskfiles")
        if section is not None:
            return pyproject, _require_table(pyproject.name, "tool.taskfiles", section)
    return None, {}


def _toml(path: Path, cache: Path | None) -> dict[str, Any]:
    """``path`` parsed; from ``cache`` while the file's identity (mtime, size, inode,
    ctime) is the one it was parsed at, which as for the parse cache (plan/cache.py)
    is trusted only for a file that had not changed within ``RACY_NS`` of that parse."""
    try:
        st = path.stat()
    except OSError:
        return _parse_toml(path)  # which says why it cannot be read
    key = (
        TOML_CACHE_FORMAT,
        sys.version_info[:2],
        str(path),
        st.st_mtime_ns,
        st.st_size,
        st.st_ino,
        st.st_ctime_ns,
    )
    kept = _kept(cache, key) if cache else None
    if kept is not None:
        return kept
    data = _parse_toml(path)
    if cache and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_NS:
        _keep(cache, (key, data))
    return data


def _kept(cache: Path, key: tuple[object, ...]) -> dict[str, Any] | None:
    try:
        found = marshal.loads(cache.read_bytes())
    except Exception:  # missing, or a corrupt file (which can raise almost anything): parse
        return None
    if isinstance(found, tuple) and len(found) == 2 and found[0] == key and isinstance(found[1], dict):
        return found[1]
    return None


def _keep(cache: Path, value: tuple[Any, ...]) -> None:
    """Write the cache; failing (no room, no rights, a TOML date marshal cannot hold)
    only costs the next command a parse."""
    from .atomic import atomic_write

    try:
        data = marshal.dumps(value)
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, data, sync_dir=False)
    except (OSError, ValueError):
        pass


def _parse_toml(path: Path) -> dict[str, Any]:
    """A settings file, at the top of the worktree: its name is its path in messages."""
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: invalid TOML: {exc}; fix the file or remove it") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: cannot read: {reason(exc)}") from exc


def _require_table(name: str, table: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: [{table}] must be a table")
    return value


def _build(root: Path, repo: git.RepoPaths | None, source: Path | None, raw: dict[str, Any]) -> Config:
    where = shown_path(source, root) if source else "configuration"
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
        tasks_dir=(root / _folder_name(raw.get("tasks_dir", "tasks"), f"{where}: tasks_dir")).resolve(),
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
        registry_url=_registry_url(raw, where),
    )


def _folder_name(value: object, what: str) -> str:
    """A folder setting: a non-empty string without control characters (it becomes a
    .gitattributes pattern, git arguments and paths in output, all one line each)."""
    if not isinstance(value, str) or not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{what} must be a folder name on one line, not {value!r}")
    return value


def _registry_url(raw: dict[str, Any], where: str) -> str | None:
    """``TASKFILES_REGISTRY_URL`` or ``registry_url``: the environment wins."""
    url = os.environ.get(REGISTRY_URL_ENV) or raw.get("registry_url")
    if url is None or url == "":
        return None
    return postgres_url(url, f"{where}: registry_url", f" (or set {REGISTRY_URL_ENV})")


def postgres_url(url: object, what: str, hint: str = "") -> str:
    """``url`` when it is a postgresql:// URL; else a ConfigError saying ``what`` must be one."""
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{what} must be a postgresql:// URL, not {redacted(str(url))!r}{hint}")
    return url


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages: a password is never
    printed): in the user part (``user:pw@``, every host of a multi-host URL) and in a
    ``password=`` parameter."""
    masked = re.sub(r"(://[^/@?#]*?:)[^/@?#]*@", r"\1***@", url)
    return re.sub(r"((?:^|[?&])password=)[^&]*", r"\1***", masked)


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
