"""Bad values on the command line: each is one ``error:`` line naming the value and what to
do, with the usage exit code (2), and changes nothing. Real repositories, the real CLI
in process (CliRunner) and, where cron or a shell would meet it, as a real process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskfiles.cli import app

from .conftest import commit_all, write_task

BIN = Path(sys.executable).parent
runner = CliRunner()
OWNERS = 'base_ref = "main"\nowners = ["alice", "bob"]\nowner_aliases = { al = "alice" }\n'
TASK = "---\ntitle: Fix it\nstatus: ready\nowner: alice\n---\n\nBody.\n"


@pytest.fixture
def team(repo: Path) -> Path:
    """A repository with owners configured and one ready task of alice's, committed on main."""
    (repo / "taskfiles.toml").write_text(OWNERS, encoding="utf-8")
    write_task(repo, "fix-it.md", TASK)
    commit_all(repo)
    return repo


def refused(root: Path, *args: str) -> str:
    """Run ``task -C root ARGS``, which must exit 2 with one ``error:`` line; return it."""
    result = runner.invoke(app, ["-C", str(root), *args])
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def ok(root: Path, *args: str) -> str:
    result = runner.invoke(app, ["-C", str(root), *args])
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stdout}{result.stderr}"
    return result.stdout


def tree(root: Path) -> dict[str, bytes]:
    """Every file of the repository outside .git (to prove a refusal wrote nothing)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


# -- where to run ---------------------------------------------------------------------------------


def test_a_repo_folder_that_does_not_exist_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    assert refused(missing, "list") == (
        f"error: -C/--repo '{missing}' does not exist; give a folder inside the git repository"
    )
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "is not a folder" in refused(a_file, "list")
    for argv in (
        [BIN / "task", "-C", missing, "list"],
        [BIN / "task-manager-heartbeat", "--repo", missing],
        [BIN / "task", "serve", "--repo", missing],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr.startswith("error: ") and f"'{missing}' does not exist" in done.stderr


# -- task list filters ----------------------------------------------------------------------------


@pytest.mark.planning
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "bogus"], "--status 'bogus' is not one of not_started, ready, completed, cancelled"),
        (["--status", "ready", "--status", "bogus"], "--status 'bogus' is not one of"),
        (["--priority", "p9"], "--priority 'p9' is not one of p0, p1, p2, p3"),
        (["--owner", "alcie"], "owner 'alcie' is not one of the configured owners (alice, bob; aliases: al)"),
    ],
)
def test_list_refuses_a_filter_value_no_task_can_have(team: Path, args: list[str], message: str) -> None:
    assert message in refused(team, "list", *args)


@pytest.mark.planning
def test_an_unknown_owner_suggests_the_closest_configured_one(team: Path) -> None:
    assert "did you mean 'alice'?" in refused(team, "list", "--owner", "alcie")
    assert "did you mean" not in refused(team, "list", "--owner", "zzzz")
    assert ok(team, "list", "--owner", "al", "--json").count('"slug"') == 1  # an alias is an owner


# -- owners on the commands that pick work --------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--owner", "nobdy"],
        ["next", "--owner", "nobdy"],
        ["next", "--claim", "--owner", "nobdy"],
        ["heartbeat-cycle", "--no-dispatch", "--owner", "nobdy"],
        ["heartbeat-cycle", "--no-dispatch", "--owner", "alice", "--owner", "nobdy"],
        ["new", "Another", "--owner", "nobdy"],
    ],
)
def test_an_owner_that_is_neither_configured_nor_an_alias_is_refused(team: Path, args: list[str]) -> None:
    before = tree(team)
    message = refused(team, *args)
    assert "owner 'nobdy' is not one of the configured owners (alice, bob; aliases: al)" in message
    assert tree(team) == before  # no claim, no registry, no snapshot, no file


def test_the_cron_heartbeat_with_a_mistyped_owner_fails_loudly(team: Path) -> None:
    done = subprocess.run(
        [BIN / "task-manager-heartbeat", "--no-dispatch", "--owner", "alicee"],
        cwd=team,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert "error: owner 'alicee' is not one of the configured owners" in done.stderr
    assert "did you mean 'alice'?" in done.stderr


def test_known_owners_and_aliases_still_pick_their_tasks(team: Path) -> None:
    assert ok(team, "next", "--owner", "al").startswith("fix-it\t")
    assert ok(team, "next", "--owner", "bob") == ""
    assert '"fix-it"' in ok(team, "status", "--owner", "alice", "--json")


@pytest.mark.planning
def test_any_owner_name_is_fine_when_no_owners_are_configured(repo: Path) -> None:
    write_task(repo, "fix-it.md", TASK)
    commit_all(repo)
    assert ok(repo, "next", "--owner", "alice").startswith("fix-it\t")
    assert ok(repo, "next", "--owner", "someone-else") == ""
    assert "the owner is empty" in refused(repo, "next", "--owner", " ")


# -- task serve -----------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_serve_refuses_a_port_outside_0_to_65535(team: Path, port: str) -> None:
    message = refused(team, "serve", "--port", port)
    assert message == (
        f"error: port {port} is outside 0..65535; pick a free port such as 8005, or 0 for any free one"
    )


def test_serve_port_0_takes_any_free_port_and_says_which(team: Path) -> None:
    server = subprocess.Popen(
        [BIN / "task", "-C", team, "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert line.startswith(f"serving {team} at http://127.0.0.1:") and not line.startswith(
        f"serving {team} at http://127.0.0.1:0/"
    ), line


# -- the completion record's pr --------------------------------------------------------------------


@pytest.mark.planning
@pytest.mark.parametrize("pr", ["javascript:alert(1)", "notaurl", "", "ftp://host/x", "https://", "#", "a#1"])
def test_complete_refuses_a_pr_that_is_not_a_pull_request(team: Path, pr: str) -> None:
    before = tree(team)
    message = refused(team, "complete", "fix-it", "--pr", pr)
    assert message.startswith(f"error: pr {pr!r} is not a pull request; use its http(s) URL")
    assert tree(team) == before


@pytest.mark.planning
@pytest.mark.parametrize(
    "pr",
    ["https://github.com/org/repo/pull/12", "http://git.local/r/-/merge_requests/3", "#12", "org/repo#12"],
)
def test_complete_accepts_urls_and_references(team: Path, pr: str) -> None:
    ok(team, "complete", "fix-it", "--pr", pr)
    assert json.loads(ok(team, "show", "fix-it", "--json"))["pr"] == pr
    assert ok(team, "validate") == ""  # what complete writes, validate accepts


# -- task new -------------------------------------------------------------------------------------


@pytest.mark.planning
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", ""], "--label '' is empty; give each label a name"),
        (["--label", "web", "--label", "  "], "--label '  ' is empty"),
        (["--owner", ""], "the owner is empty"),
        (["--milestone", ""], "the milestone is empty"),
        (["--workstream", "a/b"], "workstream 'a/b' is not a folder name; use one name of letters, digits"),
        (["--workstream", "../up"], "workstream '../up' is not a folder name"),
    ],
)
def test_new_refuses_empty_names_and_nested_workstreams(team: Path, args: list[str], message: str) -> None:
    before = tree(team)
    assert message in refused(team, "new", "A task", *args)
    assert tree(team) == before


@pytest.mark.planning
def test_new_refuses_a_title_over_200_characters_and_takes_one_of_200(team: Path) -> None:
    before = tree(team)
    message = refused(team, "new", "x" * 10_000)
    assert message == (
        "error: title is 10000 characters, over the limit of 200; shorten it and put the detail in the body"
    )
    assert tree(team) == before
    path = ok(team, "new", "y" * 200).strip()
    assert json.loads(ok(team, "show", Path(path).stem, "--json"))["title"] == "y" * 200


# -- runtime commands -----------------------------------------------------------------------------


def test_park_needs_a_reason_that_says_something(team: Path) -> None:
    ok(team, "claim", "fix-it")
    for reason in ("", "   "):
        assert "--reason is empty; say why the task must wait" in refused(
            team, "park", "fix-it", "--reason", reason
        )
    assert '"parked"' in ok(team, "park", "fix-it", "--reason", "needs a decision", "--json")


@pytest.mark.parametrize("code", ["99999999999", "256", "-256", "2147483648"])
def test_exit_codes_outside_minus_255_to_255_are_refused(team: Path, code: str) -> None:
    ok(team, "claim", "fix-it")
    expected = f"error: --exit-code {code} is not an exit code; use 0..255 (0: success)"
    assert refused(team, "finish", "fix-it", "--lease", "1", "--exit-code", code).startswith(expected)
    assert refused(team, "evidence", "fix-it", "--command", "make", "--exit-code", code).startswith(expected)
    assert '"claimed"' in ok(team, "show", "fix-it", "--json")  # nothing recorded


@pytest.mark.parametrize("code", ["255", "-9"])
def test_exit_codes_of_real_processes_are_recorded(team: Path, code: str) -> None:
    ok(team, "claim", "fix-it")
    entry = json.loads(ok(team, "finish", "fix-it", "--lease", "1", "--exit-code", code, "--json"))
    assert (entry["state"], entry["exit_code"]) == ("failed", int(code))


# -- small things ---------------------------------------------------------------------------------


@pytest.mark.planning
def test_version_prints_the_package_version(repo: Path) -> None:
    assert ok(repo, "--version") == f"taskfiles {version('taskfiles')}\n"
    done = subprocess.run([BIN / "task", "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"taskfiles {version('taskfiles')}\n", "")


def test_log_confirms_on_stdout_like_every_other_command(team: Path) -> None:
    ok(team, "claim", "fix-it")
    result = runner.invoke(app, ["-C", str(team), "log", "fix-it", "cloning", "--lease", "1"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "fix-it: logged to attempt 1\n", "")


@pytest.mark.parametrize("pid", ["0", "-5", "4294967296", "99999999999"])
def test_start_refuses_a_pid_no_system_has(team: Path, pid: str) -> None:
    ok(team, "claim", "fix-it")
    result = runner.invoke(app, ["-C", str(team), "start", "fix-it", "--lease", "1", "--pid", pid])
    assert result.exit_code == 2 and f"'--pid': {pid} is not in the range 1<=x<=4294967295" in result.stderr
    assert json.loads(ok(team, "show", "fix-it", "--json"))["entry"]["state"] == "claimed"
