"""The prompt file an agent gets: the task, where to work, what it was asked, what happened
before, how to report and how to finish.

It is written with the host's files (``HostFiles.write_prompt``), never into the
worktree: nothing the dispatcher writes may end up in a tracked path or a commit.

Instructions from a reviewer or operator (``task retry --instructions``, ``task review
--request-changes``) are shown under their own heading only in the attempt they were
given for: the claim of that attempt carries them (``RegistryEntry.instructions``).
Later attempts see them in the account of earlier attempts, next to the attempt
they came before. The account is ``registry.attempts`` over the task's events, the
same for the dispatcher and for a wrapper run by hand (``for_attempt``).
"""

from __future__ import annotations

from pathlib import Path

from ..plan.taskfile import Task
from ..registry import Registry, RegistryEntry
from ..registry.attempts import Attempt, earlier
from ..registry.records import Instructions

EARLIER_SHOWN = 5  # attempts in the account; older ones are counted, not shown
SHORT = 300  # characters of an error or a note in the account
LONG = 1000  # characters of earlier instructions in the account


def for_attempt(
    registry: Registry, task: Task, entry: RegistryEntry, worktree: Path, branch: str, *, mcp: bool = False
) -> str:
    """The prompt of ``entry``'s attempt of ``task``, with the account of earlier attempts
    read from the registry's events (a first attempt reads none); ``mcp`` as for ``render``."""
    if entry.attempt > 1:
        shown, left_out = earlier(registry.events(task.slug).events, entry.attempt, EARLIER_SHOWN)
    else:
        shown, left_out = (), 0
    return render(task, entry, worktree, branch, shown, left_out, mcp=mcp)


def render(
    task: Task,
    entry: RegistryEntry,
    worktree: Path,
    branch: str,
    before: tuple[Attempt, ...] = (),
    left_out: int = 0,
    *,
    mcp: bool = False,
) -> str:
    """The prompt for one attempt of ``task``: the instructions for it, the account of the
    attempts ``before`` it (``left_out`` more not shown), the working rules and the task file.

    ``mcp``: the agent claimed it through ``task mcp``'s ``next`` and reports through its
    tools; no wrapper heartbeats for it, and it ends the attempt with ``finish``.
    """
    slug = task.slug
    lines = [
        f"# {task.title}",
        "",
        f"Task `{slug}` ({task.path}), priority {task.priority}, attempt {entry.attempt} "
        f"(the task is parked after {entry.max_attempts} failed attempts in a row).",
        f"Work in the git worktree `{worktree}` on branch `{branch}`: one task, one worktree, "
        "one branch, one pull request.",
        *_instructions(current(entry)),
        *_account(slug, before, left_out),
        "",
        "## Reporting",
        "",
        *(_mcp_reporting(entry) if mcp else _cli_reporting(slug)),
        "",
        "## Finishing",
        "",
        f"- Commit your work on `{branch}`, then run `task complete {slug}` in this worktree and "
        "commit the task file with it: the completion lands when the branch is merged.",
        "- Never write runtime state (claims, progress, attempts) into the task file's frontmatter.",
        (
            f"- Call `finish` with lease {entry.lease} and exit_code 0 when the work is committed, "
            "non-zero when it failed."
            if mcp
            else "- Exit 0 when the work is committed; exit non-zero when it failed."
        ),
        "",
        f"## The task file ({task.path})",
        "",
        *_facts(task),
        "",
        task.body.strip(),
        "",
    ]
    return "\n".join(lines)


def _cli_reporting(slug: str) -> list[str]:
    return [
        f"- `task progress {slug} PERCENT 'what is done'` and `task log {slug} 'message'` "
        "(the lease is in $TASKFILES_LEASE).",
        f"- `task heartbeat {slug} --cost-usd X` to report spend; the wrapper heartbeats for you.",
    ]


def _mcp_reporting(entry: RegistryEntry) -> list[str]:
    return [
        f"- Call `report` with lease {entry.lease} (progress, note, blocker, evidence, artifact, "
        "cost_usd) at least every few minutes: each report is your heartbeat, and nothing else "
        "heartbeats for you.",
        "- A result starting 'stop working on this task' means your lease was superseded: stop.",
    ]


def current(entry: RegistryEntry) -> Instructions | None:
    """The instructions for ``entry``'s own attempt, if a reviewer or operator gave some."""
    given = entry.instructions
    return given if given is not None and given.attempt == entry.attempt else None


def _instructions(given: Instructions | None) -> list[str]:
    if given is None:
        return []
    how = (
        "requested these changes on review"
        if given.kind == "changes_requested"
        else "retried it with these instructions"
    )
    return [
        "",
        "## Instructions from the reviewer/operator",
        "",
        f"{given.who} {how} at {given.time}, for this attempt. Do what they ask; the task file "
        "below still says what the task is.",
        "",
        *_quoted(given.text),
    ]


def _account(slug: str, before: tuple[Attempt, ...], left_out: int) -> list[str]:
    if not before:
        return []
    total = len(before) + left_out
    head = f"{total} earlier attempt{'s' if total != 1 else ''}"
    more = f"; the last {len(before)} are below, {left_out} older left out" if left_out else ""
    lines = ["", "## Earlier attempts", "", f"{head}{more}; how each went and ended (oldest first):", ""]
    for attempt in before:
        lines.extend(_attempt(attempt))
    lines += [
        "",
        f"See it all yourself: `task history {slug}` (the task file's history and every runtime event), "
        f"`task events {slug}`, `task show {slug} --json` (the registry entry) and "
        f"`task logs {slug} --attempt N` (an attempt's log). The branch keeps earlier attempts' "
        "commits unless the task was retried with --fresh: see `git log`.",
    ]
    return lines


def _attempt(attempt: Attempt) -> list[str]:
    ran = ", ".join(
        part
        for part in (
            f"claimed {attempt.claimed_at}",
            f"worker {attempt.worker}" if attempt.worker else "",
            f"agent {attempt.agent}" if attempt.agent else "",
        )
        if part
    )
    lines = [f"- Attempt {attempt.number} ({ran}): {_ending(attempt)}."]
    if attempt.error:
        label = "Last error" if attempt.outcome == "failed" else f"Why it was {attempt.outcome}"
        lines.append(f"  {label}: {_short(attempt.error, SHORT)}")
    if attempt.progress or attempt.percent is not None:
        percent = f"{attempt.percent}% " if attempt.percent is not None else ""
        lines.append(f"  Last progress: {percent}{_short(attempt.progress or '', SHORT)}".rstrip())
    if attempt.instructions is not None:
        given = attempt.instructions
        lines.append(f"  Instructions before it ({given.who}, {given.time}): {_short(given.text, LONG)}")
    return lines


def _ending(attempt: Attempt) -> str:
    parts = [attempt.outcome]
    if attempt.exit_code is not None:
        parts.append(f"exit code {attempt.exit_code}")
    if attempt.failure_class:
        parts.append(f"failure class {attempt.failure_class}")
    return ", ".join(parts)


def _short(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _quoted(text: str) -> list[str]:
    return [f"> {line}".rstrip() for line in text.splitlines()]


def _facts(task: Task) -> list[str]:
    facts = [
        ("owner", task.owner),
        ("milestone", task.milestone),
        ("depends on", ", ".join(task.depends_on)),
        ("labels", ", ".join(task.labels)),
    ]
    return [f"- {name}: {value}" for name, value in facts if value]
