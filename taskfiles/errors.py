"""The one error hierarchy. Each class carries the exit code the CLI uses.

Foreign exceptions (YAML, JSON, OSError, git) are translated into these where
they arise; the CLI maps them to ``error: <message>`` on stderr in one place.
"""

from __future__ import annotations

import os
from pathlib import PurePath


class TaskfilesError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class UsageError(TaskfilesError):
    """The command was given a value it cannot use."""

    exit_code = 2


class NotFoundError(TaskfilesError):
    """A slug, file, ref or registry entry does not exist."""

    exit_code = 3


class ConflictError(TaskfilesError):
    """The operation is refused by the current state (live claim, not ready, ...)."""

    exit_code = 4


class StaleLeaseError(ConflictError):
    """A write carried a lease older than the entry's current one."""

    exit_code = 5


class TaskFileError(TaskfilesError):
    """A task file cannot be read or edited."""

    exit_code = 1


class ConfigError(TaskfilesError):
    """The configuration is invalid or the repository cannot be found."""

    exit_code = 2


class GitError(TaskfilesError):
    """A git operation failed."""

    exit_code = 1


class RegistryError(TaskfilesError):
    """The runtime registry cannot be read or written."""

    exit_code = 6


class ValidationFailed(TaskfilesError):
    """``task validate`` found at least one error (the problems are already reported)."""

    exit_code = 1


class Reported(TaskfilesError):
    """The command's own output already said how it ended; exit with ``exit_code``, print nothing.

    ``task validate --json`` with errors, a worker attempt that failed: the JSON or the
    summary line is the report, and a second ``error:`` line would only repeat it.
    """

    def __init__(self, exit_code: int) -> None:
        super().__init__("")
        self.exit_code = exit_code


def reason(error: Exception) -> str:
    """What went wrong, for a message that names the file itself: an OSError's strerror (its
    whole text repeats the path as the platform writes it, in quotes: doubled backslashes on
    Windows), "it is not UTF-8 text" for a decode error, else the error's own text."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8 text"
    return str(error)


def described(error: Exception) -> str:
    """An error for a message that does not name its file: ``reason``, then an OSError's file
    in parentheses, with forward slashes as every path in output."""
    filename = getattr(error, "filename", None) if isinstance(error, OSError) else None
    if filename is None:
        return reason(error)
    return f"{reason(error)} ({PurePath(os.fsdecode(filename)).as_posix()})"
