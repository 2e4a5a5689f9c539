"""The prompt file an agent gets: the task, where to work, how to report and how to finish.

It is written with the host's files (``HostFiles.write_prompt``), never into the
worktree: nothing the dispatcher writes may end up in a tracked path or a commit.
"""

from __future__ import annotations

from pathlib import Path

from ..plan.taskfile import Task
from ..registry import RegistryEntry


def render(task: Task, entry: RegistryEntry, worktree: Path, branch: str, *, mcp: bool = False) -> str:
    """The prompt for one attempt of ``task``: the task file's content and the working rules.

    ``mcp``: the agent claimed it through ``task mcp``'s ``next`` and reports through its
    tools; no wrapper heartbeats for it, and it ends the attempt with ``finish``.
    """
    slug = task.slug
    lines = [
        f"# {task.title}",
        "",
        f"Task `{slug}` ({task.path}), priority {task.priority}, attempt {entry.attempt} "
        f"of at most {entry.max_attempts}.",
        f"Work in the git worktree `{worktree}` on branch `{branch}`: one task, one worktree, "
        "one branch, one pull request.",
        *_previous(entry),
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


def _previous(entry: RegistryEntry) -> list[str]:
    if entry.attempt <= 1 or not entry.last_error:
        return []
    return [f"The previous attempt failed ({entry.failure_class}): {entry.last_error}"]


def _facts(task: Task) -> list[str]:
    facts = [
        ("owner", task.owner),
        ("milestone", task.milestone),
        ("depends on", ", ".join(task.depends_on)),
        ("labels", ", ".join(task.labels)),
    ]
    return [f"- {name}: {value}" for name, value in facts if value]
