"""Commands that change existing task files: set, assign, cancel.

Each takes task slugs, or a selection with ``task list``'s filters, and edits every
task or none: all edits are computed and checked before the first file is written.
``--dry-run`` prints the diff and writes nothing. The library modules (YAML, the
registry) are imported inside the commands: ``task list`` must not pay for them.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any

import click

from .app import JsonFlag, config, echo, emit_json, warn
from .params import App, Argument, Option

if TYPE_CHECKING:
    from ..plan.batch import Batch
    from ..plan.edits import Selection

Many = list[str] | None
MilestoneFilter = Annotated[Many, Option("--milestone", help="Select tasks of this milestone; repeatable.")]
StatusFilter = Annotated[Many, Option("--status", help="Select tasks with this status; repeatable.")]
OwnerFilter = Annotated[
    Many, Option("--owner", help="Select tasks of this owner (aliases collapse); repeatable.")
]
LabelFilter = Annotated[Many, Option("--label", help="Select tasks carrying this label; repeatable.")]
WorkstreamFilter = Annotated[
    Many, Option("--workstream", help="Select tasks in this subfolder of tasks/; repeatable.")
]
DryRun = Annotated[
    bool,
    Option("--dry-run", help="Print the unified diff of every file it would change; write nothing."),
]
SELECTING = (
    "Name the tasks by slug, or select them with --milestone, --status, --owner, --label and "
    "--workstream (as 'task list' filters: a repeated filter matches any of its values, different "
    "filters must all match), not both."
)


def register(app: App) -> None:
    """Add this module's commands to ``app``; each one's help ends with how to name tasks."""
    for name, command in (("set", set_), ("assign", assign), ("cancel", cancel)):
        app.command(name, help=f"{inspect.getdoc(command)}\n\n{SELECTING}")(command)


def set_(
    ctx: click.Context,
    args: Annotated[
        Many,
        Argument(
            metavar="[SLUG]... [KEY=VALUE]...",
            help="Tasks to edit, then what to set: priority=P, owner=O, milestone=M, title=T. "
            "owner= and milestone= (empty) remove the key.",
        ),
    ] = None,
    add_label: Annotated[Many, Option("--add-label", help="Add this label; repeatable.")] = None,
    remove_label: Annotated[Many, Option("--remove-label", help="Remove this label; repeatable.")] = None,
    add_dep: Annotated[
        Many, Option("--add-dep", help="Depend on this task too (it must exist); repeatable.")
    ] = None,
    remove_dep: Annotated[Many, Option("--remove-dep", help="Drop this dependency; repeatable.")] = None,
    milestone: MilestoneFilter = None,
    status: StatusFilter = None,
    owner: OwnerFilter = None,
    label: LabelFilter = None,
    workstream: WorkstreamFilter = None,
    dry_run: DryRun = False,
    as_json: JsonFlag = False,
) -> None:
    """Set frontmatter keys, labels and dependencies of tasks (editing only those lines).

    KEY=VALUE sets priority, owner, milestone or title; 'owner=' and 'milestone=' (no
    value) remove the key. Values are checked as 'task new' checks them: a configured
    priority, a configured owner or alias (written as the canonical owner), a title of 1 to
    200 characters. An unknown key is exit 2; an unknown --add-dep is exit 3, one that would
    make a dependency cycle exit 4. A label or dependency already there (or absent, to
    remove) is not an error: that file is reported unchanged. Prints one line per file.
    """
    from ..plan import edits

    words = args or []
    changes = edits.Changes(
        edits.assignments(word for word in words if "=" in word),
        add_labels=tuple(add_label or ()),
        remove_labels=tuple(remove_label or ()),
        add_deps=tuple(add_dep or ()),
        remove_deps=tuple(remove_dep or ()),
    )
    chosen = _selection(
        [word for word in words if "=" not in word], milestone, status, owner, label, workstream
    )
    batch = edits.set_fields(config(ctx), chosen, changes, dry_run=dry_run)
    _report(batch, dry_run, as_json)


def assign(
    ctx: click.Context,
    args: Annotated[
        list[str],
        Argument(metavar="[SLUG]... OWNER", help="Tasks to assign (unless selected), then the owner."),
    ],
    milestone: MilestoneFilter = None,
    status: StatusFilter = None,
    owner: OwnerFilter = None,
    label: LabelFilter = None,
    workstream: WorkstreamFilter = None,
    dry_run: DryRun = False,
    as_json: JsonFlag = False,
) -> None:
    """Give tasks an owner: a configured owner or alias, written as the canonical owner.

    'task set SLUG owner=' removes the owner. Prints one line per file.
    """
    from ..plan import edits

    chosen = _selection(args[:-1], milestone, status, owner, label, workstream)
    batch = edits.assign(config(ctx), chosen, args[-1], dry_run=dry_run)
    _report(batch, dry_run, as_json)


def cancel(
    ctx: click.Context,
    slugs: Annotated[Many, Argument(metavar="[SLUG]...", help="Tasks to cancel (unless selected).")] = None,
    reason: Annotated[
        str | None,
        Option(help="Why (not empty); recorded in the registry's events, not in the file."),
    ] = None,
    milestone: MilestoneFilter = None,
    status: StatusFilter = None,
    owner: OwnerFilter = None,
    label: LabelFilter = None,
    workstream: WorkstreamFilter = None,
    dry_run: DryRun = False,
    as_json: JsonFlag = False,
) -> None:
    """Cancel tasks: 'status: cancelled' in each file, and its live claim stopped and released.

    A stopped worker is refused (exit 5) on its next write. A completed task is refused
    (exit 4) and nothing is changed; an already cancelled one is reported unchanged.
    Prints one line per file and one per claim ended.
    """
    from ..claims import cancel as cancel_tasks
    from ..errors import UsageError
    from ..registry import existing_registry

    if reason is not None and not reason.strip():
        raise UsageError(
            "--reason is empty; say why, e.g. --reason 'duplicate of other-task', or leave it out"
        )
    cfg = config(ctx)
    chosen = _selection(slugs or [], milestone, status, owner, label, workstream)
    done = cancel_tasks(cfg, existing_registry(cfg), chosen, reason=reason, dry_run=dry_run)
    if as_json:
        emit_json({**done.to_dict(), **_json_extra(done.batch, dry_run)})
        return
    _report(done.batch, dry_run, False)
    verb = "would end" if dry_run else "ended"
    for entry in done.released:
        stopped = " (its live attempt stopped: the worker gets exit 5)" if entry in done.stopped else ""
        click.echo(f"{entry.slug}: {verb} the {entry.state} claim, lease {entry.lease}{stopped}", err=True)


def _selection(
    slugs: list[str], milestone: Many, status: Many, owner: Many, label: Many, workstream: Many
) -> Selection:
    from ..plan.edits import Selection
    from ..plan.query import Filters, values

    # 'task list's filters: repeated or comma-separated values both mean "any of".
    filters = Filters(
        status=values(status),
        owner=values(owner),
        milestone=values(milestone),
        label=values(label),
        workstream=values(workstream),
    )
    chosen = filters if filters != Filters() else None
    return Selection(tuple(slugs), chosen)


def _report(batch: Batch, dry_run: bool, as_json: bool) -> None:
    if as_json:
        emit_json({**batch.to_dict(), **_json_extra(batch, dry_run)})
        return
    if dry_run:
        # As bytes: a text stdout on Windows writes each "\n" as "\r\n", and git apply
        # would then match no line of the files.
        click.echo(batch.diff().encode("utf-8"), nl=False)
    for edit in batch.edits:
        what = ", ".join(edit.keys) if edit.changed else "unchanged"
        line = f"{edit.path}: {'would set ' if dry_run and edit.changed else ''}{what}"
        if dry_run:
            click.echo(line, err=True)  # stdout is the diff, for 'git apply'
        else:
            echo(line)
    if not batch.edits:
        warn("no task matches the selection; nothing to do")


def _json_extra(batch: Batch, dry_run: bool) -> dict[str, Any]:
    """``dry_run``, and with it the diff that would be applied."""
    return {"dry_run": dry_run, **({"diff": batch.diff()} if dry_run else {})}
