"""The house command classes, the one place errors become exit codes, and output helpers."""

from __future__ import annotations

import atexit
import codecs
import errno
import io
import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import click

from ..config import Config
from ..config import load as load_config
from ..errors import Reported, TaskfilesError, UsageError
from .params import Command, Group, Option


class CommandError(click.ClickException):
    """A TaskfilesError on its way out: ``error: <message>`` on stderr, its exit code.

    THE one map from the error hierarchy to exit codes and messages: every command of
    ``task`` and ``task-manager-heartbeat`` ends through it (``mapped``).
    """

    def __init__(self, error: TaskfilesError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]  # click reads it per instance
        self.reported = isinstance(error, Reported)

    def show(self, file: Any = None) -> None:
        if not self.reported:
            click.echo(f"error: {self.format_message()}", err=True)


T = TypeVar("T")
# Writing the output failed for want of room, not for a bug: one error line, not a traceback.
FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def mapped(call: Callable[[], T]) -> T:
    """``call()``, with a TaskfilesError turned into its CommandError, Ctrl-C into exit 130
    (the shell's code for an interrupt) and a full disk under the output into an error,
    each without a traceback."""
    try:
        return call()
    except TaskfilesError as error:
        raise CommandError(error) from error
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None
    except OSError as error:
        if error.errno not in FULL or error.filename is not None:
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is left goes nowhere
        raise CommandError(TaskfilesError(unwritten(error))) from error


def unwritten(error: OSError) -> str:
    """What to say when the output could not be written."""
    return f"cannot write the output: {error.strerror}"


class Ends(click.Command):
    """Every command line of ``task`` and ``task-manager-heartbeat`` ends through mapped(),
    from reading its arguments to the command's last line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        return mapped(lambda: super(Ends, self).make_context(info_name, args, parent, **extra))

    def invoke(self, ctx: click.Context) -> Any:
        return mapped(lambda: super(Ends, self).invoke(ctx))


class TaskfilesGroup(Ends, Group):
    """The top-level group: the command classes' ending, and ``--version``."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        return [*params, VERSION_OPTION] if ctx.parent is None else params


def run(command: click.Command, prog_name: str) -> NoReturn:
    """Run ``command`` as this process, and end the process without tearing Python down.

    What a command built (the rows of 50,000 tasks: ~40 ms) and every module would be
    freed one object at a time on a normal exit, for nobody. Once the command has ended,
    atexit has run and the output is flushed, the process ends at once (``os._exit``);
    with another thread still running, Python's own exit waits for it as always.
    """
    code: object = 0  # click's main always ends in SystemExit; 0 should it ever return
    for stream in (sys.stdout, sys.stderr):
        speak_utf8(stream)
    try:
        command.main(prog_name=prog_name)
    except SystemExit as end:
        code = end.code
    if not isinstance(code, int | None) or threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError as error:  # the last of the output found a closed pipe or a full disk
            if error.errno != errno.EPIPE and stream is sys.stdout:
                CommandError(TaskfilesError(unwritten(error))).show()
            code = code or 1
    os._exit(code or 0)


def speak_utf8(stream: object) -> None:
    """Make ``stream`` write UTF-8, whatever the system's default for it.

    A pipe on Windows defaults to the ANSI code page (cp1252), which cannot write an arrow
    or a title in most scripts: the command would die on its first such character. Every
    system then reads the same bytes from taskfiles.
    """
    if isinstance(stream, io.TextIOWrapper) and codecs.lookup(stream.encoding).name != "utf-8":
        stream.reconfigure(encoding="utf-8")


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import version

    click.echo(f"taskfiles {version('taskfiles')}")
    ctx.exit(0)


VERSION_OPTION = click.Option(
    ["--version"],
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the installed version (taskfiles X.Y.Z) and exit.",
)


class TaskfilesCommand(Ends, Command):
    """A command on its own (``task-manager-heartbeat``)."""


JsonFlag = Annotated[bool, Option("--json", help="Print JSON for machines instead of text.")]
RepoOption = Annotated[
    str | None,
    Option(
        "--repo", "-C", metavar="PATH", help="Run as if started in this folder (default: the current one)."
    ),
]
RefOption = Annotated[
    str | None,
    Option("--ref", help="Read task files from this git ref (e.g. origin/main), not the working tree."),
]


def config(ctx: click.Context) -> Config:
    """The configuration for the repository named by --repo (default: the cwd)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "config" not in root.obj:
        root.obj["config"] = load_config(root.obj.get("repo"))
    cfg: Config = root.obj["config"]
    return cfg


def set_repo(ctx: click.Context, repo: str | None) -> None:
    """Remember --repo for config(); UsageError when it names no folder."""
    ctx.obj = {"repo": checked_repo(repo)}


def checked_repo(repo: str | None, option: str = "-C/--repo") -> Path | None:
    """``repo`` as given by ``option``, refused when it is not a folder (an empty one
    included): run elsewhere, a command would read an empty task list and exit 0 as if
    there were nothing to do."""
    if repo is None:
        return None
    folder = Path(repo)
    if not repo or not folder.is_dir():
        what = "is empty" if not repo else "is not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"{option} {repo!r} {what}; give a folder inside the git repository")
    return folder


def load_repo_config(repo: str | None, option: str = "-C/--repo") -> Config:
    """The configuration of the repository around ``repo`` (default: the cwd)."""
    return load_config(checked_repo(repo, option))


def emit_json(value: Any) -> None:
    """Write one JSON document to stdout (orjson when installed: 10x faster on 10k tasks)."""
    try:
        import orjson
    except ImportError:
        import json

        sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE))
    sys.stdout.buffer.flush()


def emit_json_array(items: Iterable[Any], chunk: int = 1000) -> None:
    """Write one JSON array to stdout, the same bytes as ``emit_json(list(items))``, encoded
    ``chunk`` items at a time: the memory of one chunk serves the next (50,000 tasks'
    rows at once are ~22 MB of fresh pages, ~40 ms of page faults)."""
    try:
        import orjson
    except ImportError:
        emit_json(list(items))
        return
    sys.stdout.flush()
    out = sys.stdout.buffer
    items = iter(items)
    separator = b"["
    while batch := list(itertools.islice(items, chunk)):
        out.write(separator + orjson.dumps(batch)[1:-1])
        separator = b","
    out.write(b"[]\n" if separator == b"[" else b"]\n")
    out.flush()


def echo(text: str = "") -> None:
    click.echo(text)


def error(problem: TaskfilesError) -> None:
    """Report an error without exiting (a ``--loop`` goes on), exactly as an exit would."""
    CommandError(problem).show()


def warn(text: str) -> None:
    """A one-line warning on stderr."""
    click.echo(f"warning: {text}", err=True)


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Left-aligned columns; the last column is not padded."""
    if not rows:
        return ""
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers) - 1)]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)
