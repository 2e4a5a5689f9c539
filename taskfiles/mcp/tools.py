"""The tool table: each tool's name, description, arguments (a pydantic model, whose JSON
schema the client sees) and the library call it makes.

Seven tools by default, because every tool's schema costs an agent context on every turn;
``--tools all`` adds the rest of the CLI's commands. A tool returns a JSON object; errors
are the library's ``TaskfilesError`` with the CLI's messages (``server`` turns them into
tool errors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .. import claims
from ..errors import UsageError
from ..plan import edits, query
from ..plan.source import load
from ..plan.validate import validate
from . import views, work
from .workspace import Workspace

A = TypeVar("A", bound="Args")


class Args(BaseModel):
    """Arguments of a tool: unknown keys are refused, so a misspelt one is not silently lost,
    and each value must have its schema's JSON type: no coercion, which would read
    ``exit_code: false`` as 0 (success), ``lease: true`` as lease 1 and ``ready: "no"`` as no."""

    model_config = ConfigDict(extra="forbid", strict=True)


Slug = Annotated[str, Field(description="The task's slug (its file stem).")]
Lease = Annotated[int, Field(description="The lease your claim returned.")]
Reason = Annotated[str | None, Field(description="Why, for the event log.")]


class TasksArgs(Args):
    slugs: list[str] = []
    search: Annotated[str | None, Field(description="Text in the title or body.")] = None
    bucket: Annotated[
        list[str], Field(description="backlog, waiting, ready, active, review, needs_attention, done.")
    ] = []
    status: Annotated[list[str], Field(description="not_started, ready, completed, cancelled.")] = []
    owner: str | None = None
    label: str | None = None
    milestone: str | None = None
    workstream: str | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 50


class SlugArgs(Args):
    slug: Slug


class NextArgs(Args):
    owner: Annotated[str | None, Field(description="Only this owner's tasks.")] = None
    worker: Annotated[str | None, Field(description="Your worker id (default: mcp:<client>@<host>).")] = None


class EvidenceArgs(Args):
    command: str
    exit_code: int
    summary: str | None = None


class ReportArgs(Args):
    slug: Slug
    lease: Lease
    progress: Annotated[int | None, Field(ge=0, le=100, description="Percent done.")] = None
    message: Annotated[str | None, Field(description="What is done (with progress).")] = None
    note: str | None = None
    blocker: Annotated[str | None, Field(description="What blocks the work.")] = None
    clear_blocker: bool = False
    evidence: Annotated[EvidenceArgs | None, Field(description="A check you ran, e.g. the tests.")] = None
    artifact: Annotated[str | None, Field(description="A path or URL the work produced.")] = None
    cost_usd: Annotated[float | None, Field(ge=0, description="Spend since your last report.")] = None


class FinishArgs(Args):
    slug: Slug
    lease: Lease
    exit_code: Annotated[int, Field(description="0: done, committed; else failed.")]
    error: Annotated[str | None, Field(description="What went wrong.")] = None


class CreateArgs(Args):
    title: str
    workstream: Annotated[str | None, Field(description="Subfolder of tasks/.")] = None
    priority: str | None = None
    owner: str | None = None
    milestone: str | None = None
    depends_on: list[str] = []
    labels: list[str] = []
    ready: Annotated[bool, Field(description="Queue it for dispatch.")] = False


class StatusArgs(Args):
    owner: Annotated[str | None, Field(description="Only this owner's tasks.")] = None


class ClaimArgs(Args):
    slug: Slug
    worker: str | None = None


class CompleteArgs(Args):
    slug: Slug
    by: str | None = None
    pr: Annotated[str | None, Field(description="The pull request URL, #123 or org/repo#123.")] = None


class LogArgs(Args):
    slug: Slug
    message: str
    lease: int | None = None
    level: Annotated[str, Field(description="debug, info, warning or error.")] = "info"


class LogsArgs(Args):
    slug: Slug
    attempt: Annotated[int | None, Field(description="Default: the latest.")] = None
    level: Annotated[str | None, Field(description="This level and above.")] = None
    limit: Annotated[int, Field(ge=1, le=5000)] = 200


class EventsArgs(Args):
    slug: str | None = None
    limit: Annotated[int, Field(ge=1, le=5000)] = 100


class ValidateArgs(Args):
    pass


class ReasonArgs(Args):
    slug: Slug
    reason: Reason = None


class ParkArgs(Args):
    slug: Slug
    reason: Annotated[str, Field(min_length=1, description="Why it must wait for a human.")]


class RetryArgs(Args):
    slug: Slug
    reason: Reason = None
    fresh: Annotated[bool, Field(description="Start over from the base ref.")] = False


@dataclass(frozen=True)
class Call:
    """Who calls: the workspace the request acts in and the client's name."""

    ws: Workspace
    client: str | None = None


@dataclass(frozen=True)
class Tool(Generic[A]):
    """One tool: its name, description, argument model and what it runs."""

    name: str
    description: str
    args: type[A]
    run: Callable[[Call, A], Mapping[str, Any] | None]
    core: bool = True
    read_only: bool = False

    def schema(self) -> dict[str, Any]:
        """The arguments' JSON schema, without the titles and null branches pydantic adds."""
        return self.args.model_json_schema(schema_generator=CompactSchema)


class CompactSchema(GenerateJsonSchema):
    """Pydantic's JSON schema, shorter: every tool's schema is read by the agent on every turn.
    No titles, optional fields as their plain type (omitting one is how to say none), no
    ``"default": null``."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def nullable_schema(self, schema: Any) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: Any) -> JsonSchemaValue:
        out = super().default_schema(schema)
        if "default" in out and out["default"] is None:
            del out["default"]
        return out

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        out = super().model_schema(schema)
        out.pop("title", None)
        return out


def _tasks(call: Call, a: TasksArgs) -> Mapping[str, Any]:
    filters = query.Filters(
        status=tuple(a.status),
        owner=(a.owner,) if a.owner else (),
        milestone=(a.milestone,) if a.milestone else (),
        label=(a.label,) if a.label else (),
        workstream=(a.workstream,) if a.workstream else (),
        search=a.search,
    )
    return views.task_rows(call.ws, views.Selection(filters, tuple(a.bucket), tuple(a.slugs), a.limit))


def _next(call: Call, a: NextArgs) -> Mapping[str, Any] | None:
    return work.take_next(call.ws, worker=a.worker or work.worker_id(call.client), owner=a.owner)


def _report(call: Call, a: ReportArgs) -> Mapping[str, Any]:
    evidence = work.Evidence(**a.evidence.model_dump()) if a.evidence else None
    facts = work.Report(
        a.progress, a.message, a.note, a.blocker, a.clear_blocker, evidence, a.artifact, a.cost_usd
    )
    return work.report(call.ws, a.slug, a.lease, facts)


def _create(call: Call, a: CreateArgs) -> Mapping[str, Any]:
    config = call.ws.config
    path = edits.create(  # as task new: a slug no branch holds
        config,
        a.title,
        workstream=a.workstream,
        priority=a.priority,
        owner=a.owner,
        milestone=a.milestone,
        depends_on=a.depends_on,
        labels=a.labels,
        ready=a.ready,
    ).path
    return {
        "slug": path.stem,
        "path": config.relpath(path),
        "file": path.as_posix(),
        "worktree": config.root.as_posix(),
    }


def _claim(call: Call, a: ClaimArgs) -> Mapping[str, Any]:
    worker = a.worker or work.worker_id(call.client)
    return claims.claim(call.ws.config, call.ws.registry(), a.slug, worker=worker).to_dict()


def _complete(call: Call, a: CompleteArgs) -> Mapping[str, Any]:
    entry = call.ws.registry().find(a.slug)
    ws = call.ws.of_task(entry.worktree if entry else None)
    return _edited(ws, edits.complete(ws.config, a.slug, by=a.by, pr=a.pr))


def _ready(call: Call, a: SlugArgs) -> Mapping[str, Any]:
    return _edited(call.ws, edits.mark_ready(call.ws.config, a.slug))


def _edited(ws: Workspace, edit: edits.Edit) -> Mapping[str, Any]:
    """What an edit changed, and where: the file's path in its worktree and on disk."""
    file = (ws.root / edit.path).as_posix()
    return {"slug": edit.slug, "path": edit.path, "file": file, "changed": edit.changed}


def _log(call: Call, a: LogArgs) -> Mapping[str, Any]:
    attempt = call.ws.registry().log(a.slug, a.message, lease=a.lease, level=a.level, source="agent")
    return {"slug": a.slug, "attempt": attempt}


def _logs(call: Call, a: LogsArgs) -> Mapping[str, Any]:
    page = call.ws.registry().logs(a.slug, attempt=a.attempt, level=a.level)
    records = [record.to_dict() for record in page.records]
    return {
        "slug": a.slug,
        "attempt": page.attempt,
        "records": records[-a.limit :],
        "warnings": list(page.warnings),
    }


def _events(call: Call, a: EventsArgs) -> Mapping[str, Any]:
    page = call.ws.registry().events(a.slug)
    events = [event.to_dict() for event in page.events[-a.limit :]]
    return {"events": events, "warnings": list(page.warnings)}


def _validate(call: Call, a: ValidateArgs) -> Mapping[str, Any]:
    tasks = load(call.ws.config)
    problems = validate(call.ws.config, tasks)
    errors = sum(1 for problem in problems if problem.severity == "error")
    return {"ok": errors == 0, "errors": errors, "problems": [problem.to_dict() for problem in problems]}


def _retry(call: Call, a: RetryArgs) -> Mapping[str, Any]:
    return call.ws.registry().retry(a.slug, reason=a.reason, fresh=a.fresh).to_dict()


def _park(call: Call, a: ParkArgs) -> Mapping[str, Any]:
    return call.ws.registry().park(a.slug, reason=a.reason).to_dict()


def _operator(action: str) -> Callable[[Call, ReasonArgs], Mapping[str, Any]]:
    def run(call: Call, a: ReasonArgs) -> Mapping[str, Any]:
        act: Callable[..., Any] = getattr(call.ws.registry(), action)
        return dict(act(a.slug, reason=a.reason).to_dict())

    return run


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        "tasks",
        "List tasks with their bucket and state; filter by slugs, text, bucket, status, owner, label.",
        TasksArgs,
        _tasks,
        read_only=True,
    ),
    Tool(
        "task",
        "One task: frontmatter, body, dependencies, bucket, registry entry, recent attempts.",
        SlugArgs,
        lambda call, a: views.task_view(call.ws, a.slug),
        read_only=True,
    ),
    Tool(
        "next",
        "Claim the next ready task for you (never the same task to two agents); prepares its "
        "worktree and branch and returns slug, lease, worktree, prompt. null: nothing ready. No "
        "process is watched: your reports are your heartbeats.",
        NextArgs,
        _next,
    ),
    Tool(
        "report",
        "Heartbeat, plus any of progress, note, blocker, evidence, artifact, cost, fenced by your "
        "lease. Report every few minutes or the task stalls.",
        ReportArgs,
        _report,
    ),
    Tool(
        "finish",
        "End your attempt: exit_code 0 when the work is committed (review), else failed.",
        FinishArgs,
        lambda call, a: work.finish(call.ws, a.slug, a.lease, a.exit_code, a.error),
    ),
    Tool(
        "create",
        "Write a new task file in your worktree (slug from the title); commit it yourself.",
        CreateArgs,
        _create,
    ),
    Tool(
        "status",
        "Counts per bucket, capacity, the last dispatch cycle, and what needs attention.",
        StatusArgs,
        lambda call, a: views.status_view(call.ws, a.owner),
        read_only=True,
    ),
    Tool(
        "claim", "Claim one ready task by slug; returns the entry with its lease.", ClaimArgs, _claim, False
    ),
    Tool(
        "complete",
        "Record the completion in the task file, in the task's worktree; commit it there.",
        CompleteArgs,
        _complete,
        False,
    ),
    Tool("ready", "Set a task's status to ready (queues it for dispatch).", SlugArgs, _ready, False),
    Tool("log", "Append a line to the current attempt's log.", LogArgs, _log, False),
    Tool("logs", "Read an attempt's log (default: the latest).", LogsArgs, _logs, False, True),
    Tool("events", "The event log (state changes), newest last.", EventsArgs, _events, False, True),
    Tool(
        "validate",
        "Check every task file; problems with path and line.",
        ValidateArgs,
        _validate,
        False,
        True,
    ),
    Tool(
        "retry",
        "Operator: make a failed, stopped, parked or exited task claimable now.",
        RetryArgs,
        _retry,
        False,
    ),
    Tool(
        "stop",
        "Operator: stop a live attempt; its worker is refused from then on.",
        ReasonArgs,
        _operator("stop"),
        False,
    ),
    Tool("park", "Operator: keep a task from dispatch until unparked.", ParkArgs, _park, False),
    Tool(
        "unpark", "Operator: let a parked task be dispatched again.", ReasonArgs, _operator("unpark"), False
    ),
    Tool("release", "Operator: end a task's claim for good.", ReasonArgs, _operator("release"), False),
)


def chosen(spec: str) -> tuple[Tool[Any], ...]:
    """The tools ``--tools`` names: ``default`` (the seven core tools), ``all``, or a
    comma-separated list of names; UsageError for a name there is no tool for."""
    if spec == "default":
        return tuple(tool for tool in TOOLS if tool.core)
    if spec == "all":
        return TOOLS
    by_name = {tool.name: tool for tool in TOOLS}
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in by_name]
    if unknown or not names:
        raise UsageError(
            f"--tools {spec!r} names no tool {unknown[0]!r}; use default, all, or names from "
            f"{', '.join(by_name)}"
            if unknown
            else "--tools is empty; use default, all, or tool names separated by commas"
        )
    return tuple(by_name[name] for name in dict.fromkeys(names))
