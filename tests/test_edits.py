"""task set, assign and cancel: several tasks edited as one, only the lines they mean to change.

The commands run through CliRunner against real repositories; cancel's end of a live claim
runs on every registry store; a property test edits generated task files through the library.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskfiles import config as config_module
from taskfiles.cli import app
from taskfiles.errors import ConflictError, StaleLeaseError
from taskfiles.plan import edits, frontmatter
from taskfiles.plan.taskfile import parse

from .conftest import StoreFactory, commit_all, git, write_task

runner = CliRunner()

ALPHA = (
    "---\ntitle: Alpha  # the first\nstatus: ready\npriority: p1\n"
    "labels: [web, 'ops']\nmilestone: m1\n---\nbody\n"
)
BETA = "---\r\ntitle: Beta\r\nstatus: not_started\r\ndepends_on:\r\n  - alpha\r\n  # why\r\n---\r\n## Plan"
GAMMA = '---\ntitle: "Gamma"\nstatus: completed\ncompleted_at: "2026-01-01"\nmilestone: m1\n---\n'


def invoke(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["-C", str(root), *args], env=env)


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = invoke(root, *args, env=env)
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    return result.stdout


def fail(root: Path, *args: str, code: int, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail with ``code`` and change no task file; return stderr."""
    before = task_files(root)
    result = invoke(root, *args, env=env)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    assert task_files(root) == before
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def task_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "tasks").rglob("*.md"))}


def text(root: Path, slug: str, folder: str = "") -> str:
    return (root / "tasks" / folder / f"{slug}.md").read_bytes().decode()


@pytest.fixture
def plan(repo: Path) -> Path:
    """Three committed tasks: alpha (LF, comments), beta (CRLF, no final newline), gamma (completed)."""
    (repo / "taskfiles.toml").write_text('owners = ["core", "web"]\nowner_aliases = { dev = "core" }\n')
    write_task(repo, "alpha.md", ALPHA)
    (repo / "tasks" / "beta.md").write_bytes(BETA.encode())
    write_task(repo, "api/gamma.md", GAMMA)
    commit_all(repo)
    return repo


# -- task set ----------------------------------------------------------------------------------


@pytest.mark.planning
def test_set_edits_several_tasks_changing_only_their_lines(plan: Path) -> None:
    out = run(plan, "set", "alpha", "beta", "priority=p0", "owner=dev", "--add-label", "api")
    assert out.splitlines() == [
        "tasks/alpha.md: priority, owner, labels",
        "tasks/beta.md: priority, owner, labels",
    ]
    assert text(plan, "alpha") == ALPHA.replace("p1", "p0").replace(
        "labels: [web, 'ops']\n", "labels: [web, 'ops', api]\n"
    ).replace("milestone: m1\n", "milestone: m1\nowner: core\n")
    assert text(plan, "beta") == BETA.replace(
        "\r\n---\r\n", "\r\npriority: p0\r\nowner: core\r\nlabels: [api]\r\n---\r\n"
    )


@pytest.mark.planning
def test_set_title_milestone_and_removing_keys(plan: Path) -> None:
    run(plan, "set", "alpha", "title=Alpha, renamed", "milestone=")
    assert text(plan, "alpha") == ALPHA.replace("title: Alpha  #", 'title: "Alpha, renamed"  #').replace(
        "milestone: m1\n", ""
    )
    assert run(plan, "set", "alpha", "owner=", "milestone=").strip() == "tasks/alpha.md: unchanged"


@pytest.mark.planning
def test_set_labels_and_dependencies_line_by_line(plan: Path) -> None:
    run(plan, "set", "beta", "--add-dep", "gamma", "--remove-dep", "alpha", "--add-label", "x")
    assert text(plan, "beta") == BETA.replace(
        "depends_on:\r\n  - alpha\r\n  # why\r\n", "depends_on:\r\n  - gamma\r\n  # why\r\nlabels: [x]\r\n"
    )
    run(plan, "set", "alpha", "--remove-label", "web", "--remove-label", "ops")
    assert "labels: []\n" in text(plan, "alpha")


@pytest.mark.planning
def test_a_label_or_dependency_already_so_is_unchanged_not_an_error(plan: Path) -> None:
    before = task_files(plan)
    out = json.loads(run(plan, "set", "alpha", "--add-label", "web", "--remove-label", "nope", "--json"))
    assert out == {
        "changed": [],
        "unchanged": [{"slug": "alpha", "path": "tasks/alpha.md", "keys": []}],
        "dry_run": False,
    }
    out = json.loads(run(plan, "set", "beta", "gamma", "--add-dep", "alpha", "--json"))
    assert [item["slug"] for item in out["changed"]] == ["gamma"]
    assert out["changed"][0] == {"slug": "gamma", "path": "tasks/api/gamma.md", "keys": ["depends_on"]}
    assert [item["slug"] for item in out["unchanged"]] == ["beta"]
    assert task_files(plan)["tasks/beta.md"] == before["tasks/beta.md"]


@pytest.mark.planning
def test_set_by_selection_uses_the_list_filters(plan: Path) -> None:
    write_task(plan, "api/delta.md", "---\ntitle: Delta\nstatus: ready\nlabels: [web]\n---\n")
    out = run(plan, "set", "--milestone", "m1", "--status", "ready", "--status", "completed", "priority=p3")
    assert out.splitlines() == ["tasks/alpha.md: priority", "tasks/api/gamma.md: priority"]
    out = run(plan, "set", "--workstream", "api", "--label", "web", "owner=web")
    assert out.splitlines() == ["tasks/api/delta.md: owner"]
    run(plan, "assign", "beta", "dev")
    out = run(plan, "set", "--owner", "web", "--owner", "DEV", "milestone=m9")
    assert out.splitlines() == ["tasks/api/delta.md: milestone", "tasks/beta.md: milestone"]
    result = invoke(plan, "set", "--milestone", "nowhere", "priority=p0")
    assert result.exit_code == 0 and "no task matches the selection" in result.stderr


@pytest.mark.planning
def test_a_selection_takes_comma_separated_values_as_task_list_does(plan: Path) -> None:
    out = run(plan, "set", "--status", "ready,not_started", "priority=p3")
    assert out.splitlines() == ["tasks/alpha.md: priority", "tasks/beta.md: priority"]
    out = run(plan, "assign", "--milestone", "m0, m1", "--status", "ready", "web")
    assert out.splitlines() == ["tasks/alpha.md: owner"]


@pytest.mark.planning
def test_a_title_is_one_line_for_new_too(plan: Path) -> None:
    result = invoke(plan, "new", "first\rsecond")
    assert result.exit_code == 2 and "a title is one line" in result.stderr


@pytest.mark.planning
def test_dry_run_prints_the_diff_that_git_applies_and_writes_nothing(plan: Path) -> None:
    before = task_files(plan)
    result = invoke(plan, "set", "alpha", "beta", "priority=p2", "--add-label", "new", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert task_files(plan) == before
    assert "tasks/alpha.md: would set priority, labels" in result.stderr
    diff = result.stdout
    assert diff.startswith("--- a/tasks/alpha.md\n+++ b/tasks/alpha.md\n")
    assert "\n-priority: p1\n" in diff and "\n+priority: p2\n" in diff
    assert diff.endswith(" ## Plan\n\\ No newline at end of file\n")
    patch = plan / "change.diff"
    patch.write_bytes(result.stdout_bytes)  # .stdout turns CRLF into LF
    git(plan, "apply", "--whitespace=nowarn", str(patch))
    applied = task_files(plan)
    git(plan, "checkout", "--", "tasks")
    run(plan, "set", "alpha", "beta", "priority=p2", "--add-label", "new")
    assert task_files(plan) == applied  # the diff is exactly what the command writes
    out = json.loads(run(plan, "set", "alpha", "priority=p0", "--dry-run", "--json"))
    assert out["dry_run"] is True and out["diff"].count("+priority: p0") == 1


# (arguments, exit code, fragment of the error line)
ERRORS: list[tuple[list[str], int, str]] = [
    (["set", "alpha", "status=ready"], 2, "cannot set 'status'; the keys 'task set' sets are priority"),
    (["set", "alpha", "colour=red"], 2, "priority, owner, milestone, title"),
    (["set", "alpha", "priority=p9"], 2, "priority 'p9' is not one of p0, p1, p2, p3"),
    (["set", "alpha", "priority="], 2, "priority= is empty"),
    (["set", "alpha", "owner=coer"], 2, "did you mean 'core'?"),
    (["set", "alpha", "title=  "], 2, "the title is empty"),
    (["set", "alpha", "title=" + "x" * 201], 2, "200"),
    (["set", "alpha", "milestone=m1", "milestone=m2"], 2, "milestone is given twice"),
    (["set", "alpha", "--add-label", "a", "--remove-label", "a"], 2, "both --add-label and --remove-label"),
    (["set", "alpha"], 2, "nothing to set"),
    (["set", "priority=p0"], 2, "name the tasks to edit"),
    (["set", "alpha", "--milestone", "m1", "priority=p0"], 2, "not both"),
    (["set", "--status", "doing", "priority=p0"], 2, "--status 'doing' is not one of"),
    (["set", "ghost", "priority=p0"], 3, "no task with slug 'ghost'"),
    (["set", "beta", "--add-dep", "alhpa"], 3, "--add-dep 'alhpa' is not a task; did you mean 'alpha'?"),
    (["set", "alpha", "--add-dep", "alpha"], 2, "a task cannot depend on itself"),
    (["set", "alpha", "--add-dep", "beta"], 4, "dependency cycle: alpha -> beta -> alpha"),
    (["assign", "alpha", "nobody"], 2, "owner 'nobody' is not one of the configured owners"),
    (["assign", "core"], 2, "name the tasks to edit"),
    (["cancel", "alpha", "gamma"], 4, "tasks/api/gamma.md: task is completed"),
    (["cancel"], 2, "name the tasks to edit"),
    (["cancel", "alpha", "--reason", " "], 2, "--reason is empty"),
    (["set", "alpha", "title=two\nlines"], 2, "has a line break or control character"),
    (["set", "--status", "ready,doing", "priority=p0"], 2, "--status 'doing' is not one of"),
]


@pytest.mark.planning
@pytest.mark.parametrize(("args", "code", "fragment"), ERRORS, ids=[" ".join(e[0])[:40] for e in ERRORS])
def test_bad_input_is_one_error_line_and_changes_nothing(
    plan: Path, args: list[str], code: int, fragment: str
) -> None:
    assert fragment in fail(plan, *args, code=code)


@pytest.mark.planning
def test_a_file_too_unusual_to_edit_stops_every_edit_naming_file_and_line(plan: Path) -> None:
    write_task(plan, "odd.md", "---\ntitle: Odd\nlabels: &l [a]\nnotes: *l\n---\n")
    stderr = fail(plan, "set", "alpha", "odd", "--add-label", "b", code=1)
    assert stderr.startswith("error: tasks/odd.md:3: ") and "edit" in stderr
    assert "labels: [web, 'ops']" in text(plan, "alpha")  # alpha's edit was computed, not written


@pytest.mark.planning
def test_a_file_changed_after_it_was_read_is_not_overwritten(plan: Path) -> None:
    config = config_module.load(plan)
    batch = edits.set_fields(
        config, edits.Selection(("alpha",)), edits.Changes({"priority": "p0"}), dry_run=True
    )
    write_task(plan, "alpha.md", ALPHA + "edited meanwhile\n")
    with pytest.raises(ConflictError, match="changed while it was being edited"):
        batch.write(plan)
    assert text(plan, "alpha").endswith("edited meanwhile\n")


# (id, text before, the list's new value, text after)
LIST_EDITS: list[tuple[str, str, tuple[str, ...], str]] = [
    (
        "flow: items kept keep their quotes, the comment stays",
        "---\nlabels: ['a', \"b, c\", d]  # areas\n---\n",
        ("a", "d", "e f"),
        "---\nlabels: ['a', d, e f]  # areas\n---\n",
    ),
    ("flow with a trailing comma", "---\nlabels: [a, b,]\n---\n", ("b",), "---\nlabels: [b]\n---\n"),
    (
        "block: comments between items stay, a new item after the last",
        "---\nlabels:\n- a\n# why b\n- b\n- c\ntitle: x\n---\n",
        ("a", "c", "007"),
        '---\nlabels:\n- a\n# why b\n- c\n- "007"\ntitle: x\n---\n',
    ),
    (
        "emptied: one line, its comment kept",
        "---\nlabels:  # c\n  - a\n---\n",
        (),
        "---\nlabels: []  # c\n---\n",
    ),
    ("null to a list", "---\nlabels:\ntitle: x\n---\n", ("a",), "---\nlabels: [a]\ntitle: x\n---\n"),
    (
        "a reorder is written whole",
        "---\nlabels:\n  - a\n  - b\n---\n",
        ("b", "a"),
        "---\nlabels: [b, a]\n---\n",
    ),
    (
        "a flow list over two lines is written whole",
        "---\nlabels: [a,\n  b]\n---\n",
        ("a",),
        "---\nlabels: [a]\n---\n",
    ),
]


@pytest.mark.planning
@pytest.mark.parametrize(
    ("before", "items", "after"), [c[1:] for c in LIST_EDITS], ids=[c[0] for c in LIST_EDITS]
)
def test_list_edits_keep_the_lines_of_the_items_that_stay(
    before: str, items: tuple[str, ...], after: str
) -> None:
    assert frontmatter.set_keys(before, {"labels": items}) == after


# -- task assign -------------------------------------------------------------------------------


@pytest.mark.planning
def test_assign_several_and_by_selection_writes_the_canonical_owner(plan: Path) -> None:
    assert run(plan, "assign", "alpha", "beta", "DEV").splitlines() == [
        "tasks/alpha.md: owner",
        "tasks/beta.md: owner",
    ]
    assert "owner: core\n" in text(plan, "alpha") and "owner: core\r\n" in text(plan, "beta")
    assert run(plan, "assign", "alpha", "core").strip() == "tasks/alpha.md: unchanged"
    out = json.loads(run(plan, "assign", "--owner", "core", "--status", "ready", "web", "--json"))
    assert out["changed"] == [{"slug": "alpha", "path": "tasks/alpha.md", "keys": ["owner"]}]


# -- task cancel -------------------------------------------------------------------------------


@pytest.mark.planning
def test_cancel_sets_the_status_and_says_unchanged_the_second_time(plan: Path) -> None:
    assert run(plan, "cancel", "alpha", "beta", "--reason", "superseded").splitlines() == [
        "tasks/alpha.md: status",
        "tasks/beta.md: status",
    ]
    assert text(plan, "alpha") == ALPHA.replace("status: ready", "status: cancelled")
    assert text(plan, "beta") == BETA.replace("status: not_started", "status: cancelled")
    assert json.loads(run(plan, "cancel", "--status", "cancelled", "--json")) == {
        "changed": [],
        "unchanged": [
            {"slug": "alpha", "path": "tasks/alpha.md", "keys": []},
            {"slug": "beta", "path": "tasks/beta.md", "keys": []},
        ],
        "stopped": [],
        "released": [],
        "dry_run": False,
    }
    assert not (plan / "registry").exists()  # nothing ever ran: no registry is made


@pytest.mark.planning
def test_cancel_a_legacy_in_progress_status(plan: Path) -> None:
    write_task(plan, "old.md", "---\ntitle: Old\nstatus: 'in_progress'  # by the old tool\n---\n")
    run(plan, "cancel", "old")
    assert text(plan, "old") == "---\ntitle: Old\nstatus: 'cancelled'  # by the old tool\n---\n"


def test_cancel_stops_and_releases_a_live_claim(plan: Path, store_factory: StoreFactory) -> None:
    env = {**store_factory.env(), "TASKFILES_ACTOR": "operator-1"}
    write_task(plan, "delta.md", "---\ntitle: Delta\nstatus: ready\n---\n")  # never claimed
    registry = store_factory()
    lease = registry.claim("alpha", worker="w1").lease
    registry.start("alpha", lease, pid=None)
    registry.claim("beta", worker="w2")
    registry.release("beta", reason="done with it")
    slugs = ("alpha", "beta", "delta")

    dry = invoke(plan, "cancel", *slugs, "--dry-run", env=env)
    assert dry.exit_code == 0, dry.stderr
    assert "alpha: would end the running claim, lease 1 (its live attempt stopped" in dry.stderr
    assert store_factory().get("alpha").state == "running" and "status: ready" in text(plan, "alpha")
    assert [e.type for e in store_factory().events("delta").events] == []

    result = invoke(plan, "cancel", *slugs, "--reason", "duplicate of #12", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["stopped"] == out["released"] == [{"slug": "alpha", "lease": 1, "state": "running"}]
    assert [item["slug"] for item in out["changed"]] == list(slugs)

    reader = store_factory()
    assert reader.get("alpha").state == "released"
    with pytest.raises(StaleLeaseError):
        reader.heartbeat("alpha", lease)
    worker = invoke(plan, "heartbeat", "alpha", "--lease", str(lease), env=env)
    assert worker.exit_code == 5, worker.stderr
    why = "task cancelled: duplicate of #12"
    assert _ended(reader, "alpha") == [
        ("task.cancelled", "duplicate of #12", "operator-1"),
        ("task.stopped", why, "operator-1"),
        ("task.released", why, "operator-1"),
    ]
    assert reader.get("beta").state == "released"  # already released: left as it was
    assert [item[:2] for item in _ended(reader, "beta")] == [
        ("task.released", "done with it"),
        ("task.cancelled", "duplicate of #12"),
    ]
    assert reader.find("delta") is None  # an event alone: nothing makes an entry but a claim
    assert _ended(reader, "delta") == [("task.cancelled", "duplicate of #12", "operator-1")]
    recorded = len(reader.events().events)
    again = invoke(plan, "cancel", *slugs, env=env)
    assert again.exit_code == 0 and again.stdout.count("unchanged") == 3
    assert len(store_factory().events().events) == recorded  # nothing left to cancel or end


def _ended(registry: Any, slug: str) -> list[tuple[str, Any, str]]:
    """The cancel, stop and release events of ``slug``: type, reason, who."""
    kinds = ("task.cancelled", "task.stopped", "task.released")
    return [
        (e.type, e.details.get("reason"), e.actor.who)
        for e in registry.events(slug).events
        if e.type in kinds
    ]


def test_cancel_of_a_completed_task_leaves_the_claims_alone(plan: Path, store_factory: StoreFactory) -> None:
    env = store_factory.env()
    store_factory().claim("alpha", worker="w1")
    fail(plan, "cancel", "--milestone", "m1", code=4, env=env)  # gamma is completed
    assert store_factory().get("alpha").state == "claimed"


@pytest.mark.planning
def test_cancel_through_the_installed_command(plan: Path) -> None:
    """The console script: a real process, its exit code and output."""
    done = subprocess.run(
        [Path(sys.executable).parent / "task", "-C", str(plan), "cancel", "beta"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "tasks/beta.md: status\n", "")


@pytest.mark.planning
def test_help_names_the_selection_and_key_removal(plan: Path) -> None:
    for command in ("set", "assign", "cancel"):
        assert "--workstream" in run(plan, command, "--help")
    assert "'owner=' and 'milestone=' (no value) remove the key" in " ".join(
        run(plan, "set", "--help").split()
    )


# -- property: generated files, generated edits --------------------------------------------------

NAMES = st.sampled_from(["web", "ops", "api", "db", "x y", "José", "a:b", "007"])
DEPS = st.sampled_from(["dep-a", "dep-b", "dep-c", "gone"])
TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("éß中"), min_size=1, max_size=20
).filter(lambda s: s.strip() != "")
COMMENT = st.one_of(st.just(""), st.from_regex(r"  # [a-z ]{0,10}", fullmatch=True))


@dataclass(frozen=True)
class Block:
    key: str | None  # None: comment or blank lines
    lines: tuple[str, ...]
    comment: str = ""


def _scalar(value: str, style: str) -> str:
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    if style == "double":
        return json.dumps(value, ensure_ascii=False)
    return value


@st.composite
def scalar_block(draw: st.DrawFn, key: str, value: st.SearchStrategy[str], nl: str) -> Block:
    comment = draw(COMMENT)
    written = draw(value)
    style = draw(st.sampled_from(["plain", "single", "double"]))
    if style == "plain" and not edits_plain(written):
        style = "double"
    return Block(key, (f"{key}: {_scalar(written, style)}{comment}{nl}",), comment)


def edits_plain(value: str) -> bool:
    from taskfiles.plan.scalars import is_plain_safe

    return is_plain_safe(value)


@st.composite
def list_block(draw: st.DrawFn, key: str, items: st.SearchStrategy[str], nl: str) -> Block:
    comment = draw(COMMENT)
    values = draw(st.lists(items, max_size=4))
    style = draw(st.sampled_from(["flow", "block", "null"] if values else ["flow", "null"]))
    rendered = [
        _scalar(v, draw(st.sampled_from(["single", "double"])) if not edits_plain(v) else "plain")
        for v in values
    ]
    if style == "null":
        return Block(key, (f"{key}:{comment}{nl}",), comment)
    if style == "flow":
        return Block(key, (f"{key}: [{', '.join(rendered)}]{comment}{nl}",), comment)
    indent = draw(st.sampled_from(["", "  "]))
    lines = [f"{key}:{comment}{nl}"]
    for number, item in enumerate(rendered):
        if number and draw(st.booleans()):
            lines.append(draw(st.sampled_from([nl, f"{indent}# between{nl}"])))
        lines.append(f"{indent}- {item}{nl}")
    return Block(key, tuple(lines), comment)


@dataclass(frozen=True)
class File:
    bom: str
    nl: str
    blocks: tuple[Block, ...]
    close: str
    body: str

    @property
    def text(self) -> str:
        header = "".join(line for block in self.blocks for line in block.lines)
        return f"{self.bom}---{self.nl}{header}{self.close}{self.body}"


@st.composite
def task_file(draw: st.DrawFn) -> File:
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    makers: dict[str, Callable[[], Block]] = {
        "title": lambda: draw(scalar_block("title", TEXT, nl)),
        "status": lambda: draw(
            scalar_block("status", st.sampled_from(["not_started", "ready", "cancelled"]), nl)
        ),
        "priority": lambda: draw(scalar_block("priority", st.sampled_from(["p0", "p1", "p2", "p3"]), nl)),
        "owner": lambda: draw(scalar_block("owner", st.sampled_from(["core", "web", "dev"]), nl)),
        "milestone": lambda: draw(scalar_block("milestone", TEXT, nl)),
        "labels": lambda: draw(list_block("labels", NAMES, nl)),
        "depends_on": lambda: draw(list_block("depends_on", DEPS, nl)),
        "notes": lambda: draw(scalar_block("notes", TEXT, nl)),
    }
    optional = draw(st.lists(st.sampled_from([k for k in makers if k != "title"]), unique=True))
    keys = draw(st.permutations(["title", *optional]))
    blocks: list[Block] = []
    for key in [*keys, None]:
        for _ in range(draw(st.integers(0, 1))):
            blocks.append(Block(None, (draw(st.sampled_from([nl, f"# note{nl}"])),)))
        if key is not None:
            blocks.append(makers[key]())
    body = draw(st.sampled_from(["", "body", f"## Plan{nl}{nl}- x{nl}", f"x{nl}---{nl}"]))
    close = "---" if body == "" and draw(st.booleans()) else f"---{nl}"
    return File(draw(st.sampled_from(["", "\ufeff"])), nl, tuple(blocks), close, body)


@st.composite
def changes(draw: st.DrawFn) -> edits.Changes:
    values: dict[str, str | None] = {}
    if draw(st.booleans()):
        values["priority"] = draw(st.sampled_from(["p0", "p1", "p2", "p3"]))
    if draw(st.booleans()):
        values["owner"] = draw(st.sampled_from(["core", "web", "dev", None]))
    if draw(st.booleans()):
        values["milestone"] = draw(st.one_of(st.none(), TEXT))
    if draw(st.booleans()):
        values["title"] = draw(TEXT)
    add_labels = draw(st.lists(NAMES, max_size=2, unique=True))
    remove_labels = draw(st.lists(NAMES.filter(lambda n: n not in add_labels), max_size=2, unique=True))
    add_deps = draw(st.lists(st.sampled_from(["dep-a", "dep-b"]), max_size=2, unique=True))
    remove_deps = draw(st.lists(DEPS.filter(lambda d: d not in add_deps), max_size=2, unique=True))
    if not (values or add_labels or remove_labels or add_deps or remove_deps):
        values["priority"] = "p0"
    return edits.Changes(values, tuple(add_labels), tuple(remove_labels), tuple(add_deps), tuple(remove_deps))


def _intended(old: dict[str, Any], change: edits.Changes) -> dict[str, Any]:
    """What the task must read as after ``change``, from the rules stated in the README."""
    new = dict(old)
    canonical = {"dev": "core"}
    for key, value in change.values.items():
        value = canonical.get(value, value) if key == "owner" and value else value
        new[key] = value.strip() if key == "title" and value else value
    for key, added, removed in (
        ("labels", change.add_labels, change.remove_labels),
        ("depends_on", change.add_deps, change.remove_deps),
    ):
        kept = [item for item in old[key] if item not in removed]
        new[key] = kept + [item for item in added if item not in old[key]]
    return new


def _header(result: str, file: File) -> list[str]:
    assert result.startswith(f"{file.bom}---{file.nl}")
    assert result.endswith(file.close + file.body)  # the body and the closing line byte-identical
    inner = result[len(file.bom) + 3 + len(file.nl) : len(result) - len(file.close) - len(file.body)]
    return [line + "\n" for line in inner.split("\n")[:-1]]


def _only_edited_lines_changed(after: list[str], file: File, edited: set[str]) -> bool:
    """``after`` is the header's blocks in order, each not edited byte-identical, each edited
    one made of its own lines, its key's line and list items, then added keys at the end."""
    segments: list[tuple[tuple[str, ...] | None, Callable[[str], bool]]] = []

    def own(block: Block) -> Callable[[str], bool]:
        assert block.key is not None
        return lambda line: (
            line in block.lines or line.startswith(f"{block.key}:") or line.lstrip().startswith("- ")
        )

    for block in file.blocks:
        if block.key in edited:
            segments.append((None, own(block)))
        else:
            segments.append((block.lines, lambda line: False))
    present = {block.key for block in file.blocks}
    segments.append((None, lambda line: line.split(":")[0] in edited - present))

    @cache
    def match(index: int, position: int) -> bool:
        if index == len(segments):
            return position == len(after)
        fixed, allowed = segments[index]
        if fixed is not None:
            end = position + len(fixed)
            return tuple(after[position:end]) == fixed and match(index + 1, end)
        while True:
            if match(index + 1, position):
                return True
            if position == len(after) or not allowed(after[position]):
                return False
            position += 1

    return match(0, 0)


@pytest.fixture(scope="module")
def property_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("property")
    git(root, "init", "-q", "-b", "main")
    (root / "taskfiles.toml").write_text('owners = ["core", "web"]\nowner_aliases = { dev = "core" }\n')
    for slug in ("dep-a", "dep-b", "dep-c"):
        write_task(root, f"{slug}.md", f"---\ntitle: {slug}\n---\n")
    return root


@pytest.mark.planning
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(file=task_file(), change=changes())
def test_set_changes_only_the_intended_lines_and_reads_back(
    property_repo: Path, file: File, change: edits.Changes
) -> None:
    path = property_repo / "tasks" / "t.md"
    path.write_bytes(file.text.encode())
    config = config_module.load(property_repo)
    old = parse(file.text.encode(), "tasks/t.md", None).task
    assert old is not None, "the generator makes readable task files"
    before = _canonical(old.to_dict(body=True))

    batch = edits.set_fields(config, edits.Selection(("t",)), change, dry_run=True)

    after_text = batch.edits[0].after
    new = parse(after_text.encode(), "tasks/t.md", None).task
    assert new is not None
    wanted = _intended(before, change)
    assert _canonical(new.to_dict(body=True)) == wanted
    edited = set(batch.edits[0].keys)
    assert edited == {key for key in wanted if wanted[key] != before[key]}
    header = _header(after_text, file)
    assert _only_edited_lines_changed(header, file, edited)
    for block in file.blocks:  # a comment on an edited key's line stays with it
        if block.key in edited and block.comment and wanted[block.key] is not None:
            assert any(
                line.startswith(f"{block.key}:") and line.endswith(block.comment + file.nl) for line in header
            )


def _canonical(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields with the owner alias the generator writes ('dev') read as its owner."""
    return {**fields, "owner": {"dev": "core"}.get(fields["owner"], fields["owner"])}
