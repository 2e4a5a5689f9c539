"""Commands over the durable planning record: init, new, list, show, ready, complete, validate, next.

The modules that edit files (and so import YAML) are imported inside the commands
that need them: a warm ``task list`` must not pay for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click

from .. import git
from ..errors import Reported, UsageError, ValidationFailed
from ..plan import query, source
from ..plan.cache import gc_paused
from ..plan.source import TaskSet
from ..plan.taskfile import STATUSES, Task
from .annotations import annotation
from .app import JsonFlag, RefOption, config, echo, emit_json, emit_json_array, table, warn
from .params import App, Argument, Option

if TYPE_CHECKING:
    from ..config import Config
    from ..plan.edits import NewTask
    from ..registry import RegistryEntry


def register(app: App) -> None:
    """Add this module's commands to ``app``."""
    for command in (init, new, list_tasks, show, ready, complete, validate, next_task):
        name = {"list_tasks": "list", "next_task": "next"}.get(command.__name__, command.__name__)
        app.command(name)(command)


def _load(ctx: click.Context, ref: str | None, *, bodies: bool = True) -> TaskSet:
    tasks = source.load(config(ctx), ref, bodies=bodies)
    _warn_skipped(tasks)
    return tasks


def _warn_skipped(tasks: TaskSet) -> None:
    if tasks.skipped:
        shown = ", ".join(tasks.skipped[:3]) + (" ..." if len(tasks.skipped) > 3 else "")
        warn(f"skipped {len(tasks.skipped)} unreadable task file(s): {shown}; run 'task validate'")


def init(
    path: Annotated[Path, Argument(help="A folder inside the git repository.")] = Path("."),
) -> None:
    """Set up taskfiles in a git repository: tasks/, registry/, config and SKILL.md.

    Idempotent: anything already there is kept as it is.
    """
    from ..plan import scaffold

    result = scaffold.init(path)
    for rel in result.created:
        echo(f"created {rel}")
    for rel in result.kept:
        echo(f"kept    {rel}")


def new(
    ctx: click.Context,
    title: Annotated[str, Argument(help="The task's title; the slug is made from it.")],
    workstream: Annotated[str | None, Option(help="Subfolder of tasks/ to put it in.")] = None,
    priority: Annotated[str | None, Option(help="p0 (highest) .. p3; default from config.")] = None,
    owner: Annotated[str | None, Option(help="Who owns the task.")] = None,
    milestone: Annotated[str | None, Option(help="Milestone name.")] = None,
    depends_on: Annotated[
        list[str] | None, Option("--depends-on", help="Slug this task needs first; repeat.")
    ] = None,
    label: Annotated[list[str] | None, Option(help="A label; repeat for more.")] = None,
    ready: Annotated[bool, Option("--ready", help="Mark it ready for dispatch at once.")] = False,
) -> None:
    """Create a task file with the conventional sections and print its path.

    The slug comes from the title and is unique in the working tree, on the base ref and on
    every local and remote-tracking branch (so two branches never add the same one); when
    the title's slug is taken, the next free one (fix-login-2, ...) is used and stderr says
    where the taken one is.
    """
    from ..plan import edits

    created = edits.create(
        config(ctx),
        title,
        workstream=workstream,
        priority=priority,
        owner=owner,
        milestone=milestone,
        depends_on=depends_on or (),
        labels=label or (),
        ready=ready,
    )
    if created.passed_over:
        click.echo(_passed_over(created), err=True)
    echo(config(ctx).relpath(created.path))


def _passed_over(created: NewTask, shown: int = 3) -> str:
    """'slug fix-login is taken on origin/x (tasks/fix-login.md); created fix-login-2'."""
    (first, place), *others = created.passed_over
    listed = [f"slug {first} is taken {place}", *(f"{slug} {where}" for slug, where in others[: shown - 1])]
    more = f" and {len(others) - shown + 1} more" if len(others) >= shown else ""
    return f"{', '.join(listed)}{more}; created {created.path.stem}"


Many = list[str] | None  # a repeatable filter: a task passes when it has any of the values


def list_tasks(
    ctx: click.Context,
    status: Annotated[
        Many,
        Option(help=f"One of {', '.join(STATUSES)}; repeat, or separate with commas, for any of several."),
    ] = None,
    owner: Annotated[Many, Option(help="Owner (aliases collapse); repeatable or comma-separated.")] = None,
    milestone: Annotated[Many, Option(help="Milestone; repeatable or comma-separated.")] = None,
    priority: Annotated[Many, Option(help="Priority, e.g. p1; repeatable or comma-separated.")] = None,
    label: Annotated[
        Many,
        Option(help="Tasks carrying this label; repeatable or comma-separated, for any of several."),
    ] = None,
    workstream: Annotated[Many, Option(help="Subfolder of tasks/; repeatable or comma-separated.")] = None,
    search: Annotated[str | None, Option(help="Case-insensitive text in title or body.")] = None,
    created_after: Annotated[
        str | None,
        Option(
            help="Only files first committed at or after this ISO date or date-time "
            "(a date is its midnight; no offset is UTC), e.g. 2026-01-31."
        ),
    ] = None,
    created_before: Annotated[
        str | None,
        Option(help="Only files first committed before this ISO date or date-time."),
    ] = None,
    ref: RefOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List tasks, in path order, narrowed by the filters given.

    A filter given several times (or with comma-separated values) keeps the tasks matching
    any of its values; different filters must all match. An unknown status, priority or
    (with owners configured) owner, or a creation date that is not an ISO date, is an
    error (exit 2). --json gives each task's "created": when its file was first committed
    in HEAD's history, following renames (null: not committed yet).
    """
    filters = query.Filters(
        status=query.values(status),
        owner=query.values(owner),
        milestone=query.values(milestone),
        priority=query.values(priority),
        label=query.values(label),
        workstream=query.values(workstream),
        search=search,
        created_after=query.moment(created_after, "--created-after"),
        created_before=query.moment(created_before, "--created-before"),
    )
    cfg = config(ctx)
    # The creation dates cost one cached read; only the JSON form and the date filters use them.
    # On a cache miss their git log runs on the other core while the tasks are read.
    dates = _created(cfg) if as_json or filters.by_created else dict
    try:
        # Only --search reads a body; without it a warm list does not read them at all.
        loaded = source.load(cfg, ref, bodies=search is not None)
    finally:
        created = dates()  # git's error, when it fails, comes before any other word, as it always did
    _warn_skipped(loaded)
    tasks = query.select(loaded.tasks, filters, cfg, created)
    entries = _entries(ctx) if tasks else {}
    if as_json:
        now = datetime.now(UTC)
        with gc_paused():
            emit_json_array(_row(t, created.get(t.path), _runtime(entries.get(t.slug), now)) for t in tasks)
        return
    rows = [
        (t.priority, t.status, _state(entries.get(t.slug)), t.slug, t.owner or "-", t.title) for t in tasks
    ]
    if rows:
        echo(table(rows, ("PRI", "STATUS", "STATE", "SLUG", "OWNER", "TITLE")))


def _created(cfg: Config) -> Callable[[], Mapping[str, str]]:
    from ..plan import created  # and json: the text form needs neither

    return created.start(cfg)


def _row(task: Task, created: str | None, runtime: dict[str, Any] | None) -> dict[str, Any]:
    """A task of ``list --json``: its JSON form, when it was created, its runtime view."""
    # Printed at once, so the task's own tuples and mappings serve; adding two keys costs
    # a fifth of copying it into a new dict.
    row = task.to_dict(shared=True)
    row["created"] = created
    row["runtime"] = runtime
    return row


def _entries(ctx: click.Context) -> Mapping[str, RegistryEntry]:
    """Registry entries by slug for the runtime view; a registry problem is a warning."""
    cfg = config(ctx)
    if not cfg.has_registry:
        return {}  # nothing ever ran here; do not pay for importing the registry
    from ..registry.runtimeview import read_entries

    found = read_entries(cfg)
    if found.warning:
        warn(found.warning)
    return found.entries


def _state(entry: RegistryEntry | None) -> str:
    return entry.state if entry else "-"


def _runtime(entry: RegistryEntry | None, now: datetime) -> dict[str, Any] | None:
    if entry is None:
        return None
    from ..registry.runtimeview import runtime_view

    return runtime_view(entry, now)


def show(
    ctx: click.Context,
    slug: Annotated[str, Argument(help="The task's slug (its file stem).")],
    ref: RefOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show one task: frontmatter, body, its dependencies with their status, and its dependents."""
    tasks = _load(ctx, ref)
    task = query.find(tasks, slug)
    deps = [_link(tasks, dep) for dep in task.depends_on]
    dependents = [_link(tasks, t.slug) for t in tasks.tasks if slug in t.depends_on]
    entry = _entries(ctx).get(slug)
    view = _runtime(entry, datetime.now(UTC))
    if as_json:
        emit_json(
            {
                **task.to_dict(body=True),
                "dependencies": deps,
                "dependents": dependents,
                "runtime": view,
                "entry": entry.to_dict(sparse=False) if entry else None,
            }
        )
        return
    echo(_show_text(task, deps, dependents, _runtime_lines(entry, view)))


def _runtime_lines(entry: RegistryEntry | None, view: Mapping[str, Any] | None) -> list[str]:
    """What the registry says about the task, for ``task show``."""
    if entry is None or view is None:
        return ["runtime:   - (no registry entry; 'task claim' starts one)"]
    age = view["heartbeat_age_seconds"]
    beat = f"last heartbeat {entry.heartbeat_at} ({age:.0f} s ago)" if age is not None else "no heartbeat yet"
    lines = [
        f"runtime:   {entry.state}, lease {entry.lease}, {entry.attempt_label}, worker {entry.worker or '-'}",
        f"           {beat}",
    ]
    if entry.progress or entry.progress_percent is not None:
        percent = f"{entry.progress_percent}% " if entry.progress_percent is not None else ""
        lines.append(f"           progress: {percent}{entry.progress or ''}".rstrip())
    if entry.note:
        lines.append(f"           note: {entry.note}")
    if entry.blocker:
        lines.append(f"           blocker: {entry.blocker}")
    if entry.last_error:
        lines.append(f"           last error: {entry.last_error}")
    return lines


def _link(tasks: TaskSet, slug: str) -> dict[str, str | None]:
    task = tasks.get(slug)
    return {"slug": slug, "status": task.status if task else None, "title": task.title if task else None}


def _show_text(
    task: Task,
    deps: list[dict[str, str | None]],
    dependents: list[dict[str, str | None]],
    runtime: list[str],
) -> str:
    fields = [
        ("path", task.path),
        ("title", task.title),
        ("status", task.status),
        ("priority", task.priority),
        ("owner", task.owner),
        ("milestone", task.milestone),
        ("labels", ", ".join(task.labels) or None),
        ("completed", f"{task.completed_at} by {task.completed_by}" if task.completed_at else None),
        ("pr", task.pr),
    ]
    lines = [f"{key + ':':<10} {value}" for key, value in fields if value]
    lines += [f"{key + ':':<10} {value}  (unknown key)" for key, value in task.extra.items()]
    lines += [
        f"{key + ':':<10} {value}  (runtime key; run 'task migrate')" for key, value in task.legacy.items()
    ]
    lines.append(
        "depends on: " + (", ".join(f"{d['slug']} ({d['status'] or 'missing'})" for d in deps) or "-")
    )
    lines.append("needed by:  " + (", ".join(f"{d['slug']} ({d['status']})" for d in dependents) or "-"))
    lines += runtime
    # A CRLF file's body is printed with "\n" as the rest: stdout adds the platform's ending.
    return "\n".join(lines) + "\n\n" + task.body.replace("\r\n", "\n").strip("\n")


def ready(
    ctx: click.Context,
    slug: Annotated[str, Argument(help="The task to queue for dispatch.")],
) -> None:
    """Mark a task ready for dispatch (edits only its status line)."""
    from ..plan import edits

    edit = edits.mark_ready(config(ctx), slug)
    echo(f"{edit.path}: {'status: ready' if edit.changed else 'already ready'}")


def complete(
    ctx: click.Context,
    slug: Annotated[str, Argument(help="The task that is done.")],
    by: Annotated[
        str | None, Option(help="Who completed it (default: $TASKFILES_ACTOR or your login).")
    ] = None,
    pr: Annotated[str | None, Option(help="The pull request that landed it.")] = None,
) -> None:
    """Record the completion in the task file: status, completed_by, completed_at, pr.

    Commit this in the task's own branch so it lands with the work.
    """
    from ..plan import edits

    edit = edits.complete(config(ctx), slug, by=by, pr=pr)
    echo(f"{edit.path}: {'completed' if edit.changed else 'unchanged'}")


FORMATS = ("text", "json", "github")


def validate(
    ctx: click.Context,
    paths: Annotated[
        list[Path] | None, Argument(help="Only report these files (checked against all).")
    ] = None,
    ref: RefOption = None,
    base: Annotated[
        str | None,
        Option(
            help="The ref this work merges into, for slug_collision (default: base_ref of the "
            "settings, skipped when it does not exist; given here, it must exist)."
        ),
    ] = None,
    output: Annotated[
        str | None,
        Option(
            "--format",
            click_type=click.Choice(FORMATS),
            help="text: path:line: message (default); json: one document (as --json); "
            "github: GitHub Actions annotations (::error file=...,line=...::message).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check every task file; print each problem as path:line: message. Exit 1 on any error.

    A file whose slug the base ref got at another path since this branch forked (two
    branches each added the task) is a slug_collision error naming both paths.
    """
    from ..plan.validate import validate as run_validate

    chosen = _output_format(output, as_json)
    cfg = config(ctx)
    tasks = source.load(cfg, ref)
    if base is not None:
        git.resolve_commit(cfg.root, base)  # a --base that names nothing is exit 3, not a pass
    missing = [cfg.relpath(p.resolve()) for p in paths or () if ref is None and not p.exists()]
    if missing:  # a typo in a hook's or a CI job's path would otherwise pass for ever
        raise UsageError(f"no such file: {missing[0]}; give paths of task files, or none to check them all")
    wanted = [cfg.relpath(p.resolve()) for p in paths] if paths else None
    problems = run_validate(cfg, tasks, wanted, base=base or cfg.base_ref)
    errors = sum(1 for p in problems if p.severity == "error")
    files = len(tasks.tasks) + len(tasks.skipped)
    if chosen == "json":
        emit_json(
            {
                "ok": errors == 0,
                "errors": errors,
                "warnings": len(problems) - errors,
                "files": files,
                "problems": [p.to_dict() for p in problems],
            }
        )
        if errors:
            raise Reported(ValidationFailed.exit_code)  # the JSON document is the report
        return
    for problem in problems:
        echo(annotation(problem) if chosen == "github" else str(problem))
    click.echo(f"{files} files, {errors} error(s), {len(problems) - errors} warning(s)", err=True)
    if errors:
        raise ValidationFailed(f"{errors} error(s) in task files; fix them and run 'task validate' again")


def _output_format(output: str | None, as_json: bool) -> str:
    """--format's value; --json is --format json, and the two must agree."""
    if as_json and output not in (None, "json"):
        raise UsageError(f"--json and --format {output} disagree; give one of them")
    return "json" if as_json else output or "text"


def next_task(
    ctx: click.Context,
    owner: Annotated[
        str | None,
        Option(help="Only tasks of this owner (aliases collapse; with owners configured, it must be one)."),
    ] = None,
    claim: Annotated[bool, Option("--claim", help="Claim it too, atomically, and print the lease.")] = False,
    worker: Annotated[
        str | None, Option(help="Worker id for --claim (default: $TASKFILES_WORKER or you@host).")
    ] = None,
    ref: RefOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The task a worker should take next: ready, dependencies completed, and not claimed,
    running, parked, stopped, backing off or in review in the registry; highest priority
    first.

    Ties between equal priorities go to the alphabetically first slug. Without
    --claim it names the task --claim would take now; with it, picking and claiming
    are one registry transaction: two agents running it at once never get the same
    task. Exit 0 whether or not there is one (--json prints null when not); exit 6 when
    the registry cannot be read, since what may be taken depends on it.
    """
    if claim:
        return _claim_next(ctx, owner, worker, ref, as_json)
    from ..claims import next_task as pick
    from ..claims import queue
    from ..registry import existing_registry

    cfg = config(ctx)
    with gc_paused():
        seen = queue(cfg, existing_registry(cfg), ref)
        _warn_skipped(seen.tasks)
        task = pick(seen, cfg, owner)
    if as_json:
        emit_json(task.to_dict() if task else None)
    elif task is None:
        click.echo("no ready task with all dependencies completed and no live claim", err=True)
    else:
        echo(f"{task.slug}\t{task.priority}\t{task.path}\t{task.title}")


def _claim_next(
    ctx: click.Context, owner: str | None, worker: str | None, ref: str | None, as_json: bool
) -> None:
    from ..claims import claim_next
    from ..registry import open_registry
    from .runtime import worker_id

    cfg = config(ctx)
    entry = claim_next(cfg, open_registry(cfg), worker=worker or worker_id(), owner=owner, ref=ref)
    if as_json:
        emit_json(entry.to_dict(sparse=False) if entry else None)
    elif entry is None:
        click.echo("no ready task with all dependencies completed and no live claim", err=True)
    else:
        echo(f"{entry.slug}\t{entry.lease}")
