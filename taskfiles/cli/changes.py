"""``task changes [BASE..HEAD]``: what a pull request changes in the plan, as text for
people, JSON for machines (``--json``) and a pull request comment (``--markdown``)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import click

from ..errors import UsageError
from ..slugs import is_slug
from .app import JsonFlag, config, echo, emit_json, table
from .params import App, Argument, Option

if TYPE_CHECKING:
    from ..changes import Changes, Edited, Range
    from ..plan.graph import Cycle
    from ..plan.taskfile import Task

SHOWN_ROWS = 100  # rows of one markdown table; a comment on GitHub holds at most 65,536 characters
OPEN_ROWS = 10  # a longer markdown table is folded into <details>


def register(app: App) -> None:
    """Add ``changes`` to ``app``."""
    app.command("changes")(changes)


def changes(
    ctx: click.Context,
    spec: Annotated[
        str | None,
        Argument(
            metavar="[BASE..HEAD]",
            show_default=False,
            help="BASE (the working tree against it), or BASE..HEAD; default: the configured base_ref.",
        ),
    ] = None,
    as_json: JsonFlag = False,
    markdown: Annotated[
        bool, Option("--markdown", help="Print a summary ready to post as a pull request comment.")
    ] = False,
) -> None:
    """Show what the task files change between two points: tasks added, removed, renamed and
    edited (readied, completed, cancelled, reprioritised, reassigned, dependencies, title,
    milestone, labels, body), and what that does to the queue when it merges: tasks that
    become dispatchable or blocked, new dependency cycles.

    No range: the working tree against the configured base_ref. BASE: the working tree
    against BASE. BASE..HEAD (BASE...HEAD is the same): commit HEAD against BASE; an empty
    side is HEAD, so 'main..' is 'main..HEAD'. BASE is read at its merge base with the head,
    as 'git diff BASE...HEAD' does: a pull request is judged against where it branched.
    Both sides are read from git without a checkout.

    A task gone and a new one are one task renamed when they have the same body (one that
    says more than headings, and no other task has) or else the same title. The queue is
    the plan's (the registry is not read). Unreadable files are listed as problems.
    Exit 0 with or without changes; 2 for a bad range or a ref that names no commit.
    """
    if as_json and markdown:
        raise UsageError("--json and --markdown are two formats; give one of them")
    from ..changes import compare

    found = compare(config(ctx), spec)
    if as_json:
        emit_json(found.to_dict())
    else:
        echo(markdown_of(found) if markdown else text_of(found))


# -- what is said about a change, in either format ----------------------------------------------


def sides(found: Changes) -> tuple[str, str]:
    """How the two sides are named: 'main at merge base 1a2b3c4d5e', 'the working tree'."""
    r: Range = found.sides
    at = "" if r.base == r.base_tip else " at merge base"
    head = "the working tree" if r.head_ref is None else f"{r.head_ref} ({r.head[:10]})"
    return f"{r.base_ref}{at} ({r.base[:10]})", head


def summary(found: Changes) -> tuple[str, str]:
    """(what changed, what it does to the queue), each a comma-separated count line."""
    counts = found.counts()
    kinds = [f"{counts[kind]} {kind}" for kind in ("added", "removed", "edited") if counts[kind]]
    events = [f"{counts[event]} {event.replace('_', ' ')}" for event in EVENT_WORDS if counts[event]]
    changed = ", ".join(kinds) + (f" ({', '.join(events)})" if events else "") or "no task changed"
    queue = [
        f"{counts[key]} {word if counts[key] == 1 else plural}"
        for key, word, plural in QUEUE_WORDS
        if counts[key]
    ]
    return changed, ", ".join(queue) or "no change to the queue"


QUEUE_WORDS = (
    ("became_dispatchable", "becomes dispatchable", "become dispatchable"),
    ("became_blocked", "becomes blocked", "become blocked"),
    ("left_queue", "leaves the queue", "leave the queue"),
    ("new_cycles", "new dependency cycle", "new dependency cycles"),
    ("resolved_cycles", "dependency cycle resolved", "dependency cycles resolved"),
)
EVENT_WORDS = ("renamed", "readied", "completed", "cancelled", "reprioritised", "reassigned")


def phrases(edit: Edited) -> list[str]:
    """One short phrase per event: 'readied', 'priority p2 -> p1', 'depends on +a -b', ..."""
    return [PHRASES[event](edit) for event in edit.events]


def _change(key: str) -> Callable[[Edited], str]:
    return lambda edit: f"{key} {_shown(edit.values[key][0])} -> {_shown(edit.values[key][1])}"


def _items(key: str, word: str) -> Callable[[Edited], str]:
    def said(edit: Edited) -> str:
        signed = [f"+{item}" for item in edit.added.get(key, ())]
        signed += [f"-{item}" for item in edit.removed.get(key, ())]
        return f"{word} {' '.join(signed)}"

    return said


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


PHRASES: dict[str, Callable[[Edited], str]] = {
    "renamed": lambda edit: f"renamed from {edit.before.slug} (same {edit.renamed_by})",
    "moved": lambda edit: f"moved from {edit.before.path}",
    "readied": lambda edit: "readied",
    "completed": lambda edit: "completed",
    "cancelled": lambda edit: "cancelled",
    "status_changed": _change("status"),
    "retitled": lambda edit: f"title was {edit.before.title!r}",
    "reprioritised": _change("priority"),
    "reassigned": _change("owner"),
    "dependencies_changed": _items("depends_on", "depends on"),
    "milestone_changed": _change("milestone"),
    "labels_changed": _items("labels", "labels"),
    "body_edited": lambda edit: "body edited",
    "other_keys": lambda edit: "; ".join(_change(key)(edit) for key in edit.other_keys),
}


def rows(found: Changes) -> list[tuple[str, Task, str]]:
    """(kind, task, what) for every task added, removed or edited, in that order."""
    found_rows = [("added", task, f"{task.priority}, {task.status}") for task in found.added]
    found_rows += [("removed", task, f"was {task.status}") for task in found.removed]
    found_rows += [("edited", edit.after, "; ".join(phrases(edit))) for edit in found.edited]
    return found_rows


def queue_rows(found: Changes) -> list[tuple[str, Task, str, tuple[str, ...]]]:
    """(what happens, task, why, slugs it waits for) for each task the queue gains or loses."""
    queue = found.queue
    found_rows: list[tuple[str, Task, str, tuple[str, ...]]]
    found_rows = [("becomes dispatchable", task, "", ()) for task in queue.dispatchable]
    found_rows += [("becomes blocked", c.task, "waits for", c.blocked_by) for c in queue.blocked if c.task]
    found_rows += [("leaves the queue", left.task, left.reason.replace("_", " "), ()) for left in queue.left]
    return found_rows


def cycle_rows(found: Changes) -> list[tuple[str, Cycle]]:
    """('new dependency cycle' or 'dependency cycle resolved', the cycle)."""
    queue = found.queue
    return [("new dependency cycle", c) for c in queue.new_cycles] + [
        ("dependency cycle resolved", c) for c in queue.resolved_cycles
    ]


# -- text ------------------------------------------------------------------------------------------


def text_of(found: Changes) -> str:
    """Grouped and short: a headline, then the tasks added, removed and edited, the queue when
    it merges and the problems, each group only when it has something."""
    base, head = sides(found)
    changed, queue = summary(found)
    lines = [f"{base} .. {head}", f"{changed}; {queue}"]
    task_rows = rows(found)
    for kind in ("added", "removed", "edited"):
        group = [(t.slug, what, "" if kind == "edited" else t.title) for k, t, what in task_rows if k == kind]
        lines += _group(f"{kind} ({len(group)})", _aligned(group))
    named: dict[str, list[str]] = {}
    for what, task, why, deps in queue_rows(found):
        reason = " ".join([why, *deps]).strip()
        named.setdefault(what, []).append(f"{task.slug} ({reason})" if reason else task.slug)
    waits = [(what, ", ".join(names)) for what, names in named.items()]
    waits += [(label, cycle.text()) for label, cycle in cycle_rows(found)]
    lines += _group("queue when this merges", _aligned(waits))
    lines += _group("problems", [f"{side}: {problem}" for side, problem in found.problems])
    return "\n".join(lines)


def _group(title: str, body: list[str]) -> list[str]:
    return [f"{title}:", *(f"  {line}" for line in body)] if body else []


def _aligned(cells: Sequence[Sequence[str]]) -> list[str]:
    if not cells:
        return []
    return [line.rstrip() for line in table(cells, [""] * len(cells[0])).splitlines()[1:]]  # no header


# -- markdown --------------------------------------------------------------------------------------


def markdown_of(found: Changes) -> str:
    """A pull request comment: a headline with counts, tables (long ones folded), every
    title and value escaped so nothing in a task file can break out of its cell."""
    base, head = sides(found)
    changed, queue = summary(found)
    lines = ["### Task changes", "", f"**{md(changed)}**; {md(queue)}.", "", f"{md(base)} → {md(head)}"]
    task_rows = [[kind, code(t.slug), md(t.title), arrows(md(what))] for kind, t, what in rows(found)]
    lines += _table(task_rows, ["", "task", "title", "change"], "task changes")
    queue_cells = [
        [what, code(task.slug), md(task.title), " ".join([md(why), *map(code, slugs)]).strip()]
        for what, task, why, slugs in queue_rows(found)
    ]
    lines += _table(queue_cells, ["when this merges", "task", "title", ""], "queue changes")
    for label, cycle in cycle_rows(found):
        lines += ["", f"**{label.capitalize()}:** " + " → ".join(map(code, (*cycle.path, cycle.path[0])))]
    problems = [[side, md(f"{p.path}:{p.line}"), md(p.message)] for side, p in found.problems]
    lines += _table(problems, ["side", "file", "problem"], "problems reading task files")
    return "\n".join(lines)


def _table(cells: Sequence[Sequence[str]], headers: Sequence[str], what: str) -> list[str]:
    if not cells:
        return []
    shown = [*cells[:SHOWN_ROWS]]
    if len(cells) > SHOWN_ROWS:
        more = f"... and {len(cells) - SHOWN_ROWS} more ('task changes --json' lists them all)"
        shown.append([more, *[""] * (len(headers) - 1)])
    body = [_row(headers), _row(["---"] * len(headers)), *map(_row, shown)]
    if len(cells) <= OPEN_ROWS:
        return ["", *body]
    return ["", f"<details><summary>{len(cells)} {what}</summary>", "", *body, "", "</details>"]


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")


def md(text: str) -> str:
    """``text`` as inert markdown in a table cell: HTML and markdown punctuation escaped,
    line breaks made spaces, and '@' kept from mentioning anyone (a zero-width space after
    it, as dependabot's release notes do)."""
    flat = _CONTROL.sub(" ", text).strip()
    return _SPECIAL.sub(r"\\\1", html.escape(flat, quote=False)).replace("@", "@&#8203;")


def arrows(cell: str) -> str:
    """The phrases' ' -> ' (escaped by ``md``) as an arrow."""
    return cell.replace(" -&gt; ", " → ")


def code(slug: str) -> str:
    """A slug as code; anything that is not a slug (a dependency may name anything) escaped."""
    return f"`{slug}`" if is_slug(slug) else md(slug)
