"""Configuration: ``[tool.taskfiles]`` in pyproject.toml, or ``taskfiles.toml``.

Both are read from the top of the current worktree; ``taskfiles.toml`` wins
when both exist. Every key has a default, so a repository without any
configuration works.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from . import git
from .errors import ConfigError, UsageError

DEFAULT_PRIORITIES = ("p0", "p1", "p2", "p3")
REGISTRY_ENV = "TASKFILES_REGISTRY"
REGISTRY_URL_ENV = "TASKFILES_REGISTRY_URL"


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
            f"{hint}use one of them, or add it to owners in {self.source or 'taskfiles.toml'}"
        )

    def closest_owner(self, name: str) -> str | None:
        """The configured owner or alias most like ``name`` (case-insensitive), or None."""
        import difflib  # only on a miss: most commands never need it

        names = {known.lower(): known for known in (*self.owners, *self.owner_aliases)}
        close = difflib.get_close_matches(name.lower(), names, n=1)
        return names[close[0]] if close else None

    @property
    def has_registry(self) -> bool:
        """Whether a registry may hold anything yet: its folder exists (a repository where
        nothing ever ran has none, and read-only views need not open, or create, one)."""
        return self.registry_dir.exists()

    @property
    def git_dir(self) -> Path | None:
        """This worktree's private git folder (home of the parse cache)."""
        return self.repo.git_dir if self.repo else None

    @cached_property
    def worker(self) -> WorkerSettings:
        """``[worker]``: what the worker wrapper runs and the limits it enforces."""
        return WorkerSettings.from_raw(self.raw.get("worker", {}), self._where("worker"))

    @cached_property
    def agents(self) -> Mapping[str, WorkerSettings]:
        """``[agents.NAME]``: named agent profiles, each ``[worker]`` with its own command
        (and, when given, its own ``deadline_seconds`` and ``cost_cap_usd``)."""
        return agent_profiles(self.raw.get("agents", {}), self.worker, self._where("agents"))

    def worker_for(self, agent: str | None) -> WorkerSettings:
        """The settings an attempt runs with when its task names ``agent`` (None or
        ``default``: ``[worker]``); ConfigError for a profile that is not configured."""
        if agent is None or agent == DEFAULT_AGENT:
            return self.worker
        profile = self.agents.get(agent)
        if profile is None:
            raise ConfigError(self.unknown_agent(agent))
        return profile

    def unknown_agent(self, agent: str) -> str:
        """The message for a task naming an agent profile that is not configured."""
        import difflib  # only on a miss

        known = sorted(self.agents)
        close = difflib.get_close_matches(agent, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        listed = ", ".join(known) if known else "none yet"
        return (
            f"agent {agent!r} is not a configured agent profile; {hint}profiles are [agents.NAME] "
            f"tables in {self.source or 'taskfiles.toml'} (configured: {listed}; "
            f"'{DEFAULT_AGENT}' is [worker] command)"
        )

    @cached_property
    def logs(self) -> LogSettings:
        """``[logs]``: how long attempt logs are kept."""
        return LogSettings.from_raw(self.raw.get("logs", {}), self._where("logs"))

    @cached_property
    def heartbeat(self) -> HeartbeatSettings:
        """``[heartbeat]``: what one heartbeat cycle does."""
        return HeartbeatSettings.from_raw(self.raw.get("heartbeat", {}), self._where("heartbeat"))

    @cached_property
    def limits(self) -> Limits:
        """``[limits]``: how long things may take before they become signals; parsed once."""
        return Limits.from_config(self.raw, self._where("limits"))

    def _where(self, section: str) -> str:
        prefix = "tool.taskfiles." if self.source and self.source.name == "pyproject.toml" else ""
        return f"{self.source or 'configuration'}: [{prefix}{section}]"

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
        registry_url=_registry_url(raw, where),
    )


def _registry_url(raw: dict[str, Any], where: str) -> str | None:
    """``TASKFILES_REGISTRY_URL`` or ``registry_url``: the environment wins."""
    url = os.environ.get(REGISTRY_URL_ENV) or raw.get("registry_url")
    if url is None or url == "":
        return None
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{where}: registry_url must be a postgresql:// URL, not {redacted(str(url))!r} "
            f"(or set {REGISTRY_URL_ENV})"
        )
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


# -- dispatch settings ([worker], [heartbeat]) and [limits] ---------------------------------------

PLACEHOLDERS = ("{slug}", "{task_file}", "{worktree}", "{branch}", "{prompt_file}")
DEFAULT_AGENT = "default"  # the agent name that means [worker] command
PROFILE_KEYS = ("command", "deadline_seconds", "cost_cap_usd")
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DEFAULT_NON_RETRYABLE = ("command_not_found", "cost_cap")


@dataclass(frozen=True)
class WorkerSettings:
    """``[worker]``: the agent command and what the wrapper enforces around it."""

    command: tuple[str, ...] = ()  # argv with placeholders; empty: nothing can be dispatched
    heartbeat_seconds: float = 30.0
    deadline_seconds: float | None = 4 * 3600.0  # None: no wall-clock limit
    cost_cap_usd: float | None = None  # per attempt (cost_usd), not the task total
    max_attempts: int = 3
    exit_codes: Mapping[int, str] = field(default_factory=dict)  # exit code -> failure class
    non_retryable: frozenset[str] = frozenset(DEFAULT_NON_RETRYABLE)
    kill_grace_seconds: float = 5.0  # SIGTERM, then SIGKILL this much later

    @classmethod
    def from_raw(cls, raw: object, where: str) -> WorkerSettings:
        """Read and check the section; ConfigError names the key and shows a good value."""
        section = _table(raw, where)
        return cls(
            command=_command(section.get("command", []), where),
            heartbeat_seconds=_seconds(
                section, "heartbeat_seconds", cls.heartbeat_seconds, where, positive=True
            ),
            deadline_seconds=_optional_seconds(section, "deadline_seconds", cls.deadline_seconds, where),
            cost_cap_usd=_optional_seconds(section, "cost_cap_usd", None, where),
            max_attempts=_count(section, "max_attempts", cls.max_attempts, where),
            exit_codes=_exit_codes(section.get("exit_codes", {}), where),
            non_retryable=frozenset(
                _names(section.get("non_retryable", list(DEFAULT_NON_RETRYABLE)), "non_retryable", where)
            ),
            kill_grace_seconds=_seconds(section, "kill_grace_seconds", cls.kill_grace_seconds, where),
        )

    def failure_class(self, exit_code: int) -> str:
        """The failure class of a non-zero exit: configured, else ``exit_<n>`` (``signal_<n>`` if killed)."""
        if exit_code in self.exit_codes:
            return self.exit_codes[exit_code]
        return f"signal_{-exit_code}" if exit_code < 0 else f"exit_{exit_code}"


def agent_profiles(raw: object, worker: WorkerSettings, where: str) -> dict[str, WorkerSettings]:
    """Read ``[agents]``: each ``[agents.NAME]`` is ``worker`` with its own ``command``
    (required, checked like ``[worker] command``) and optional ``deadline_seconds`` and
    ``cost_cap_usd`` (0: none, as in ``[worker]``)."""
    profiles: dict[str, WorkerSettings] = {}
    for name, value in _table(raw, where).items():
        here = f"{where[:-1]}.{name}]" if where.endswith("]") else f"{where}.{name}"
        if not _AGENT_NAME.fullmatch(name) or name == DEFAULT_AGENT:
            raise ConfigError(
                f"{where}: {name!r} cannot name an agent profile; use letters, digits, '.', '_' or '-' "
                f"(not '{DEFAULT_AGENT}', which means [worker] command), e.g. [agents.claude]"
            )
        section = _table(value, here)
        unknown = sorted(set(section) - set(PROFILE_KEYS))
        if unknown:
            keys = ", ".join(PROFILE_KEYS)
            raise ConfigError(f"{here} has unknown key {unknown[0]!r}; a profile takes {keys}")
        if not section.get("command"):
            example = '["my-agent", "--prompt-file", "{prompt_file}"]'
            raise ConfigError(f"{here} command is missing or empty; e.g. command = {example}")
        profiles[name] = replace(
            worker,
            command=_command(section["command"], here),
            deadline_seconds=_optional_seconds(section, "deadline_seconds", worker.deadline_seconds, here),
            cost_cap_usd=_optional_seconds(section, "cost_cap_usd", worker.cost_cap_usd, here),
        )
    return profiles


@dataclass(frozen=True)
class HeartbeatSettings:
    """``[heartbeat]``: parallelism, retries, the circuit breaker, worktrees, grace periods,
    and what each dispatch host fetches before reading the base ref."""

    max_parallel: int = 2  # live workers at once, on every host together
    max_parallel_per_host: int | None = None  # live workers one host may hold; None: no cap of its own
    interval_seconds: float = 60.0  # --loop's default pause
    backoff_base_seconds: float = 60.0  # first retry after this, doubling each failure
    backoff_max_seconds: float = 3600.0
    backoff_jitter: float = 0.2  # up to this fraction added, so retries do not move in lockstep
    circuit_breaker: int = 3  # the same failure class this many times in a row parks the task
    remove_worktree_on_done: bool = True
    orphan_grace_seconds: float = 86400.0
    worktrees_dir: str = ".worktrees"
    branch_prefix: str = "task/"
    fetch: str | None = None  # the remote each cycle fetches the base ref's branch from; None: no fetch
    fetch_timeout_seconds: float = 30.0

    @classmethod
    def from_raw(cls, raw: object, where: str) -> HeartbeatSettings:
        """Read ``[heartbeat]``; ConfigError names the bad key."""
        section = _table(raw, where)
        jitter = _seconds(section, "backoff_jitter", cls.backoff_jitter, where)
        return cls(
            max_parallel=_count(section, "max_parallel", cls.max_parallel, where),
            max_parallel_per_host=_optional_count(section, "max_parallel_per_host", where),
            interval_seconds=_seconds(
                section, "interval_seconds", cls.interval_seconds, where, positive=True
            ),
            backoff_base_seconds=_seconds(section, "backoff_base_seconds", cls.backoff_base_seconds, where),
            backoff_max_seconds=_seconds(section, "backoff_max_seconds", cls.backoff_max_seconds, where),
            backoff_jitter=jitter,
            circuit_breaker=_count(section, "circuit_breaker", cls.circuit_breaker, where),
            remove_worktree_on_done=_flag(
                section, "remove_worktree_on_done", cls.remove_worktree_on_done, where
            ),
            orphan_grace_seconds=_seconds(section, "orphan_grace_seconds", cls.orphan_grace_seconds, where),
            worktrees_dir=_folder(section, "worktrees_dir", cls.worktrees_dir, where),
            branch_prefix=str(section.get("branch_prefix", cls.branch_prefix)),
            fetch=_remote(section.get("fetch", False), where),
            fetch_timeout_seconds=_seconds(
                section, "fetch_timeout_seconds", cls.fetch_timeout_seconds, where, positive=True
            ),
        )


MAX_DAYS = 36_500  # a century: the longest age in days a setting or `task gc` takes


@dataclass(frozen=True)
class LogSettings:
    """``[logs]``: ``task gc`` removes an attempt's log once its last line is older than
    ``retention_days`` (0: logs are kept until their entry goes); the log of a live
    attempt stays however old (``registry.interface.keeps_log``)."""

    retention_days: float = 30.0

    @classmethod
    def from_raw(cls, raw: object, where: str) -> LogSettings:
        """Read ``[logs]``; ConfigError names the bad key."""
        section = _table(raw, where)
        days = _seconds(section, "retention_days", cls.retention_days, where)
        if days > MAX_DAYS:
            raise ConfigError(f"{where} retention_days must be at most {MAX_DAYS} (a century), not {days:g}")
        return cls(retention_days=days)


@dataclass(frozen=True)
class Limits:
    """``[limits]``: how long things may take before they become signals (seconds)."""

    stall_after: float = 600.0  # heartbeat older than this: stalled
    review_grace: float = 3600.0  # exit 0 without completion on the base ref for this long
    pickup_after: float = 900.0  # ready with free capacity and not dispatched for this long
    cycle_stale_after: float = 180.0  # no heartbeat cycle for this long: cron is not running it

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], where: str = "[limits]") -> Limits:
        """Read ``[limits]``, falling back to the defaults; ConfigError on a bad value.

        ``cycle_stale_seconds`` was ``[serve] cycle_stale_seconds`` before the CLI used it
        too; the old key still works when the new one is absent.
        """
        section = raw.get("limits", {})
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where} must be a table of seconds, e.g. stall_after_seconds = 600")
        old = raw.get("serve", {})
        stale_default = cls.cycle_stale_after
        if isinstance(old, Mapping) and "cycle_stale_seconds" in old:
            serve_where = where.replace("limits]", "serve]")
            stale_default = _limit(old, "cycle_stale_seconds", cls.cycle_stale_after, serve_where)
        return cls(
            stall_after=_limit(section, "stall_after_seconds", cls.stall_after, where),
            review_grace=_limit(section, "review_grace_seconds", cls.review_grace, where),
            pickup_after=_limit(section, "pickup_overdue_seconds", cls.pickup_after, where),
            cycle_stale_after=_limit(section, "cycle_stale_seconds", stale_default, where),
        )


def _limit(section: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ConfigError(
            f"{where} {key} must be a number of seconds, 0 or more, not {value!r}; e.g. {key} = {default:g}"
        )
    return float(value)


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table of settings")
    return value


def _number(section: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} {key} must be a number, not {value!r}")
    if not math.isfinite(value):  # TOML has inf and nan; no limit or count means either
        raise ConfigError(f"{where} {key} must be a finite number, not {value!r}")
    return float(value)


def _seconds(
    section: Mapping[str, Any], key: str, default: float, where: str, *, positive: bool = False
) -> float:
    value = _number(section, key, default, where)
    if value < 0 or (positive and value == 0):
        bound = "greater than 0" if positive else "0 or more"
        raise ConfigError(f"{where} {key} must be {bound}, not {value:g}")
    return value


def _optional_seconds(
    section: Mapping[str, Any], key: str, default: float | None, where: str
) -> float | None:
    """A positive number, or 0 (or absent with no default) for "no limit"."""
    if key not in section:
        return default
    value = _seconds(section, key, 0.0, where)
    return value or None


def _count(section: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} {key} must be a whole number of at least 1, not {value!r}")
    return value


def _optional_count(section: Mapping[str, Any], key: str, where: str) -> int | None:
    """A whole number of at least 1, or None when absent (no limit)."""
    return _count(section, key, 1, where) if key in section else None


def _flag(section: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where} {key} must be true or false, not {value!r}")
    return value


def _folder(section: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or not value or value.startswith("/") or ".." in value.split("/"):
        raise ConfigError(f"{where} {key} must be a folder inside the repository, e.g. {default!r}")
    return value


def _remote(value: object, where: str) -> str | None:
    """``fetch``: false (no fetch), true (the remote ``origin``) or a remote's name (not a URL)."""
    if value is False:
        return None
    if value is True:
        return "origin"
    if isinstance(value, str) and value and not value.startswith("-") and not set(value) & set(": \t\n"):
        return value
    raise ConfigError(
        f'{where} fetch must be true (the remote "origin"), false or a remote\'s name, not {value!r}; '
        'e.g. fetch = "origin" (see git remote -v)'
    )


def _command(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(arg, str) for arg in value):
        raise ConfigError(
            f"{where} command must be an argument list, not a shell string, "
            f'e.g. ["my-agent", "--prompt-file", "{{prompt_file}}"] '
            f"(placeholders: {', '.join(PLACEHOLDERS)})"
        )
    return tuple(value)


def _names(value: object, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'{where} {key} must be a list of failure classes, e.g. ["usage", "cost_cap"]')
    return value


def _exit_codes(value: object, where: str) -> dict[int, str]:
    table = _table(value, f"{where} exit_codes")
    codes: dict[int, str] = {}
    for code, name in table.items():
        if not str(code).lstrip("-").isdigit() or not isinstance(name, str) or not name:
            raise ConfigError(
                f'{where} exit_codes must map exit codes to failure classes, e.g. {{ "2" = "usage" }}; '
                f"got {code!r} = {name!r}"
            )
        codes[int(code)] = name
    return codes
