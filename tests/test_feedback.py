"""Feedback to the next attempt, and what a task file asks of its attempts.

Retry with instructions and review with requested changes (registry on both stores, the
CLI, the page and the API through a real HTTP client), the prompt of the next attempt as
a real heartbeat cycle renders it (instructions, the account of earlier attempts, the
kept or fresh worktree), and the task file's ``agent`` and ``budget_usd`` (validation,
settings, a real worker run with the scripted agent).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner, Result

from taskfiles import process
from taskfiles.cli import app
from taskfiles.config import Config, load
from taskfiles.errors import ConfigError, ConflictError, NotFoundError, RegistryError, UsageError
from taskfiles.registry import Actor, Registry, RegistryEntry, open_registry
from taskfiles.registry.attempts import attempts, earlier
from taskfiles.registry.lifecycle import MAX_INSTRUCTIONS
from taskfiles.serve import create_app

from .conftest import TEST_ACTOR, ManualClock, StoreFactory, commit_all, git, wait_until, write_task
from .harness import Site
from .test_serve import LiveServer, csrf_of, make_project, run_task

runner = CliRunner()
OPERATOR = {"TASKFILES_ACTOR": "alice"}


def invoke(root: Path, *args: str, stdin: str | None = None) -> Result:
    """``task -C root ARGS`` in process, as the operator alice."""
    return runner.invoke(app, ["-C", str(root), *args], env=OPERATOR, input=stdin)


def ok(root: Path, *args: str, stdin: str | None = None) -> str:
    result = invoke(root, *args, stdin=stdin)
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    return result.stdout


def failed(root: Path, *args: str, code: int, stdin: str | None = None) -> str:
    result = invoke(root, *args, stdin=stdin)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def ended(reg: Registry, slug: str, exit_code: int, **claim: Any) -> RegistryEntry:
    """Claim, start and finish one attempt of ``slug``."""
    lease = reg.claim(slug, worker="w1", **claim).lease
    reg.start(slug, lease)
    return reg.finish(slug, lease, exit_code, error="boom" if exit_code else None)


# -- the registry, on every store --------------------------------------------------------------


def test_retry_with_instructions_is_recorded_and_the_next_claim_carries_them(
    store_factory: StoreFactory, clock: ManualClock
) -> None:
    reg = store_factory(clock=clock, actor=TEST_ACTOR)
    ended(reg, "a", 1)
    clock.advance(minutes=1)
    retried = reg.retry("a", reason="try again", instructions="  Use the v2 API.\nKeep the tests.  ")
    given = retried.instructions
    assert given is not None and retried.state == "retry_wait"
    assert (given.text, given.who, given.attempt, given.kind) == (
        "Use the v2 API.\nKeep the tests.",
        "tester",
        2,
        "retry",
    )
    event = reg.events("a").events[-1]
    assert (event.type, event.actor.who, event.details["instructions"]) == (
        "task.retry_scheduled",
        "tester",
        given.text,
    )
    assert store_factory().get("a").instructions == given  # a fresh handle reads it back
    claimed = reg.claim("a", worker="w2")
    assert (claimed.attempt, claimed.instructions) == (2, given)
    carried = reg.events("a").events[-1]
    assert carried.type == "task.claimed" and carried.details["instructions"] == given.to_dict()


def test_instructions_last_one_attempt_and_stay_in_the_account(
    store_factory: StoreFactory, clock: ManualClock
) -> None:
    reg = store_factory(clock=clock, actor=TEST_ACTOR)
    ended(reg, "a", 1)
    reg.retry("a", instructions="first instructions")
    reg.retry("a", instructions="second thoughts")  # before a claim: the last one wins
    second = ended(reg, "a", 2)
    assert second.instructions is not None and second.instructions.text == "second thoughts"
    reg.retry("a")  # no new instructions: the next attempt has none of its own
    third = reg.claim("a", worker="w1")
    assert third.attempt == 3 and third.instructions is None
    told = attempts(reg.events("a").events)
    assert [(a.number, a.instructions.text if a.instructions else None) for a in told] == [
        (1, None),
        (2, "second thoughts"),
        (3, None),
    ]


def test_request_changes_sends_a_task_in_review_back(store_factory: StoreFactory, clock: ManualClock) -> None:
    reg = store_factory(clock=clock, actor=Actor("reviewer", "host-1", 7))
    ended(reg, "a", 0)
    back = reg.request_changes("a", instructions="Rename the flag to --dry-run.")
    assert back.state == "retry_wait" and back.fresh is False
    assert back.instructions is not None and back.instructions.kind == "changes_requested"
    event = reg.events("a").events[-1]
    assert (event.type, event.actor.who, event.details["instructions"]) == (
        "task.changes_requested",
        "reviewer",
        "Rename the flag to --dry-run.",
    )
    assert reg.claim("a", worker="w1").instructions == back.instructions


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("running", ["'a' is running, not in review", "task stop a", "task retry a --instructions TEXT"]),
        ("failed", ["'a' is failed, not in review", "run 'task retry a --instructions TEXT'"]),
        ("parked", ["'a' is parked", "task retry a --instructions TEXT"]),
        ("released", ["'a' is released", "task status a"]),
    ],
)
def test_request_changes_outside_review_says_the_state_and_what_to_run(
    store_factory: StoreFactory, setup: str, words: list[str]
) -> None:
    reg = store_factory(actor=TEST_ACTOR)
    lease = reg.claim("a", worker="w1").lease
    reg.start("a", lease)
    if setup == "failed":
        reg.finish("a", lease, 1)
    elif setup == "parked":
        reg.park("a", reason="hold", lease=lease)
    elif setup == "released":
        reg.release("a")
    before = reg.get("a")
    with pytest.raises(ConflictError) as refused:
        reg.request_changes("a", instructions="change it")
    assert all(word in str(refused.value) for word in words), str(refused.value)
    assert refused.value.exit_code == 4 and reg.get("a") == before
    with pytest.raises(NotFoundError):
        reg.request_changes("never-claimed", instructions="change it")


def test_empty_or_huge_instructions_are_refused_and_change_nothing(store_factory: StoreFactory) -> None:
    reg = store_factory(actor=TEST_ACTOR)
    ended(reg, "a", 0)
    before = reg.get("a")
    for text in ("", "  \n "):
        with pytest.raises(UsageError, match="instructions are empty"):
            reg.retry("a", instructions=text)
        with pytest.raises(UsageError, match="instructions are empty"):
            reg.request_changes("a", instructions=text)
    with pytest.raises(UsageError, match=f"over the limit of {MAX_INSTRUCTIONS}"):
        reg.retry("a", instructions="x" * (MAX_INSTRUCTIONS + 1))
    assert reg.get("a") == before and reg.events("a").events[-1].type == "task.exited"


def test_fresh_retry_with_instructions(store_factory: StoreFactory) -> None:
    reg = store_factory(actor=TEST_ACTOR)
    ended(reg, "a", 0)
    entry = reg.retry("a", fresh=True, instructions="start over, smaller")
    assert entry.fresh and entry.instructions is not None
    assert reg.events("a").events[-1].details["fresh"] is True


def test_the_account_tells_how_each_attempt_went(store_factory: StoreFactory, clock: ManualClock) -> None:
    reg = store_factory(clock=clock, actor=TEST_ACTOR)
    first = reg.claim("a", worker="w1").lease
    reg.start("a", first, agent="claude")
    reg.progress("a", 40, "parser done", lease=first)
    reg.heartbeat("a", first, note="writing tests", cost_usd=0.5)
    reg.finish("a", first, 3, error="tests fail", failure_class="usage")
    reg.retry("a", instructions="fix the tests first")
    second = reg.claim("a", worker="w2").lease
    reg.stop("a", reason="wrong branch")
    reg.retry("a")
    reg.claim("a", worker="w3")
    told = attempts(reg.events("a").events)
    one, two, three = told
    assert (one.number, one.worker, one.agent, one.outcome, one.exit_code, one.failure_class) == (
        1,
        "w1",
        "claude",
        "failed",
        3,
        "usage",
    )
    assert (one.error, one.progress, one.percent, one.cost_usd) == ("tests fail", "writing tests", 40, 0.5)
    assert (two.lease, two.outcome, two.error) == (second, "stopped", "wrong branch")
    assert two.instructions is not None and two.instructions.text == "fix the tests first"
    assert (three.number, three.outcome, three.instructions) == (3, "claimed", None)
    shown, left_out = earlier(reg.events("a").events, 3, limit=1)
    assert [a.number for a in shown] == [2] and left_out == 1


def test_an_entry_with_malformed_instructions_is_a_registry_error() -> None:
    good = {"slug": "a", "state": "retry_wait", "lease": 1}
    given = {"text": "t", "who": "w", "time": "2025-03-01T12:00:00.000000Z", "attempt": 2, "kind": "retry"}
    entry = RegistryEntry.from_dict({**good, "instructions": given})
    assert entry.instructions is not None and entry.to_dict()["instructions"] == given
    for bad in ("text", {**given, "attempt": "2"}, {k: v for k, v in given.items() if k != "who"}):
        with pytest.raises(RegistryError, match="registry entry 'a' is malformed"):
            RegistryEntry.from_dict({**good, "instructions": bad})


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def queue(repo: Path) -> Path:
    """Tasks a (exited: in review), b (failed), c (running), committed on main."""
    for slug in "abc":
        write_task(repo, f"{slug}.md", f"---\ntitle: Task {slug}\nstatus: ready\n---\n\nDo {slug}.\n")
    commit_all(repo)
    reg = open_registry(load(repo))
    ended(reg, "a", 0)
    ended(reg, "b", 1)
    reg.start("c", reg.claim("c", worker="w1").lease)
    return repo


def registry_of(root: Path) -> Registry:
    return open_registry(load(root))


def test_cli_retry_takes_instructions_from_an_option_a_file_or_stdin(queue: Path, tmp_path: Path) -> None:
    out = ok(queue, "retry", "b", "--instructions", "Pin the dependency.")
    assert out == "b: will be retried with instructions\n"
    given = registry_of(queue).get("b").instructions
    assert given is not None and (given.text, given.who, given.attempt) == ("Pin the dependency.", "alice", 2)
    notes = tmp_path / "notes.md"
    notes.write_text("Line one.\nLine two.\n", encoding="utf-8")
    entry = json.loads(ok(queue, "retry", "b", "--instructions-file", str(notes), "--json"))
    assert entry["instructions"]["text"] == "Line one.\nLine two."
    ok(queue, "retry", "b", "--instructions-file", "-", stdin="From stdin.\n")
    events = json.loads(ok(queue, "events", "b", "--json"))
    retries = [e for e in events if e["type"] == "task.retry_scheduled"]
    assert [e["details"]["instructions"] for e in retries] == [
        "Pin the dependency.",
        "Line one.\nLine two.",
        "From stdin.",
    ]
    assert {e["actor"]["who"] for e in retries} == {"alice"}


def test_cli_retry_refuses_both_sources_empty_text_and_unreadable_files(queue: Path, tmp_path: Path) -> None:
    before = registry_of(queue).get("b")
    notes = tmp_path / "notes.md"
    notes.write_text("x", encoding="utf-8")
    both = failed(queue, "retry", "b", "--instructions", "x", "--instructions-file", str(notes), code=2)
    assert "--instructions or --instructions-file, not both" in both
    assert "is empty" in failed(queue, "retry", "b", "--instructions", "  ", code=2)
    assert "--instructions-file - is empty" in failed(
        queue, "retry", "b", "--instructions-file", "-", stdin="\n", code=2
    )
    missing = failed(queue, "retry", "b", "--instructions-file", str(tmp_path / "nope.md"), code=2)
    assert "nope.md: cannot read it" in missing
    assert registry_of(queue).get("b") == before


def test_cli_review_request_changes(queue: Path) -> None:
    out = ok(queue, "review", "a", "--request-changes", "Split the commit in two.")
    assert out == "a: changes requested; the next attempt gets them\n"
    entry = registry_of(queue).get("a")
    assert entry.state == "retry_wait" and entry.instructions is not None
    assert (entry.instructions.kind, entry.instructions.who) == ("changes_requested", "alice")
    last = json.loads(ok(queue, "events", "a", "--json"))[-1]
    assert (last["type"], last["actor"]["who"], last["details"]["instructions"]) == (
        "task.changes_requested",
        "alice",
        "Split the commit in two.",
    )


def test_cli_review_outside_review_is_exit_4_and_without_changes_exit_2(queue: Path) -> None:
    running = failed(queue, "review", "c", "--request-changes", "x", code=4)
    assert "'c' is running, not in review" in running and "task stop c" in running
    failing = failed(queue, "review", "b", "--request-changes", "x", code=4)
    assert "'b' is failed" in failing and "task retry b --instructions TEXT" in failing
    assert "say what to change" in failed(queue, "review", "a", code=2)
    assert "not both" in failed(
        queue, "review", "a", "--request-changes", "x", "--request-changes-file", "-", code=2
    )
    assert "zzz" in failed(queue, "review", "zzz", "--request-changes", "x", code=3)
    assert registry_of(queue).get("a").state == "exited"


# -- the next attempt's prompt, from real heartbeat cycles -------------------------------------


def prompt_of(site: Site, slug: str, attempt: int) -> str:
    return (site.config.registry_dir / "prompts" / slug / f"{attempt}.md").read_text(encoding="utf-8")


def test_request_changes_reaches_the_next_prompt_in_the_same_worktree(site: Site) -> None:
    site.plan({"a": ["complete", "ok"]})
    site.task("a")
    site.cycle()
    first = site.wait("a", "exited")
    assert "a: done" in git(site.root, "log", "--format=%s", "task/a")
    assert "## Instructions from" not in prompt_of(site, "a", 1)
    assert "## Earlier attempts" not in prompt_of(site, "a", 1)

    ok(site.root, "review", "a", "--request-changes", "Also handle <empty> input.\nThen commit.")
    done = site.cycle()
    assert [d.slug for d in done.dispatched] == ["a"]
    second = site.wait("a", "exited")
    assert second.attempt == 2 and second.worktree == first.worktree and second.branch == "task/a"
    assert "a: done" in git(site.root, "log", "--format=%s", "task/a")  # attempt 1's commit is kept
    assert (Path(second.worktree or "") / "work-a.txt").read_text() == "done by attempt 1\n"

    text = prompt_of(site, "a", 2)
    heading = text.index("## Instructions from the reviewer/operator")
    assert "alice requested these changes on review at" in text
    assert "> Also handle <empty> input.\n> Then commit." in text[heading:]
    assert (
        "## Earlier attempts" in text and "1 earlier attempt; how each went and ended (oldest first):" in text
    )
    assert re.search(r"- Attempt 1 \(claimed [^)]*worker [^)]*agent default\): exited, exit code 0\.", text)
    assert "`task history a`" in text and "`task events a`" in text and "`task show a --json`" in text
    assert text.index("## Instructions") < text.index("## Earlier attempts") < text.index("## The task file")


def test_a_retried_failure_shows_its_error_and_progress_and_old_instructions_move_to_the_account(
    site: Site,
) -> None:
    site.configure(heartbeat_seconds=0.2)
    site.plan({"b": ["hang", "exit:7", "ok"]})
    site.task("b")
    site.cycle()
    running = site.wait_started("b")
    reg = site.registry()
    reg.progress("b", 40, "halfway there", lease=running.lease)
    reg.stop("b", reason="wrong approach")
    wait_until(lambda: not process.session_members(running.pid or 0), 30, "attempt 1's worker to exit")
    ok(site.root, "retry", "b", "--instructions-file", "-", stdin="Use the other API.\nKeep the tests.\n")
    site.cycle()
    assert site.wait("b", "failed").attempt == 2
    second = prompt_of(site, "b", 2)
    assert (
        "alice retried it with these instructions at" in second
        and "> Use the other API.\n> Keep the tests." in second
    )
    assert "- Attempt 1 (" in second and "): stopped." in second
    assert "  Why it was stopped: wrong approach" in second and "  Last progress: 40% halfway there" in second

    ok(site.root, "retry", "b")  # no new instructions for attempt 3
    site.cycle()
    assert site.wait("b", "exited").attempt == 3
    third = prompt_of(site, "b", 3)
    assert "## Instructions from" not in third
    assert "2 earlier attempts;" in third
    assert "): failed, exit code 7, failure class exit_7." in third and "Last error: failing with 7" in third
    assert re.search(r"Instructions before it \(alice, [^)]+\): Use the other API\. Keep the tests\.", third)


def test_fresh_retry_starts_the_branch_over(site: Site) -> None:
    site.plan({"a": ["complete", "ok"]})
    site.task("a")
    site.cycle()
    first = site.wait("a", "exited")
    ok(site.root, "retry", "a", "--fresh", "--instructions", "Start again from main.")
    site.cycle()
    second = site.wait("a", "exited")
    assert second.attempt == 2 and second.worktree == first.worktree
    assert "a: done" not in git(site.root, "log", "--format=%s", "task/a")
    assert not (Path(second.worktree or "") / "work-a.txt").exists()
    assert "> Start again from main." in prompt_of(site, "a", 2)


# -- the page and the API, through a real HTTP client ------------------------------------------


@pytest.fixture
def served(repo: Path) -> Config:
    return make_project(repo)


def test_api_retry_and_request_changes_take_instructions(served: Config) -> None:
    reg = open_registry(served)
    ended(reg, "alpha", 0)
    ended(reg, "beta", 1)
    app_ = create_app(served, watch=False, max_age=0, token="s3cret-token", token_name="ops")
    bearer = {"authorization": "Bearer s3cret-token"}
    with LiveServer(app_) as server, httpx2.Client(base_url=server.url, headers=bearer) as http:
        detail = http.get("/api/tasks/alpha").json()
        assert detail["actions"] == ["request_changes", "retry", "park", "release"]
        asked = {"instructions": "Add the <missing> test."}
        done = http.post("/api/tasks/alpha/actions/request_changes", json=asked)
        assert done.status_code == 200, done.text
        entry = done.json()["entry"]
        assert (done.json()["action"], entry["state"]) == ("request_changes", "retry_wait")
        assert entry["instructions"]["text"] == "Add the <missing> test."
        assert entry["instructions"]["who"] == "web:ops@127.0.0.1"

        retried = http.post(
            "/api/tasks/beta/actions/retry", json={"instructions": "Retry slower.", "fresh": True}
        )
        assert retried.status_code == 200 and retried.json()["entry"]["fresh"] is True
        assert retried.json()["entry"]["instructions"]["kind"] == "retry"

        again = http.post("/api/tasks/alpha/actions/request_changes", json=asked)
        assert again.status_code == 409 and "not in review" in again.json()["error"]
        empty = http.post("/api/tasks/beta/actions/request_changes", json={"instructions": ""})
        assert empty.status_code in (400, 409)
        wrong = http.post("/api/tasks/beta/actions/retry", json={"instructions": 5})
        assert wrong.status_code == 400 and "instructions must be text" in wrong.json()["error"]
    events = open_registry(served).events("alpha").events
    assert (events[-1].type, events[-1].actor.who) == ("task.changes_requested", "web:ops@127.0.0.1")


def test_api_action_bodies_that_do_not_say_what_they_mean_are_400_and_change_nothing(served: Config) -> None:
    """A body that does not parse, is not an object, or has a ``fresh`` that is not a yes or
    no ("false" once read as yes, starting the branch over) is refused before the registry
    is touched; so is a body past the cap, while 16,000 characters of any text still fit."""
    reg = open_registry(served)
    ended(reg, "beta", 1)
    before = reg.get("beta")
    app_ = create_app(served, watch=False, max_age=0, token="s3cret-token", token_name="ops")
    bearer = {"authorization": "Bearer s3cret-token", "content-type": "application/json"}
    url = "/api/tasks/beta/actions/retry"
    with LiveServer(app_) as server, httpx2.Client(base_url=server.url, headers=bearer) as http:
        bad = {
            '{"instructions": "x"': "the body is not JSON",
            "[1, 2]": "the body is a JSON list",
            '{"fresh": "yes"}': "fresh must be true or false, not 'yes'",
            '{"fresh": 1}': "fresh must be true or false, not '1'",
            '{"reason": {"a": 1}}': "reason must be text, not dict",
            json.dumps({"instructions": "x" * 1_000_000}): "the body is over",
        }
        for body, said in bad.items():
            answer = http.post(url, content=body)
            assert answer.status_code == 400 and said in answer.json()["error"], (body[:40], answer.text)
        assert open_registry(served).get("beta") == before
        kept = http.post(url, content='{"fresh": "false", "instructions": "Keep the branch."}')
        assert kept.status_code == 200, kept.text
        assert kept.json()["entry"]["fresh"] is not True
        wide = http.post(url, content=json.dumps({"instructions": "\u00e9" * MAX_INSTRUCTIONS}))
        assert wide.status_code == 200, wide.text


def test_page_forms_request_changes_and_retry_with_instructions(served: Config) -> None:
    reg = open_registry(served)
    ended(reg, "alpha", 0)
    run_task(served, "gamma")
    with LiveServer(create_app(served, watch=False, max_age=0)) as server:
        origin = {"origin": server.url}
        with httpx2.Client(base_url=server.url, headers=origin, follow_redirects=False) as http:
            page = http.get("/tasks/alpha").text
            assert 'action="/tasks/alpha/request_changes"' in page and 'name="instructions" required' in page
            assert ">request changes</button>" in page
            assert 'action="/tasks/gamma/request_changes"' not in http.get("/tasks/gamma").text
            token = csrf_of(page)
            xss = "<script>window.__xss=1</script> please fix"
            form = {"csrf": token, "instructions": xss}
            done = http.post("/tasks/alpha/request_changes", data=form)
            assert done.status_code == 303 and done.headers["location"] == "/tasks/alpha?done=request_changes"
            shown = http.get("/tasks/alpha").text
            assert "&lt;script&gt;window.__xss=1&lt;/script&gt; please fix" in shown and xss not in shown
            assert "changes requested for attempt 2" in shown

            refused = http.post("/tasks/gamma/request_changes", data={"csrf": token, "instructions": "x"})
            assert refused.status_code == 409 and "not in review" in refused.text
            forged = http.post("/tasks/alpha/retry", data={"csrf": "forged", "instructions": "x"})
            assert forged.status_code == 403
            wide = http.post(
                "/tasks/alpha/retry", data={"csrf": token, "instructions": "é" * MAX_INSTRUCTIONS}
            )
            assert wide.status_code == 303, wide.text  # 96 KB percent-encoded: the form takes it
            retried = http.post("/tasks/alpha/retry", data={"csrf": token, "instructions": "From the page."})
            assert retried.status_code == 303
    given = open_registry(served).get("alpha").instructions
    assert given is not None and (given.text, given.who, given.kind) == (
        "From the page.",
        "web:127.0.0.1",
        "retry",
    )


# -- budget_usd and agent in the task file -----------------------------------------------------

AGENTS = """
[agents.claude]
command = ["claude-code", "{prompt_file}"]
deadline_seconds = 60

[agents.codex]
command = ["codex", "exec", "{prompt_file}"]
cost_cap_usd = 4
"""


def test_validate_reports_unknown_agents_and_bad_budgets_on_their_lines(repo: Path) -> None:
    (repo / "taskfiles.toml").write_text(AGENTS, encoding="utf-8")
    files = {
        "good.md": "---\ntitle: Good\nagent: claude\nbudget_usd: 2.5\n---\n",
        "plain.md": "---\ntitle: Plain\nagent: default\nbudget_usd: 3\n---\n",
        "typo.md": "---\ntitle: Typo\nstatus: ready\nagent: claud\n---\n",
        "negative.md": "---\ntitle: Negative\n\nbudget_usd: -1\n---\n",
        "zero.md": "---\ntitle: Zero\nbudget_usd: 0\n---\n",
        "words.md": "---\ntitle: Words\nbudget_usd: five dollars\n---\n",
        "flag.md": "---\ntitle: Flag\nbudget_usd: true\n---\n",
        "empty.md": "---\ntitle: Empty\nbudget_usd:\n---\n",
    }
    for name, text in files.items():
        write_task(repo, name, text)
    result = invoke(repo, "validate", "--json")
    assert result.exit_code == 1
    found = {(p["path"], p["line"], p["code"]): p["message"] for p in json.loads(result.stdout)["problems"]}
    assert set(found) == {
        ("tasks/typo.md", 4, "unknown_agent"),
        ("tasks/negative.md", 4, "bad_budget"),
        ("tasks/zero.md", 3, "bad_budget"),
        ("tasks/words.md", 3, "bad_budget"),
        ("tasks/flag.md", 3, "bad_budget"),
        ("tasks/empty.md", 3, "bad_budget"),
    }
    typo = found[("tasks/typo.md", 4, "unknown_agent")]
    assert "did you mean 'claude'?" in typo and "[agents.NAME]" in typo and "taskfiles.toml" in typo
    assert "configured: claude, codex" in typo
    assert "not -1" in found[("tasks/negative.md", 4, "bad_budget")]
    assert "not 'five dollars'" in found[("tasks/words.md", 3, "bad_budget")]
    listed = {t["slug"]: t for t in json.loads(ok(repo, "list", "--json"))}
    assert (listed["good"]["agent"], listed["good"]["budget_usd"]) == ("claude", 2.5)
    assert (listed["plain"]["agent"], listed["plain"]["budget_usd"], listed["plain"]["extra"]) == (
        "default",
        3.0,
        {},
    )
    assert (listed["typo"]["agent"], listed["typo"]["budget_usd"]) == ("claud", None)
    assert "zero" not in listed  # a budget that cannot be read keeps the task from running
    shown = json.loads(ok(repo, "show", "good", "--json"))
    assert (shown["agent"], shown["budget_usd"]) == ("claude", 2.5)


def test_agent_profiles_are_worker_settings_with_their_own_command(repo: Path) -> None:
    (repo / "taskfiles.toml").write_text('[worker]\ncommand = ["agent"]\ncost_cap_usd = 9\n' + AGENTS)
    config = load(repo)
    assert config.worker_for(None) == config.worker == config.worker_for("default")
    claude = config.worker_for("claude")
    assert claude.command == ("claude-code", "{prompt_file}")
    assert (claude.deadline_seconds, claude.cost_cap_usd) == (60, 9)
    assert config.worker_for("codex").cost_cap_usd == 4
    with pytest.raises(ConfigError, match="agent 'cladue' is not a configured agent profile; did you mean"):
        config.worker_for("cladue")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[agents.x]\ndeadline_seconds = 5\n", ["[agents.x] command is missing", 'command = ["my-agent"']),
        ('[agents.x]\ncommand = "my-agent --go"\n', ["[agents.x] command must be an argument list"]),
        ('[agents.x]\ncommand = ["a"]\nmodel = "big"\n', ["[agents.x] has unknown key 'model'", "command"]),
        ('[agents.x]\ncommand = ["a"]\ncost_cap_usd = -1\n', ["[agents.x] cost_cap_usd must be 0 or more"]),
        (
            '[agents.default]\ncommand = ["a"]\n',
            ["'default' cannot name an agent profile", "[agents.claude]"],
        ),
        ('agents = ["a"]\n', ["[agents] must be a table"]),
    ],
)
def test_bad_agent_profiles_are_config_errors_naming_file_and_key(
    repo: Path, text: str, words: list[str]
) -> None:
    (repo / "taskfiles.toml").write_text(text, encoding="utf-8")
    write_task(repo, "a.md", "---\ntitle: A\nagent: x\n---\n")
    stderr = failed(repo, "validate", code=2)
    assert "taskfiles.toml" in stderr and all(word in stderr for word in words), stderr


PROFILE_AGENT = r"""
import os, sys
from pathlib import Path
slug, attempt = os.environ["TASKFILES_SLUG"], os.environ["TASKFILES_ATTEMPT"]
Path(sys.argv[1]).write_text(f"{sys.argv[2]} ran {slug} attempt {attempt}\n")
"""


def commit_task(site: Site, slug: str, *extra: str) -> None:
    lines = "\n".join((f"title: Task {slug}", "status: ready", *extra))
    write_task(site.root, f"{slug}.md", f"---\n{lines}\n---\n\nDo {slug}.\n")
    commit_all(site.root, f"add {slug}")


def test_the_task_s_agent_profile_runs_and_dispatch_records_which(site: Site, tmp_path: Path) -> None:
    script = tmp_path / "profile_agent.py"
    script.write_text(PROFILE_AGENT, encoding="utf-8")
    marker = tmp_path / "profile-ran.txt"
    command = json.dumps([sys.executable, str(script), str(marker), "alt-profile"])
    site.configure(worker_extra=f"\n[agents.alt]\ncommand = {command}\n")
    site.plan({"d": ["ok"]})
    commit_task(site, "p", "agent: alt")
    site.task("d")
    site.cycle()
    site.wait("p", "exited")
    site.wait("d", "exited")
    assert marker.read_text() == "alt-profile ran p attempt 1\n"
    assert site.plan_file.with_name("env-d-1.json").exists()  # the [worker] command ran d
    assert not site.plan_file.with_name("env-p-1.json").exists()
    started = {
        e.slug: e.details.get("agent") for e in site.registry().events().events if e.type == "task.started"
    }
    assert started == {"p": "alt", "d": "default"}


def test_an_unknown_agent_fails_the_dispatch_saying_why(site: Site) -> None:
    commit_task(site, "u", "agent: nobody")
    done = site.cycle()
    assert (
        done.dispatched[0].error
        and "agent 'nobody' is not a configured agent profile" in done.dispatched[0].error
    )
    entry = site.entry("u")
    assert (entry.state, entry.failure_class) == ("failed", "dispatch_failed")


def test_the_task_s_budget_replaces_the_cost_cap(site: Site) -> None:
    site.configure(heartbeat_seconds=0.2, worker_extra="cost_cap_usd = 1.0")
    site.plan({"low": ["cost:5"], "high": ["cost:5"]})  # each reports $5, then hangs
    commit_task(site, "low", "budget_usd: 2")
    commit_task(site, "high", "budget_usd: 50")
    site.cycle()
    parked = site.wait("low", "parked")
    assert parked.failure_class == "cost_cap" and parked.total_cost_usd == 5.0
    assert "passed the task's budget_usd $2.00" in (parked.parked_reason or "")
    site.wait_started("high")
    wait_until(lambda: site.entry("high").cost_usd == 5.0, 30, "high to report its cost")
    beats = site.entry("high").heartbeats
    wait_until(lambda: site.entry("high").heartbeats >= beats + 3, 30, "three more heartbeats over the cap")
    assert site.entry("high").state == "running"  # $5 is past cost_cap_usd, inside its budget
    site.registry().stop("high", reason="enough")


def test_worker_run_by_hand_reads_the_task_s_intent(site: Site, tmp_path: Path) -> None:
    script = tmp_path / "profile_agent.py"
    script.write_text(PROFILE_AGENT, encoding="utf-8")
    marker = tmp_path / "by-hand.txt"
    command = json.dumps([sys.executable, str(script), str(marker), "alt-profile"])
    site.configure(worker_extra=f"\n[agents.alt]\ncommand = {command}\n")
    commit_task(site, "h", "agent: alt")
    lease = json.loads(ok(site.root, "claim", "h", "--json"))["lease"]
    result = invoke(site.root, "worker", "run", "h", "--lease", str(lease))
    assert result.exit_code == 0, result.stderr
    assert marker.read_text() == "alt-profile ran h attempt 1\n"
    started = [e for e in site.registry().events("h").events if e.type == "task.started"]
    assert started[-1].details["agent"] == "alt"
    assert "--budget-usd must be a positive number" in failed(
        site.root, "worker", "run", "h", "--lease", str(lease), "--budget-usd", "0", code=2
    )
