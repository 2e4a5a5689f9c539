"""The settings sections: ``[worker]`` (and ``[agents.NAME]``), ``[heartbeat]``, ``[logs]``
and ``[limits]``, each read and checked once into a frozen dataclass.

``Config`` (config.py) reads them on first use, so a command that needs none (``task
list``, ``task note``) never builds these classes: ~3 ms of start-up. This module
imports nothing of config.py (config.py imports it, on first use); config.py re-exports
its names, the constants included.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigError

DEFAULT_AGENT = "default"  # the agent name that means [worker] command
MAX_DAYS = 36_500  # a century: the longest age in days a setting or `task gc` takes

PLACEHOLDERS = ("{slug}", "{task_file}", "{worktree}", "{branch}", "{prompt_file}")
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
