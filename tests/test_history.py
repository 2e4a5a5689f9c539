"""One task's history (``taskfiles.history``, ``task history``), runtime facts on a task
without a registry entry (``transaction.EventOnly`` on every store), notes apart from
progress, and the ``created`` date of ``task list``.

Real git repositories in tmp_path with dated commits, real registry stores
(``store_factory``: the JSON files and PostgreSQL), the real CLI, and a real HTTP client
against a real server for the page.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner

from taskfiles import history as history_module
from taskfiles.cli import app
from taskfiles.config import Config
from taskfiles.config import load as load_config
from taskfiles.errors import NotFoundError, RegistryError, UsageError
from taskfiles.history import timeline
from taskfiles.plan import created
from taskfiles.registry import Actor, Plan, Registry, open_registry
from taskfiles.registry.copy import copy
from taskfiles.registry.records import format_time
from taskfiles.registry.transaction import EventOnly
from taskfiles.serve import create_app

from .conftest import ManualClock, StoreFactory, git, list_json_in_a_process, write_task
from .test_serve import LiveServer, section

runner = CliRunner()
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ME = Actor("agent-7", "ci-1", 4242)


def commit(root: Path, message: str, when: datetime) -> str:
    """Commit everything, authored and committed at ``when``; return the commit id."""
    stamp = when.isoformat()
    env = {**os.environ, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=root, check=True, env=env)
    return git(root, "rev-parse", "HEAD").strip()


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def task_text(
    title: str = "Fix login", status: str = "not_started", body: str = "Body.\n", **more: str
) -> str:
    extra = "".join(f"{key}: {value}\n" for key, value in more.items())
    return f"---\ntitle: {title}\nstatus: {status}\n{extra}---\n{body}"


@pytest.fixture
def story(repo: Path) -> Path:
    """A task's life in commits: created, edited (title and labels), renamed into a
    workstream, readied, its body edited, completed; and one cancelled task."""
    write_task(repo, "fix-login.md", task_text())
    write_task(repo, "dropped.md", task_text("Dropped"))
    commit(repo, "add fix-login", at(-4))
    write_task(repo, "fix-login.md", task_text("Fix the login", labels="[web]"))
    commit(repo, "retitle", at(-3))
    (repo / "tasks" / "web").mkdir()
    git(repo, "mv", "tasks/fix-login.md", "tasks/web/fix-login.md")
    commit(repo, "move to web", at(-2))
    write_task(repo, "web/fix-login.md", task_text("Fix the login", "ready", labels="[web]"))
    write_task(repo, "dropped.md", task_text("Dropped", "cancelled"))
    commit(repo, "ready fix-login, cancel dropped", at(-1))
    write_task(repo, "web/fix-login.md", task_text("Fix the login", "ready", "More body.\n", labels="[web]"))
    commit(repo, "say more", at(1))
    done = task_text(
        "Fix the login", "completed", "More body.\n", labels="[web]", completed_at="'2025-03-01'"
    )
    write_task(repo, "web/fix-login.md", done)
    commit(repo, "complete fix-login", at(2))
    return repo


def kinds(found: Any) -> list[tuple[str, str]]:
    return [(item.source, item.kind) for item in found.items]


# -- the git side -------------------------------------------------------------------------------


def test_the_file_history_follows_renames_and_names_what_each_commit_changed(story: Path) -> None:
    found = timeline(load_config(story), "fix-login", ())
    assert found.path == "tasks/web/fix-login.md" and not found.truncated
    assert kinds(found) == [
        ("git", "created"),
        ("git", "edited"),
        ("git", "renamed"),
        ("git", "readied"),
        ("git", "edited"),
        ("git", "completed"),
    ]
    created_, retitled, moved, readied, said, completed = (item.to_dict() for item in found.items)
    assert created_["path"] == "tasks/fix-login.md" and created_["subject"] == "add fix-login"
    assert created_["time"] == format_time(at(-4)) and created_["author"] == "Test Author"
    assert retitled["keys"] == ["labels", "title"]
    assert moved["renamed_from"] == "tasks/fix-login.md" and moved["keys"] == []
    assert (readied["status_from"], readied["status_to"], readied["keys"]) == (
        "not_started",
        "ready",
        ["status"],
    )
    assert said["keys"] == ["body"]
    assert completed["keys"] == ["completed_at", "status"] and completed["status_to"] == "completed"
    assert len(completed["commit"]) == 40 and completed["date"].startswith("2025-03-01T14:00:00")
    cancelled = timeline(load_config(story), "dropped", ())
    assert kinds(cancelled) == [("git", "created"), ("git", "cancelled")]


def test_uncommitted_changes_are_the_last_item(story: Path) -> None:
    path = story / "tasks" / "web" / "fix-login.md"
    path.write_text(path.read_text().replace("title: Fix the login", "title: Fix the login page"))
    found = timeline(load_config(story), "fix-login", ())
    last = found.items[-1].to_dict()
    assert (last["source"], last["kind"], last["keys"]) == ("git", "uncommitted", ["title"])
    write_task(story, "brand-new.md", task_text("Brand new"))
    fresh = timeline(load_config(story), "brand-new", ())
    assert [item.to_dict() for item in fresh.items] == [
        {
            "time": fresh.items[0].time,
            "source": "git",
            "kind": "uncommitted",
            "path": "tasks/brand-new.md",
            "new": True,
            "keys": ["status", "title"],
        }
    ]
    path.unlink()  # deleted in the working tree, still at HEAD: known, and its deletion shown
    gone = timeline(load_config(story), "fix-login", ())
    assert gone.items[-1].to_dict()["deleted"] is True and gone.items[0].kind == "created"


def test_a_long_history_is_cut_at_the_limit_and_says_so(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        write_task(repo, "busy.md", task_text(f"Busy {n}"))
        commit(repo, f"edit {n}", at(n))
    monkeypatch.setattr(history_module, "LIMIT", 3)
    found = timeline(load_config(repo), "busy", ())
    assert found.truncated and [i.kind for i in found.items] == ["edited"] * 3
    assert [i.to_dict()["subject"] for i in found.items] == ["edit 2", "edit 3", "edit 4"]
    assert found.items[0].to_dict()["keys"] == ["title"]  # compared with the commit before the cut
    assert "more than 3 commits" in found.warnings[0]


# -- both sources -------------------------------------------------------------------------------


def test_registry_events_interleave_with_commits_by_time(story: Path, store_factory: StoreFactory) -> None:
    clock = ManualClock()  # between "ready" (11:00) and "say more" (13:00)
    reg = store_factory(clock=clock, actor=ME)
    lease = reg.claim("fix-login", worker="w1").lease
    clock.advance(seconds=60)
    reg.start("fix-login", lease)
    reg.note("fix-login", "parser first")
    clock.advance(hours=3)  # 15:01, after "complete"
    reg.finish("fix-login", lease, 0)
    found = timeline(load_config(story), "fix-login", reg.events("fix-login").events)
    assert kinds(found) == [
        ("git", "created"),
        ("git", "edited"),
        ("git", "renamed"),
        ("git", "readied"),
        ("registry", "claimed"),
        ("registry", "started"),
        ("registry", "note"),
        ("git", "edited"),
        ("git", "completed"),
        ("registry", "exited"),
    ]
    note = found.items[6].to_dict()
    assert note["actor"] == "agent-7@ci-1" and note["event"] == "task.note"
    assert note["details"] == {"text": "parser first"} and note["lease"] == lease
    assert found.items[4].summary.startswith(f"by agent-7@ci-1 lease={lease} worker=w1")


def test_a_slug_whose_file_is_gone_shows_its_events_and_an_unknown_one_is_not_found(
    story: Path, store_factory: StoreFactory
) -> None:
    reg = store_factory(clock=ManualClock(), actor=ME)
    reg.claim("vanished", worker="w1")
    found = timeline(load_config(story), "vanished", reg.events("vanished").events)
    assert found.path is None and kinds(found) == [("registry", "claimed")]
    assert found.to_dict()["file_gone"] is True and "no task file" in found.warnings[0]
    with pytest.raises(NotFoundError, match="did you mean 'fix-login'"):
        timeline(load_config(story), "fix-logn", ())


def test_a_file_deleted_by_a_commit_shows_its_commits_through_the_deletion(story: Path) -> None:
    git(story, "rm", "-q", "tasks/dropped.md")
    commit(story, "drop dropped", at(3))  # on main, the base ref: no tree has the file now
    found = timeline(load_config(story), "dropped", ())
    assert kinds(found) == [("git", "created"), ("git", "cancelled"), ("git", "deleted")]
    assert found.path == "tasks/dropped.md" and found.to_dict()["file_gone"] is True
    assert "the task file is gone" in found.warnings[0]
    done = task(story, {}, "history", "dropped")
    assert done.exit_code == 0 and done.stdout.startswith("dropped: tasks/dropped.md (deleted)\n")


def test_a_file_deleted_from_the_working_tree_without_a_base_ref_is_found_at_head(story: Path) -> None:
    (story / "taskfiles.toml").write_text('base_ref = "no-such-branch"\n')
    (story / "tasks" / "dropped.md").unlink()
    found = timeline(load_config(story), "dropped", ())
    assert kinds(found) == [("git", "created"), ("git", "cancelled"), ("git", "uncommitted")]
    assert found.items[-1].summary == "not committed; deleted"


# -- runtime facts on a task with no entry ---------------------------------------------------------


def facts(reg: Registry, slug: str) -> list[Any]:
    return [
        reg.note(slug, "looked at it"),
        reg.progress(slug, 10, "started reading"),
        reg.blocker(slug, "needs access"),
        reg.evidence(slug, "pytest -q", 1, "2 failed"),
        reg.artifact(slug, "https://ci.example/1"),
    ]


def test_facts_on_a_task_without_an_entry_are_events_alone(store_factory: StoreFactory) -> None:
    reg = store_factory(clock=ManualClock(), actor=ME)
    assert facts(reg, "idea") == [None] * 5
    assert reg.find("idea") is None and "idea" not in reg.snapshot().leases  # no entry, no lease
    events = reg.events("idea").events
    assert [e.type for e in events] == [
        "task.note",
        "task.progress",
        "task.blocker",
        "task.evidence",
        "task.artifact",
    ]
    assert {(e.lease, e.actor, e.change, e.removed) for e in events} == {(None, ME, None, False)}
    assert events[3].details == {"command": "pytest -q", "exit_code": 1, "summary": "2 failed"}
    entry = reg.claim("idea", worker="w1")  # a later claim starts clean, with the first lease
    assert (entry.lease, entry.note, entry.blocker, entry.evidence) == (1, None, None, ())
    again = store_factory(clock=ManualClock(), actor=ME)  # a fresh reader sees the same
    assert again.get("idea") == entry and [e.type for e in again.events("idea").events][-1] == "task.claimed"


def test_a_lease_for_a_slug_without_an_entry_is_refused(store_factory: StoreFactory) -> None:
    reg = store_factory(clock=ManualClock(), actor=ME)
    with pytest.raises(NotFoundError, match="no registry entry"):
        reg.note("idea", "x", lease=1)
    assert reg.events("idea").events == ()


def test_an_event_only_change_cannot_be_misused(store_factory: StoreFactory) -> None:
    reg = store_factory(clock=ManualClock(), actor=ME)
    lease = reg.claim("a", worker="w1").lease
    with pytest.raises(RegistryError, match=r"starts with 'task\.'"):
        reg.transact(lambda s: Plan((EventOnly("a", "claimed"),), None))
    with pytest.raises(UsageError):
        reg.transact(lambda s: Plan((EventOnly("../a", "task.note"),), None))
    reg.transact(lambda s: Plan((EventOnly("a", "task.note", {"text": "beside"}),), None))
    assert reg.get("a").lease == lease and reg.get("a").state == "claimed"  # the entry is untouched
    assert [e.type for e in reg.events("a").events] == ["task.claimed", "task.note"]


def test_event_only_facts_survive_a_copy_into_another_store(store_factory: StoreFactory) -> None:
    reg = store_factory(clock=ManualClock(), actor=ME)
    facts(reg, "idea")
    reg.claim("other", worker="w1")
    target = store_factory(name="copy")
    copy(reg, target)
    assert target.find("idea") is None and set(target.entries()) == {"other"}
    assert [e.to_dict() for e in target.events("idea").events] == [
        e.to_dict() for e in reg.events("idea").events
    ]
    target.claim("idea", worker="w2")  # and the copy still issues the first lease for it
    assert target.get("idea").lease == 1


def test_note_is_kept_apart_from_progress(store_factory: StoreFactory) -> None:
    reg = store_factory(clock=ManualClock(), actor=ME)
    lease = reg.claim("a", worker="w1").lease
    reg.heartbeat("a", lease, note="parsing")
    reg.progress("a", 40, lease=lease)
    entry = reg.note("a", "asked about the schema")
    assert entry is not None and (entry.progress, entry.progress_percent, entry.note) == (
        "parsing",
        40,
        "asked about the schema",
    )


# -- through the CLI --------------------------------------------------------------------------------


def task(root: Path, env: dict[str, str], *args: str) -> Any:
    return runner.invoke(app, ["-C", str(root), *args], env=env)


@pytest.fixture
def queue(repo: Path) -> Path:
    write_task(repo, "alpha.md", task_text("Alpha", "ready"))
    write_task(repo, "beta.md", task_text("Beta"))
    commit(repo, "tasks", at(-1))
    return repo


def test_facts_on_an_unclaimed_task_through_the_cli(queue: Path, store_factory: StoreFactory) -> None:
    env = store_factory.env()
    done = task(queue, env, "note", "beta", "worth doing soon")
    assert done.exit_code == 0 and "recorded as an event" in done.stdout
    shown = task(queue, env, "progress", "beta", "5", "--json")
    assert json.loads(shown.stdout) == {"slug": "beta", "entry": None, "event_only": True}
    for args in (
        ["blocker", "beta", "waits on design"],
        ["evidence", "beta", "--command", "make", "--exit-code", "0"],
    ):
        assert task(queue, env, *args).exit_code == 0
    assert task(queue, env, "artifact", "beta", "notes.md").exit_code == 0
    events = json.loads(task(queue, env, "events", "beta", "--json").stdout)
    assert [e["type"] for e in events] == [
        "task.note",
        "task.progress",
        "task.blocker",
        "task.evidence",
        "task.artifact",
    ]
    assert {e["lease"] for e in events} == {None} and events[0]["details"] == {"text": "worth doing soon"}
    unknown = task(queue, env, "note", "bta", "x")
    assert unknown.exit_code == 3 and "did you mean 'beta'" in unknown.stderr
    fenced = task(queue, env, "note", "beta", "x", "--lease", "1")
    assert fenced.exit_code == 3 and "no registry entry" in fenced.stderr
    assert task(queue, env, "events", "bta", "--json").stdout.strip() == "[]"  # nothing was written


def test_a_task_only_at_the_base_ref_is_known(queue: Path, store_factory: StoreFactory) -> None:
    (queue / "tasks" / "beta.md").unlink()  # gone from the working tree, still on main
    assert task(queue, store_factory.env(), "note", "beta", "still planned").exit_code == 0


def test_replay_and_repair_pass_over_event_only_lines(queue: Path) -> None:
    env = {"TASKFILES_REGISTRY": str(queue / "registry")}
    assert task(queue, env, "note", "beta", "before any claim").exit_code == 0
    assert task(queue, env, "claim", "alpha").exit_code == 0
    assert task(queue, env, "note", "alpha", "claimed now").exit_code == 0
    before = json.loads(task(queue, env, "events", "--json").stdout)
    snapshot = queue / "registry" / "registry.json"
    snapshot.unlink()  # the journal starts at its first transaction: readers replay it all
    assert json.loads(task(queue, env, "registry", "repair", "--json").stdout)["needed"] is False
    assert "note: claimed now" in task(queue, env, "show", "alpha").stdout
    assert "no registry entry" in task(queue, env, "show", "beta").stdout
    snapshot.write_text("not json")  # and repair rebuilds from the journal alone
    report = json.loads(task(queue, env, "registry", "repair", "--json").stdout)
    assert report["needed"] and report["entries"] == 1 and report["events_replayed"] == 3
    assert [u for u in report["unrecovered"] if "could not be rebuilt" in u] == []
    after = json.loads(task(queue, env, "events", "--json").stdout)
    assert after[:3] == before and after[3]["type"] == "registry.repaired"
    assert "note: claimed now" in task(queue, env, "show", "alpha").stdout
    assert "no registry entry" in task(queue, env, "show", "beta").stdout


def test_show_prints_progress_and_note_on_their_own_lines(queue: Path) -> None:
    env = {"TASKFILES_REGISTRY": str(queue / "registry")}
    lease = task(queue, env, "claim", "alpha").stdout.strip()
    task(queue, env, "heartbeat", "alpha", "--lease", lease, "--note", "parsing")
    task(queue, env, "progress", "alpha", "40", "--lease", lease)
    task(queue, env, "note", "alpha", "a note")
    text = task(queue, env, "show", "alpha").stdout
    assert "progress: 40% parsing" in text and "note: a note" in text


def test_task_history_prints_one_line_an_item_and_a_documented_json(
    queue: Path, store_factory: StoreFactory
) -> None:
    env = store_factory.env()
    task(queue, env, "note", "alpha", "first thoughts")
    text = task(queue, env, "history", "alpha")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0] == "alpha: tasks/alpha.md"
    assert "git      created" in lines[1] and "by Test Author: tasks" in lines[1]
    assert "registry note" in lines[2] and "text=first thoughts" in lines[2]
    doc = json.loads(task(queue, env, "history", "alpha", "--json").stdout)
    assert set(doc) == {"slug", "path", "file_gone", "truncated", "limit", "items", "warnings"}
    assert [(i["source"], i["kind"]) for i in doc["items"]] == [("git", "created"), ("registry", "note")]
    missing = task(queue, env, "history", "alpah")
    assert missing.exit_code == 3 and "did you mean 'alpha'" in missing.stderr


# -- created ------------------------------------------------------------------------------------------


def listed(root: Path, *args: str) -> dict[str, Any]:
    done = task(root, {}, "list", "--json", *args)
    assert done.exit_code == 0, done.output
    return {row["slug"]: row for row in json.loads(done.stdout)}


def test_list_json_gives_each_file_its_creation_date_following_renames(repo: Path) -> None:
    write_task(repo, "old.md", task_text("Old"))
    commit(repo, "old", at(-48))
    write_task(repo, "new.md", task_text("New", "ready"))
    commit(repo, "new", at(0))
    (repo / "tasks" / "api").mkdir()
    git(repo, "mv", "tasks/old.md", "tasks/api/old.md")
    commit(repo, "move", at(1))
    write_task(repo, "draft.md", task_text("Draft"))  # not committed
    rows = listed(repo)
    assert rows["old"]["created"].startswith("2025-02-27T12:00:00")
    assert rows["new"]["created"].startswith("2025-03-01T12:00:00")
    assert rows["draft"]["created"] is None
    cache = json.loads((repo / ".git" / "taskfiles" / created.CACHE).read_text())
    assert cache["head"] == git(repo, "rev-parse", "HEAD").strip()
    write_task(repo, "draft.md", task_text("Draft"))
    commit(repo, "draft", at(5))  # HEAD moves: only the new commit is read, and the cache follows
    assert listed(repo)["draft"]["created"].startswith("2025-03-01T17:00:00")
    assert json.loads((repo / ".git" / "taskfiles" / created.CACHE).read_text())["head"] != cache["head"]
    assert set(listed(repo, "--created-after", "2025-03-01")) == {"new", "draft"}
    assert set(listed(repo, "--created-before", "2025-03-01T12:00:00Z")) == {"old"}
    assert set(
        listed(repo, "--created-after", "2025-03-01T13:00:00+01:00", "--created-before", "2025-03-02")
    ) == {
        "new",
        "draft",
    }


def test_created_dates_are_computed_afresh_after_history_is_rewritten(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    commit(repo, "a", at(0))
    config = load_config(repo)
    assert created.created_dates(config)["tasks/a.md"].startswith("2025-03-01T12:00:00")
    git(repo, "commit", "--amend", "-q", "--no-edit", "--date", at(3).isoformat())  # HEAD no longer descends
    assert created.created_dates(load_config(repo))["tasks/a.md"].startswith("2025-03-01T15:00:00")


@pytest.fixture
def shallow(story: Path, tmp_path: Path) -> Path:
    """A clone of ``story`` two commits deep: its oldest commit has no parent there."""
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "2", f"file://{story}", str(clone))
    return clone


def test_a_shallow_clone_does_not_show_its_boundary_as_the_creation(shallow: Path) -> None:
    found = timeline(load_config(shallow), "fix-login", ())
    assert kinds(found) == [("git", "completed")]  # "say more" is the baseline, not a creation
    assert found.items[0].to_dict()["status_from"] == "ready"
    assert any("shallow clone" in warning for warning in found.warnings)
    git(shallow, "fetch", "-q", "--unshallow")
    deep = timeline(load_config(shallow), "fix-login", ())
    assert kinds(deep)[0] == ("git", "created") and not deep.warnings


def test_created_dates_are_computed_afresh_when_a_shallow_clone_is_deepened(shallow: Path) -> None:
    assert listed(shallow)["fix-login"]["created"].startswith("2025-03-01T13:00:00")  # the boundary
    git(shallow, "fetch", "-q", "--unshallow")  # HEAD stays; the history behind it grows
    assert listed(shallow)["fix-login"]["created"].startswith("2025-03-01T08:00:00")


def listed_in_a_process(root: Path) -> tuple[dict[str, Any], bool]:
    """``task list --json`` run in a fresh interpreter: its rows, and whether it imported gitpython."""
    rows, imported = list_json_in_a_process(root, "git")
    return {row["slug"]: row for row in rows}, "git" in imported


def test_a_cold_list_json_reads_the_creation_dates_without_importing_gitpython(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    commit(repo, "a", at(0))
    rows, gitpython = listed_in_a_process(repo)
    assert rows["a"]["created"].startswith("2025-03-01T12:00:00")
    assert not gitpython  # the git log ran as a plain process, beside the parse


def test_list_json_after_head_moved_reads_the_new_commits_without_importing_gitpython(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    commit(repo, "a", at(0))
    listed(repo)  # the dates cached at this HEAD
    write_task(repo, "b.md", task_text("B"))
    commit(repo, "b", at(2))
    rows, gitpython = listed_in_a_process(repo)
    assert rows["a"]["created"].startswith("2025-03-01T12:00:00")
    assert rows["b"]["created"].startswith("2025-03-01T14:00:00")
    assert not gitpython  # HEAD descends from the cached commit: asked of a plain git process


def test_a_failing_creation_log_is_the_one_error_even_beside_an_unreadable_task(repo: Path) -> None:
    write_task(repo, "a.md", task_text("A"))
    head = commit(repo, "a", at(0))
    (repo / ".git" / "objects" / head[:2] / head[2:]).unlink()  # HEAD still names it; git log fails
    write_task(repo, "b.md", "---\ntitle: [\n---\n")
    done = task(repo, {}, "list", "--json")
    assert done.exit_code == 1 and done.stdout == ""
    assert done.stderr.startswith("error: git log --reverse") and "bad object HEAD" in done.stderr
    assert "skipped" not in done.stderr  # the log, run beside the parse, is still heard first


@pytest.mark.parametrize("value", ["yesterday", "2025-13-01", "1/2/2025"])
def test_a_creation_date_that_is_not_iso_is_a_usage_error(queue: Path, value: str) -> None:
    done = task(queue, {}, "list", "--created-after", value)
    assert done.exit_code == 2 and f"--created-after {value!r} is not an ISO date" in done.stderr


def test_every_list_filter_takes_comma_separated_values(queue: Path) -> None:
    write_task(queue, "gamma.md", task_text("Gamma", "cancelled", labels="[web, api]"))
    assert set(listed(queue, "--status", "ready,cancelled")) == {"alpha", "gamma"}
    assert set(listed(queue, "--status", "ready", "--status", "not_started,cancelled")) == {
        "alpha",
        "beta",
        "gamma",
    }
    assert set(listed(queue, "--label", "api,ops")) == {"gamma"}
    bad = task(queue, {}, "list", "--status", "ready,done")
    assert bad.exit_code == 2 and "--status 'done' is not one of" in bad.stderr


# -- the page ----------------------------------------------------------------------------------------


def test_the_task_page_and_its_api_show_the_timeline(story: Path) -> None:
    config: Config = load_config(story)
    reg = open_registry(config, actor=ME)
    reg.note("fix-login", "<script>alert(1)</script>")
    with LiveServer(create_app(config, watch=False, max_age=0)) as server:
        html = httpx2.get(f"{server.url}/tasks/fix-login").text
        doc = httpx2.get(f"{server.url}/api/tasks/fix-login").json()
    timeline_html = section(html, "history")
    for word in ("created", "renamed", "readied", "completed", "move to web", "note"):
        assert word in timeline_html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in timeline_html
    assert [(i["source"], i["kind"]) for i in doc["history"]][-1] == ("registry", "note")
    assert doc["history"][0]["kind"] == "created" and doc["history"][0]["path"] == "tasks/fix-login.md"
