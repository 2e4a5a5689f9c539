"""Problems as GitHub Actions workflow commands (``task validate --format github``).

A line ``::error file=tasks/a.md,line=4,title=bad_status::status 'x' is not ...`` on a
job's output becomes an annotation on that line of the pull request's diff.
"""

from __future__ import annotations

from ..plan.taskfile import Problem

# The workflow command for each severity; GitHub has error, warning and notice.
COMMANDS = {"error": "error", "warning": "warning"}


def annotation(problem: Problem) -> str:
    """``problem`` as one workflow command line: ``::error file=PATH,line=N,title=CODE::MESSAGE``.

    The path is the problem's, relative to the repository root with forward slashes, as
    GitHub expects; a problem with no line (line 0) gets no ``line`` property.
    """
    properties = {
        "file": problem.path,
        "line": str(problem.line) if problem.line > 0 else "",
        "title": problem.code,
    }
    shown = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items() if value)
    command = COMMANDS.get(problem.severity, "notice")
    return f"::{command} {shown}::{escape_data(problem.message)}"


# Escaped exactly as GitHub's own toolkit escapes them (actions/toolkit,
# packages/core/src/command.ts, escapeData and escapeProperty): '%' first, so the escapes
# it writes are not escaped again, then the characters that would end the line or, in a
# property, the value ('%0A' is a line break to the runner, ':' and ',' delimit).


def escape_data(text: str) -> str:
    """A message, safe after ``::``: ``%``, CR and LF escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value: the message escapes plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
