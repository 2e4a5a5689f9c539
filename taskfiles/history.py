"""One task's history: its file's commits and its registry events, as one timeline.

Two sources, merged oldest first:

- git: each commit of HEAD's history that changed the task file, following renames
  (``git log --follow``): ``created`` (the first), ``edited`` (with the frontmatter keys
  it changed, and ``body``), ``readied``, ``completed``, ``cancelled`` (the status moved
  there), ``renamed`` and ``deleted``; each with commit, author, date and subject. The
  versions are compared as parsed frontmatter, read from git's objects (never a
  checkout). A working-tree file that differs from HEAD adds a last ``uncommitted`` item.
- the registry: every event recorded for the slug (claims, starts, exits, retries,
  notes, ...), with its actor and lease.

The git walk stops at ``LIMIT`` commits (a task edited thousands of times): the items
then begin at the oldest commit read, and ``truncated`` says so. In a shallow clone the
oldest commit there has no parent, so git shows it adding every file: it is a baseline,
not the task's creation, and a warning says the history is cut there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import git
from .config import Config
from .errors import GitError, NotFoundError
from .plan import frontmatter, query, yamlsafe
from .registry import Event, Registry
from .registry.records import format_time, parse_time

LIMIT = 500  # commits of one file read at most
STATUS_KINDS = {"ready": "readied", "completed": "completed", "cancelled": "cancelled"}
_Version = tuple[dict[str, Any], str] | None  # (frontmatter, body); None: unreadable


@dataclass(frozen=True)
class Item:
    """One point of the timeline: when, from which source, what kind, and what else it says
    (``details``: commit, author, subject, keys, ... for git; event, actor, lease, details
    for the registry)."""

    time: str  # ISO 8601 UTC, as the registry writes times
    source: str  # "git" or "registry"
    kind: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``time``, ``source``, ``kind`` and the details beside them."""
        return {"time": self.time, "source": self.source, "kind": self.kind, **self.details}

    @property
    def summary(self) -> str:
        """One line on what happened (the CLI's text and the page's column)."""
        d = self.details
        if self.source == "registry":
            said = " ".join(f"{k}={v}" for k, v in (d.get("details") or {}).items() if v is not None)
            lease = f" lease={d['lease']}" if d.get("lease") is not None else ""
            return f"by {d.get('actor')}{lease}{f' {said}' if said else ''}"
        what = []
        if d.get("renamed_from"):
            what.append(f"from {d['renamed_from']}")
        if d.get("status_from") is not None or d.get("status_to") is not None:
            what.append(f"status {d.get('status_from')} -> {d.get('status_to')}")
        if d.get("keys"):
            what.append(f"keys: {', '.join(d['keys'])}")
        if self.kind == "uncommitted":
            done = "deleted" if d.get("deleted") else "new file" if d.get("new") else None
            return "; ".join(["not committed", *([done] if done else []), *what])
        head = f"{str(d.get('commit', ''))[:10]} by {d.get('author')}: {d.get('subject')}"
        return f"{head} ({'; '.join(what)})" if what else head


@dataclass(frozen=True)
class History:
    """A task's timeline, and what it could not show."""

    slug: str
    path: str | None  # the task file (None: no file has the slug any more)
    items: tuple[Item, ...]
    truncated: bool = False  # the git walk stopped at LIMIT commits
    warnings: tuple[str, ...] = ()
    gone: bool = False  # ``path`` is where the file was until a commit deleted it

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (documented in the README)."""
        return {
            "slug": self.slug,
            "path": self.path,
            "file_gone": self.path is None or self.gone,
            "truncated": self.truncated,
            "limit": LIMIT,
            "items": [item.to_dict() for item in self.items],
            "warnings": list(self.warnings),
        }


def history(config: Config, registry: Registry, slug: str) -> History:
    """The timeline of ``slug``; NotFoundError (with the closest slug) when neither a task
    file nor a registry event knows it."""
    page = registry.events(slug)
    return timeline(config, slug, page.events, warnings=page.warnings)


def timeline(
    config: Config,
    slug: str,
    events: Sequence[Event],
    *,
    path: str | None = None,
    warnings: Sequence[str] = (),
) -> History:
    """Merge the git history of ``slug``'s file (at ``path``, else where ``query.locate``
    finds it, else where HEAD's history last had it before a commit deleted it) with
    ``events`` (the slug's registry events, already read)."""
    gone = False
    if path is None:
        try:
            path = query.locate(config, slug)
        except NotFoundError:
            # A file deleted by a commit: its history is still in HEAD's, ending 'deleted'.
            path = _deleted_path(config, slug)
            gone = path is not None
            if path is None and not events:
                raise
    said = list(warnings)
    items, truncated, shallow = _git_items(config, path) if path is not None else ([], False, False)
    if path is None:
        said.append(f"no task file has the slug {slug!r} any more; only its registry events are shown")
    elif gone:
        said.append(f"the task file is gone; its history is that of {path} until it was deleted")
    if truncated:
        said.append(f"the file has more than {LIMIT} commits; only the latest {LIMIT} are shown")
    if shallow:
        said.append(
            "this is a shallow clone: commits before its oldest one are not here, so the task's "
            "creation and earlier edits are not shown; 'git fetch --unshallow' brings them"
        )
    items += [_event_item(event) for event in events]
    ordered = sorted(enumerate(items), key=lambda pair: (_moment(pair[1].time), pair[0]))
    return History(slug, path, tuple(item for _, item in ordered), truncated, tuple(said), gone)


# -- git ------------------------------------------------------------------------------------------


def _git_items(config: Config, path: str) -> tuple[list[Item], bool, bool]:
    """The file's commits as items, whether the walk hit ``LIMIT``, and whether it reached a
    shallow clone's boundary (then the oldest commit is only the version to compare with)."""
    if config.repo is None:
        return [], False, False
    try:
        log = git.file_log(config.root, path, limit=LIMIT + 1)
    except (GitError, NotFoundError):  # no commit yet: only the working tree has it
        log = []
    truncated = len(log) > LIMIT
    oldest_first = log[::-1]
    shallow = not truncated and bool(log) and oldest_first[0].commit in git.shallow_commits(config.repo)
    blobs = {f.blob for entry in log for f in entry.files if f.blob}
    contents = git.read_blobs(config.root, blobs) if blobs else {}
    versions = {blob: _version(data) for blob, data in contents.items()}
    items: list[Item] = []
    before: _Version = None
    known = False  # whether ``before`` is a version read (not the start of history)
    for index, entry in enumerate(oldest_first):
        change = entry.files[0] if entry.files else None
        after = versions.get(change.blob) if change and change.blob else None
        if not ((truncated or shallow) and index == 0):  # past the cap, or the clone: a baseline
            items.append(_commit_item(entry, change, before if known else None, after, first=not known))
        before, known = after, True
    last = oldest_first[-1].files if oldest_first else ()
    head_blob = last[0].blob if last else None  # None: HEAD does not have the file
    items += _uncommitted(config, path, contents.get(head_blob) if head_blob else None)
    return items, truncated, shallow


def _deleted_path(config: Config, slug: str) -> str | None:
    """Where HEAD's history last had ``<slug>.md`` under the tasks folder, for a file that is
    gone (deleted by a commit, or from the working tree only, with no base ref to find it
    at): one ``git log`` over the folder, read only when no file has the slug."""
    if config.repo is None:
        return None
    try:
        log = git.folder_log(config.root, config.relpath(config.tasks_dir))
    except (GitError, NotFoundError):  # no commit yet
        return None
    name = f"{slug}.md"
    paths = [change.path for entry in log for change in entry.files if change.path.rsplit("/", 1)[-1] == name]
    return paths[-1] if paths else None


def _commit_item(
    entry: git.LogEntry, change: git.FileChange | None, before: _Version, after: _Version, *, first: bool
) -> Item:
    details: dict[str, Any] = {
        "commit": entry.commit,
        "author": entry.author,
        "date": entry.date,
        "subject": entry.subject,
        "path": change.path if change else None,
    }
    status = change.status if change else "M"
    if status == "R" and change is not None:
        details["renamed_from"] = change.old_path
    kind = "created" if first else "deleted" if status == "D" else "edited"
    if not first and status != "D":
        details.update(_compared(before, after))
        moved = details.get("status_to")
        if "status_to" in details and moved in STATUS_KINDS:
            kind = STATUS_KINDS[str(moved)]
        elif status == "R":
            kind = "renamed"
    return Item(_utc(entry.date), "git", kind, details)


def _compared(before: _Version, after: _Version) -> dict[str, Any]:
    """The keys (and ``body``) that differ between two versions, and the status move."""
    if before is None or after is None:
        return {"keys": None}  # a version that cannot be parsed: what changed is unknown
    old, new = before[0], after[0]
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k, _MISSING) != new.get(k, _MISSING))
    if before[1] != after[1]:
        keys.append("body")
    found: dict[str, Any] = {"keys": keys}
    if "status" in keys:
        found.update(status_from=old.get("status"), status_to=new.get("status"))
    return found


_MISSING = object()


def _version(data: bytes) -> _Version:
    """A file's frontmatter and body, or None when it does not parse."""
    try:
        split = frontmatter.split(data.decode("utf-8"))
        meta = frontmatter.load_header(split).value
    except (UnicodeDecodeError, frontmatter.SplitError, yamlsafe.YamlError):
        return None
    return (meta if isinstance(meta, dict) else {}), split.body


def _uncommitted(config: Config, path: str, head: bytes | None) -> list[Item]:
    """The working tree's change to the file since HEAD (``head``: its bytes there, None when
    HEAD does not have it), as one item; none when the two are the same bytes."""
    file = config.root / path
    try:
        data, stamp = file.read_bytes(), file.stat().st_mtime
    except OSError:
        if head is None:
            return []
        return [Item(format_time(datetime.now(UTC)), "git", "uncommitted", {"path": path, "deleted": True})]
    if data == head:
        return []
    now = _version(data)
    details: dict[str, Any] = {"path": path}
    if head is None:
        details.update(new=True, keys=sorted(now[0]) if now else None)
    else:
        details.update(_compared(_version(head), now))
    return [Item(format_time(datetime.fromtimestamp(stamp, UTC)), "git", "uncommitted", details)]


# -- the registry ---------------------------------------------------------------------------------


def _event_item(event: Event) -> Item:
    details = {
        "event": event.type,
        "actor": f"{event.actor.who}@{event.actor.host}" if event.actor.host else event.actor.who,
        "lease": event.lease,
        "details": dict(event.details),
    }
    return Item(event.time, "registry", event.type.removeprefix("task."), details)


# -- times ----------------------------------------------------------------------------------------


def _utc(stamp: str) -> str:
    """A git date (ISO with its offset) as a registry time (UTC, ``Z``)."""
    with contextlib.suppress(ValueError):
        return format_time(datetime.fromisoformat(stamp))
    return stamp


def _moment(stamp: str) -> datetime:
    try:
        return parse_time(stamp)
    except ValueError:  # an unreadable time sorts first rather than failing the page
        return datetime.min.replace(tzinfo=UTC)
