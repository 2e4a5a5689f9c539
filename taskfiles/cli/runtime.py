"""Commands over the runtime registry: claims, heartbeats, facts, operator actions, logs, status.

None of these touch a task file except ``migrate``, which moves legacy runtime keys
out of frontmatter and into the registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click

from ..errors import UsageError, reason
from ..process import exit_code as exit_code_of
from .app import JsonFlag, RefOption, config, echo, emit_json
from .params import App, Argument, Option

if TYPE_CHECKING:
    # Imported where used: every command pays for this module's import, and the
    # registry modules are ~10 ms that 'task list' does not need.
    from ..config import Config
    from ..registry import Event, LogRecord, Registry, RegistryEntry

LeaseOption = Annotated[
    int,
    Option("--lease", envvar="TASKFILES_LEASE", help="The lease from your claim ($TASKFILES_LEASE)."),
]
OptionalLease = Annotated[
    int | None,
    Option("--lease", envvar="TASKFILES_LEASE", help="Fence the write with this lease ($TASKFILES_LEASE)."),
]
SlugArg = Annotated[str, Argument(help="The task's slug.")]


def worker_id() -> str:
    """$TASKFILES_WORKER, else actor@host ($TASKFILES_ACTOR or the login name)."""
    from ..registry import Actor

    actor = Actor.current()
    return os.environ.get("TASKFILES_WORKER") or f"{actor.who}@{actor.host}"


def _registry(ctx: click.Context) -> Registry:
    from ..registry import open_registry

    return open_registry(config(ctx))


def _operate(ctx: click.Context, slug: str, write: Callable[[Registry], RegistryEntry]) -> RegistryEntry:
    """An operator's write on the entry of ``slug``; without one, says whether the task is
    unknown or was never claimed (``facts.on_entry``)."""
    from ..facts import on_entry

    return on_entry(config(ctx), _registry(ctx), slug, write)


def _show_entry(entry: RegistryEntry, as_json: bool, text: str) -> None:
    if as_json:
        emit_json(entry.to_dict(sparse=False))
    else:
        echo(text)


def _fact(
    ctx: click.Context,
    slug: str,
    lease: int | None,
    fact: Callable[[Registry], RegistryEntry | None],
    as_json: bool,
    text: Callable[[RegistryEntry], str],
) -> None:
    """Record a runtime fact on any known task and say so: with the entry it updated, or,
    for a task without one, that it was recorded as an event alone."""
    from ..facts import record

    entry = record(config(ctx), _registry(ctx), slug, lease, fact)
    if entry is not None:
        _show_entry(entry, as_json, text(entry))
    elif as_json:
        emit_json({"slug": slug, "entry": None, "event_only": True})
    else:
        echo(f"{slug}: recorded as an event (the task has no registry entry; 'task events {slug}' shows it)")


def register(app: App) -> None:
    """Add this module's commands (and the ``registry`` group) to ``app``."""
    for command in (
        claim,
        start,
        heartbeat,
        finish,
        release,
        note,
        progress,
        blocker,
        evidence,
        artifact,
        stop,
        retry,
        review,
        park,
        unpark,
        log,
        logs,
        events,
        gc,
        status,
        migrate,
    ):
        app.command(command.__name__)(command)
    group = App("Maintain the runtime registry itself.")
    group.command("repair")(repair)
    group.command("migrate")(migrate_schema)
    group.command("copy")(copy_registry)
    app.add_group(group, "registry")


def claim(
    ctx: click.Context,
    slug: SlugArg,
    worker: Annotated[str | None, Option(help="Worker id (default: $TASKFILES_WORKER or you@host).")] = None,
    ref: RefOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Claim a ready task whose dependencies are completed; print the lease.

    Refused (exit 4) when the task is not ready, waits on a dependency, or has a live claim.
    """
    from ..claims import claim as claim_task

    entry = claim_task(config(ctx), _registry(ctx), slug, worker=worker or worker_id(), ref=ref)
    click.echo(f"claimed {slug!r} for {entry.worker} (attempt {entry.attempt})", err=True)
    _show_entry(entry, as_json, str(entry.lease))


def start(
    ctx: click.Context,
    slug: SlugArg,
    lease: LeaseOption,
    pid: Annotated[
        int | None,
        Option(
            help="The long-lived worker process to watch (e.g. --pid $$ in a wrapper script); "
            "status flags worker_gone when it dies. Default: none, only heartbeats count.",
            min=1,
            max=2**32 - 1,  # a pid on any system (Linux's reach 2**22, Windows' 2**32)
        ),
    ] = None,
    worktree: Annotated[str | None, Option(help="Where the work happens.")] = None,
    branch: Annotated[str | None, Option(help="The branch of the work.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record that the worker holding the lease has started."""
    from ..process import pid_start_time

    # No default pid: the caller's parent is often a shell that exits at once (an
    # agent's tool call), and recording it would make status report worker_gone.
    started = pid_start_time(pid) if pid else None
    entry = _registry(ctx).start(
        slug, lease, pid=pid, pid_start_time=started, worktree=worktree, branch=branch
    )
    _show_entry(entry, as_json, f"{slug}: running (lease {lease}{f', pid {pid}' if pid else ''})")


def heartbeat(
    ctx: click.Context,
    slug: SlugArg,
    lease: LeaseOption,
    note: Annotated[str | None, Option(help="A progress note.")] = None,
    cost_usd: Annotated[
        float | None, Option("--cost-usd", help="Cost since the last heartbeat, in USD.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Tell the registry the worker is alive. Exit 5 means your lease was superseded: stop."""
    entry = _registry(ctx).heartbeat(slug, lease, note=note, cost_usd=cost_usd)
    _show_entry(
        entry, as_json, f"{slug}: heartbeat at {entry.heartbeat_at} (cost ${entry.cost_usd:.2f} this attempt)"
    )


def finish(
    ctx: click.Context,
    slug: SlugArg,
    lease: LeaseOption,
    exit_code: Annotated[
        int,
        Option("--exit-code", help="The work's exit code: 0..255 (0: success), -N killed by signal N."),
    ],
    error: Annotated[str | None, Option(help="What went wrong, when it did.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record the end of an attempt with its exit code."""
    entry = _registry(ctx).finish(slug, lease, exit_code_of(exit_code), error=error)
    _show_entry(entry, as_json, f"{slug}: {entry.state} (exit {exit_code})")


def release(
    ctx: click.Context,
    slug: SlugArg,
    reason: Annotated[str | None, Option(help="Why.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """End the claim for good (the lease history stays, so no lease is reused)."""
    entry = _operate(ctx, slug, lambda r: r.release(slug, reason=reason))
    _show_entry(entry, as_json, f"{slug}: released")


def note(
    ctx: click.Context,
    slug: SlugArg,
    text: Annotated[str, Argument(help="The note.")],
    lease: OptionalLease = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a note on any known task (the entry's last note; an event alone when the task
    has no registry entry). It never replaces the progress message."""
    _fact(ctx, slug, lease, lambda r: r.note(slug, text, lease=lease), as_json, lambda e: f"{slug}: noted")


def progress(
    ctx: click.Context,
    slug: SlugArg,
    percent: Annotated[int, Argument(help="0 to 100.")],
    message: Annotated[str | None, Argument(help="What is done so far.")] = None,
    lease: OptionalLease = None,
    as_json: JsonFlag = False,
) -> None:
    """Record how far along the work is (on any known task; see 'task note')."""
    _fact(
        ctx,
        slug,
        lease,
        lambda r: r.progress(slug, percent, message, lease=lease),
        as_json,
        lambda e: f"{slug}: {e.progress_percent}%",
    )


def blocker(
    ctx: click.Context,
    slug: SlugArg,
    text: Annotated[str | None, Argument(help="What blocks the work.")] = None,
    clear: Annotated[bool, Option("--clear", help="Clear the blocker.")] = False,
    lease: OptionalLease = None,
    as_json: JsonFlag = False,
) -> None:
    """Record (or with --clear, clear) what blocks the work (on any known task; see 'task note')."""
    if not clear and not text:
        raise click.BadParameter("give the blocker's text, or --clear")
    said = "cleared" if clear else "recorded"
    _fact(
        ctx,
        slug,
        lease,
        lambda r: r.blocker(slug, None if clear else text, lease=lease),
        as_json,
        lambda e: f"{slug}: blocker {said}",
    )


def evidence(
    ctx: click.Context,
    slug: SlugArg,
    command: Annotated[str, Option("--command", help="The command that was run, e.g. 'make test'.")],
    exit_code: Annotated[
        int, Option("--exit-code", help="How it ended: 0..255 (0: success), -N killed by signal N.")
    ],
    summary: Annotated[str | None, Option(help="One line on what it showed.")] = None,
    lease: OptionalLease = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a command run as evidence (tests, builds) and its exit code (on any known task)."""
    code = exit_code_of(exit_code)
    _fact(
        ctx,
        slug,
        lease,
        lambda r: r.evidence(slug, command, code, summary, lease=lease),
        as_json,
        lambda e: f"{slug}: evidence recorded ({len(e.evidence)} in all)",
    )


def artifact(
    ctx: click.Context,
    slug: SlugArg,
    ref: Annotated[str, Argument(metavar="PATH_OR_URL", help="What the work produced.")],
    lease: OptionalLease = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a path or URL the work produced (on any known task)."""
    _fact(
        ctx,
        slug,
        lease,
        lambda r: r.artifact(slug, ref, lease=lease),
        as_json,
        lambda e: f"{slug}: artifact recorded",
    )


def stop(
    ctx: click.Context,
    slug: SlugArg,
    reason: Annotated[str | None, Option(help="Why.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Operator: stop a running attempt (its worker is refused from then on)."""
    entry = _operate(ctx, slug, lambda r: r.stop(slug, reason=reason))
    _show_entry(entry, as_json, f"{slug}: stopped")


def retry(
    ctx: click.Context,
    slug: SlugArg,
    reason: Annotated[str | None, Option(help="Why.")] = None,
    fresh: Annotated[bool, Option("--fresh", help="Start over from the base ref.")] = False,
    instructions: Annotated[
        str | None,
        Option(help="What the next attempt should do differently (its prompt shows them)."),
    ] = None,
    instructions_file: Annotated[
        str | None,
        Option("--instructions-file", help="Read the instructions from this file ('-': stdin)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Operator: make a failed, parked, stopped or exited task claimable now.

    The next attempt keeps the branch and worktree (unless --fresh); with instructions,
    its prompt shows them under their own heading, with who gave them and when.
    """
    given = _text_option(instructions, instructions_file, "--instructions")
    entry = _operate(ctx, slug, lambda r: r.retry(slug, reason=reason, fresh=fresh, instructions=given))
    with_them = " with instructions" if given else ""
    _show_entry(entry, as_json, f"{slug}: will be retried{' from scratch' if fresh else ''}{with_them}")


def review(
    ctx: click.Context,
    slug: SlugArg,
    request_changes: Annotated[
        str | None,
        Option("--request-changes", help="What to change: the next attempt's prompt shows it."),
    ] = None,
    request_changes_file: Annotated[
        str | None,
        Option("--request-changes-file", help="Read what to change from this file ('-': stdin)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Reviewer: send a task in review (its worker exited 0) back with the changes to make.

    It is claimable now; the next attempt keeps the branch and worktree and gets the
    changes in its prompt. Refused (exit 4) for a task in any other state.
    """
    given = _text_option(request_changes, request_changes_file, "--request-changes")
    if given is None:
        raise UsageError(
            f"say what to change: task review {slug} --request-changes TEXT (or --request-changes-file F)"
        )
    entry = _operate(ctx, slug, lambda r: r.request_changes(slug, instructions=given))
    _show_entry(entry, as_json, f"{slug}: changes requested; the next attempt gets them")


def _text_option(text: str | None, path: str | None, option: str) -> str | None:
    """The text of ``option`` or of ``option``-file (``-``: stdin); UsageError for both, for a
    file that cannot be read, and for empty text."""
    if text is not None and path is not None:
        raise UsageError(f"give {option} or {option}-file, not both")
    if path is not None:
        text = _read_text(path, f"{option}-file")
    if text is not None and not text.strip():
        given = f"{option}-file {path}" if path is not None else option
        raise UsageError(f"{given} is empty; say what the next attempt should do differently")
    return text


def _read_text(path: str, option: str) -> str:
    import io
    import sys

    try:
        if path == "-":  # as read_text reads a file: UTF-8 (a Windows pipe's default is cp1252)
            return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8").read()
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = reason(exc)
        raise UsageError(f"{option} {path}: cannot read it ({why}); give a readable UTF-8 file") from None


def park(
    ctx: click.Context,
    slug: SlugArg,
    reason: Annotated[str, Option(help="Why it must wait for a human (not empty).")],
    as_json: JsonFlag = False,
) -> None:
    """Operator: keep a task from being dispatched until it is unparked."""
    if not reason.strip():
        raise UsageError(
            "--reason is empty; say why the task must wait, e.g. --reason 'needs a design decision'"
        )
    entry = _operate(ctx, slug, lambda r: r.park(slug, reason=reason))
    _show_entry(entry, as_json, f"{slug}: parked")


def unpark(
    ctx: click.Context,
    slug: SlugArg,
    reason: Annotated[str | None, Option(help="Why.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Operator: let a parked task be dispatched again."""
    entry = _operate(ctx, slug, lambda r: r.unpark(slug, reason=reason))
    _show_entry(entry, as_json, f"{slug}: unparked")


def log(
    ctx: click.Context,
    slug: SlugArg,
    message: Annotated[str, Argument(help="The line to log.")],
    level: Annotated[str, Option(help="debug, info, warning or error.")] = "info",
    source: Annotated[str, Option(help="Who speaks, e.g. agent, tests.")] = "agent",
    field: Annotated[
        list[str] | None,
        Option(
            "--field",
            metavar="NAME=VALUE",
            help="A structured fact on the line, e.g. --field tool=pytest --field passed=41 (repeatable; "
            "NAME a short identifier, VALUE one line of at most 1000 characters; at most 20 fields).",
        ),
    ] = None,
    lease: OptionalLease = None,
) -> None:
    """Append a line to the current attempt's log."""
    from ..registry.runlog import parse_fields

    fields = parse_fields(field or [])
    attempt = _registry(ctx).log(slug, message, lease=lease, level=level, source=source, fields=fields)
    echo(f"{slug}: logged to attempt {attempt}")


def _log_line(record: LogRecord) -> str:
    from ..registry.runlog import format_fields

    line = f"{record.time} {record.level:<7} {record.source:<8} {record.message}"
    return f"{line} {format_fields(record.fields)}" if record.fields else line


def logs(
    ctx: click.Context,
    slug: SlugArg,
    attempt: Annotated[int | None, Option(help="Which attempt (default: the latest).")] = None,
    level: Annotated[str | None, Option(help="This level and above.")] = None,
    source: Annotated[str | None, Option(help="Only this source.")] = None,
    follow: Annotated[
        bool, Option("--follow", "-f", help="Keep printing new lines until the attempt ends.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Print an attempt's log."""
    registry = _registry(ctx)
    if follow:
        for record in registry.follow_logs(slug, attempt=attempt, level=level, source=source):
            emit_json(record.to_dict()) if as_json else echo(_log_line(record))
        return
    page = registry.logs(slug, attempt=attempt, level=level, source=source)
    for warning in page.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        emit_json({"slug": slug, "attempt": page.attempt, "records": [r.to_dict() for r in page.records]})
    else:
        for record in page.records:
            echo(_log_line(record))


def _event_line(event: Event) -> str:
    details = " ".join(f"{k}={v}" for k, v in event.details.items())
    lease = f" lease={event.lease}" if event.lease is not None else ""
    actor = f"{event.actor.who}@{event.actor.host}"
    return f"{event.time} {event.type:<22} {event.slug or '-'}{lease} by {actor} {details}".rstrip()


def events(
    ctx: click.Context,
    slug: Annotated[str | None, Argument(help="Only this task's events.")] = None,
    since: Annotated[str | None, Option(help="ISO time, e.g. 2026-11-22T10:00:00Z.")] = None,
    follow: Annotated[
        bool, Option("--follow", "-f", help="Keep printing new events (Ctrl-C to stop).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Print the event log: every state change, with time, actor and lease."""
    registry = _registry(ctx)
    when = _since(since)
    if follow:
        for event in registry.follow_events(slug, when):
            emit_json(event.to_dict()) if as_json else echo(_event_line(event))
        return
    page = registry.events(slug, when)
    for warning in page.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        emit_json([event.to_dict() for event in page.events])
    else:
        for event in page.events:
            echo(_event_line(event))


def _since(text: str | None) -> datetime | None:
    from ..registry.records import parse_time

    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO time; use e.g. 2026-11-22T10:00:00Z") from None


def gc(
    ctx: click.Context,
    older_than: Annotated[float, Option("--older-than", help="Age in days.")] = 30.0,
    as_json: JsonFlag = False,
) -> None:
    """Remove released entries, their logs, prompts and worker output, and archive events,
    older than the cutoff; and attempt logs older than [logs] retention_days (not a live one)."""
    from ..dispatch.hostfiles import HostFiles
    from ..dispatch.hostfiles import gc as collect
    from ..settings import MAX_DAYS

    if not 0 <= older_than <= MAX_DAYS:  # NaN fails both; past it the cutoff is before year 1
        raise UsageError(f"--older-than must be a number of days from 0 to {MAX_DAYS}, not {older_than:g}")
    cfg = config(ctx)
    report = collect(
        _registry(ctx), HostFiles.of(cfg), older_than, log_retention_days=cfg.logs.retention_days
    )
    report = replace(report, archive=report.archive and _where(cfg, report.archive))
    if as_json:
        emit_json(_asdict(report))
        return
    expired = sum(1 for name in report.logs_removed if name.endswith(".log"))
    echo(
        f"removed {len(report.entries_removed)} released entries, "
        f"{len(report.logs_removed) - expired} task folders and {expired} attempt logs "
        f"({report.log_bytes_removed} bytes); "
        + (
            f"archived {report.events_archived} events to {report.archive}"
            if report.archive
            else f"removed {report.events_archived} old events"
        )
    )


def _where(cfg: Config, location: str) -> str:
    """A registry file a store names, shown as every path is (from the repository root, with
    forward slashes); a database URL as it is."""
    return location if "://" in location else cfg.relpath(Path(location))


def repair(ctx: click.Context, as_json: JsonFlag = False) -> None:
    """Rebuild an unreadable registry.json from its backup and the event log."""
    cfg = config(ctx)
    report = _registry(ctx).repair()
    aside = report.moved_aside and _where(cfg, report.moved_aside)
    report = replace(report, registry=_where(cfg, report.registry), moved_aside=aside)
    if as_json:
        emit_json(_asdict(report))
        return
    if not report.needed:
        echo(f"{report.registry} is readable; nothing to repair")
        return
    echo(f"{report.registry}: {report.problem}")
    echo(
        f"rebuilt {report.entries} entries ({'from the backup, ' if report.from_backup else ''}"
        f"{report.events_replayed} events replayed); the unreadable file is at {report.moved_aside}"
    )
    for item in report.unrecovered:
        echo(f"could not recover: {item}")


def migrate_schema(
    ctx: click.Context,
    url: Annotated[
        str | None,
        Option(help="The database (default: registry_url / $TASKFILES_REGISTRY_URL)."),
    ] = None,
) -> None:
    """Create or upgrade the PostgreSQL registry's tables (once, from any host; safe to repeat)."""
    from ..config import postgres_url, redacted
    from ..registry import pgschema

    target = postgres_url(url, "--url") if url is not None else config(ctx).registry_url
    if not target:
        raise UsageError(
            "no PostgreSQL registry is configured: set registry_url in taskfiles.toml or "
            "TASKFILES_REGISTRY_URL, or pass --url"
        )
    pgschema.psycopg_module()
    applied = pgschema.migrate(target)
    if applied:
        echo(f"{redacted(target)}: applied {', '.join(applied)}")
    else:
        echo(f"{redacted(target)}: the schema is current (version {pgschema.latest()})")


def copy_registry(
    ctx: click.Context,
    to: Annotated[str, Option("--to", help="Where to copy: a postgresql:// URL or a folder.")],
    source: Annotated[
        str | None,
        Option("--from", help="What to copy (default: this repository's registry)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy a registry, with its entries, lease history, events and logs, into an empty store.

    From the folder to a database when a team moves to PostgreSQL (then set registry_url),
    or from a database back to a folder.
    """
    from ..registry import open_location
    from ..registry.copy import copy

    cfg = config(ctx)
    origin = open_location(source, cfg) if source else _registry(ctx)
    report = copy(origin, open_location(to, cfg))
    if as_json:
        emit_json(_asdict(report))
        return
    echo(
        f"copied {report.entries} entries, {report.leases} lease highs, {report.events} events and "
        f"{report.log_lines} log lines from {report.source} to {report.target}"
    )


def _asdict(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(value)


def status(
    ctx: click.Context,
    slug: Annotated[str | None, Argument(help="Only this task.")] = None,
    owner: Annotated[
        str | None,
        Option(help="Only this owner's tasks (aliases collapse; with owners configured, it must be one)."),
    ] = None,
    ref: RefOption = None,
    working_tree: Annotated[
        bool, Option("--working-tree", help="Read task files from the working tree, not the base ref.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The effective state of every task: its bucket, state and signals.

    Reads task files at the base ref (what the dispatcher sees) unless --ref or
    --working-tree says otherwise, and the same classification the heartbeat uses.
    """
    from ..plan.cache import gc_paused
    from ..status import observe, planning_source
    from .statusview import render_status

    cfg = config(ctx)
    owner = cfg.owner_named(owner) if owner is not None else None
    # Every object made here lives until the process exits (10,000 tasks and their rows):
    # the cyclic GC would rescan them over and over, for ~40 ms, and free nothing.
    with gc_paused():
        source = planning_source(cfg, ref, working_tree=working_tree)
        # tolerant=False: classifying without the registry would call claimed tasks ready
        seen = observe(cfg, _registry(ctx), now=datetime.now(UTC), source=source, tolerant=False)
        seen = seen.only(cfg, slug=slug, owner=owner)
        if as_json:
            emit_json(seen.to_dict())
        else:
            echo(render_status(seen))


def migrate(
    ctx: click.Context,
    dry_run: Annotated[bool, Option("--dry-run", help="Report what would move; change nothing.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Move legacy runtime keys (status: in_progress, started_at, claimed_by, ...) into the registry.

    Each file loses only those lines; the registry gains the claim they described.
    """
    from .. import migration

    report = migration.migrate(config(ctx), _registry(ctx), dry_run=dry_run)
    if as_json:
        emit_json(report.to_dict())
        return
    for moved in report.files:
        echo(f"{moved.path}: {'would move' if dry_run else 'moved'} {', '.join(moved.keys)}")
    if not report.files:
        echo("no runtime keys in task files; nothing to migrate")
