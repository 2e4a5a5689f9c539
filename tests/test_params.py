"""The command layer (cli/params.py): typed signatures read as click reads command lines."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import click
from click.testing import CliRunner

from taskfiles.cli.params import App, Argument, Option, parameters

from .conftest import write_task

runner = CliRunner()
seen: dict[str, object] = {}


def probe(
    ctx: click.Context,
    slug: Annotated[str, Argument(help="The task's slug.")],
    rest: Annotated[list[str] | None, Argument(help="Anything after it.")] = None,
    label: Annotated[list[str] | None, Option(help="Repeatable.")] = None,
    count: Annotated[int, Option(min=1, help="At least one.")] = 3,
    where: Annotated[Path | None, Option("--where", "-w", help="A folder.")] = None,
    force: Annotated[bool, Option(help="An undeclared flag gets --force/--no-force.")] = False,
    as_json: Annotated[bool, Option("--json", help="JSON.")] = False,
    lease: Annotated[int | None, Option(envvar="PROBE_LEASE", help="From the environment too.")] = None,
) -> None:
    """Record what it was given."""
    seen.clear()
    seen.update(slug=slug, rest=rest, label=label, count=count, where=where, force=force, as_json=as_json)
    seen.update(lease=lease, context=ctx.info_name)


def needs(must: Annotated[str, Option(help="A required option.")]) -> None:
    """Needs --must."""


def group() -> click.Group:
    app = App("Probe commands.")
    app.command()(probe)
    app.command("needs-it", hidden=True)(needs)
    sub = App("A group.")
    sub.command("inner")(needs)
    app.add_group(sub, "sub")
    return app.group("probe")


def test_values_arrive_converted_and_the_context_is_passed() -> None:
    result = runner.invoke(group(), ["probe", "a", "b", "c", "--label", "x", "--label", "y", "--where", "."])
    assert result.exit_code == 0, result.output
    assert seen == {
        "slug": "a",
        "rest": ["b", "c"],
        "label": ["x", "y"],
        "count": 3,
        "where": Path("."),
        "force": False,
        "as_json": False,
        "lease": None,
        "context": "probe",
    }
    result = runner.invoke(
        group(), ["probe", "a", "--force", "--json", "--count", "2"], env={"PROBE_LEASE": "7"}
    )
    assert result.exit_code == 0, result.output
    assert (seen["rest"], seen["label"], seen["force"], seen["as_json"]) == (None, None, True, True)
    assert (seen["count"], seen["lease"]) == (2, 7)


def test_bad_values_are_usage_errors_naming_the_parameter() -> None:
    result = runner.invoke(group(), ["probe"])
    assert result.exit_code == 2 and "Missing argument 'SLUG'" in result.output
    result = runner.invoke(group(), ["probe", "a", "--count", "0"])
    assert result.exit_code == 2 and "'--count': 0 is not in the range x>=1" in result.output
    result = runner.invoke(group(), ["needs-it"])
    assert result.exit_code == 2 and "Missing option '--must'" in result.output
    result = runner.invoke(group(), ["sub", "inner"])
    assert result.exit_code == 2 and "Missing option '--must'" in result.output


def test_help_lists_arguments_options_and_commands_as_declared() -> None:
    text = runner.invoke(group(), ["probe", "--help"]).output
    assert "Usage: probe probe [OPTIONS] SLUG [REST]..." in text
    arguments = text[text.index("Arguments:") : text.index("Options:")]
    assert "SLUG       The task's slug.  [required]" in arguments
    assert "[REST]...  Anything after it." in arguments
    options = " ".join(text[text.index("Options:") :].split())  # as one line: wrapping aside
    assert "--count INTEGER RANGE At least one." in options and "[default: 3; x>=1]" in options
    assert "--force / --no-force" in options and "[default: no-force]" in options
    assert "-w, --where PATH" in options and "[env var: PROBE_LEASE]" in options
    assert "-h, --help" in options
    listing = runner.invoke(group(), ["--help"]).output
    assert listing.index("probe ") < listing.index("sub ") and "needs-it" not in listing


def test_ctrl_c_ends_a_command_with_130_and_no_traceback(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    task = Path(sys.executable).parent / "task"
    subprocess.run([task, "claim", "a"], cwd=repo, check=True, capture_output=True)
    follow = subprocess.Popen(
        [task, "events", "a", "--follow", "--since", "2000-01-01T00:00:00Z"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None and "task.claimed" in follow.stdout.readline()  # it is following now
    follow.send_signal(signal.SIGINT)
    _, err = follow.communicate(timeout=60)
    assert follow.returncode == 130 and "Traceback" not in err and "Aborted" not in err, err


def run_task(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    task = Path(sys.executable).parent / "task"
    return subprocess.run([task, *args], cwd=repo, capture_output=True, env=env, check=False)


def test_a_completion_variable_in_the_environment_changes_nothing(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\n---\n")
    for instruction in ("bash_source", "bash_complete", "zsh_source", "bogus"):
        env = {**os.environ, "_TASK_COMPLETE": instruction, "COMP_WORDS": "task li", "COMP_CWORD": "1"}
        done = run_task(repo, "list", "--json", env=env)
        assert done.returncode == 0 and json.loads(done.stdout)[0]["slug"] == "a", done.stderr


def test_values_a_command_cannot_use_are_usage_errors_not_crashes(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    cases = {
        ("-C", "", "list"): "-C/--repo '' is empty; give a folder",
        ("heartbeat-cycle", "--loop", "nan", "--dry-run"): "'--loop': nan is not a finite number",
        ("heartbeat-cycle", "--loop", "inf", "--dry-run"): "'--loop': inf is not a finite number",
        ("registry", "migrate", "--url", "sqlite://x"): "--url must be a postgresql:// URL, not 'sqlite://x'",
    }
    for argv, message in cases.items():
        done = run_task(repo, *argv)
        assert done.returncode == 2 and message in done.stderr.decode(), (argv, done.stderr)
    note = subprocess.run(
        [Path(sys.executable).parent / "task", "note", "a", b"\xff\xfe"], cwd=repo, capture_output=True
    )
    assert note.returncode == 2 and b"'TEXT': b'\\xff\\xfe' is not UTF-8 text" in note.stderr, note.stderr


def test_an_output_with_no_room_left_is_one_error_line(repo: Path, tmp_path: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\n---\n")
    full = Path("/dev/full")
    limit = None if full.exists() else 0  # macOS has no /dev/full: a file-size limit fails the write

    def limited() -> None:
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    with open(full if limit is None else tmp_path / "out", "wb") as out:
        done = subprocess.run(
            [Path(sys.executable).parent / "task", "list", "--json"],
            cwd=repo,
            stdout=out,
            stderr=subprocess.PIPE,
            preexec_fn=limited,
        )
    why = "No space left on device" if limit is None else "File too large"
    assert (done.returncode, done.stderr) == (1, f"error: cannot write the output: {why}\n".encode())


def test_a_signature_it_cannot_read_is_named() -> None:
    def two_types(value: Annotated[int | str, Option(help="Either.")] = 1) -> None:
        """Two types."""

    def not_a_marker(value: Annotated[str, "a note"] = "") -> None:
        """A bare annotation."""

    for function, words in (
        (two_types, "two_types(value): no command-line type"),
        (not_a_marker, "not_a_marker(value): annotate it"),
    ):
        try:
            parameters(function)
        except TypeError as error:
            assert words in str(error)
        else:
            raise AssertionError(f"{function.__name__} was read")


RUN = """
import atexit, os, sys, threading, time
from pathlib import Path
import click
from taskfiles.cli.app import run
out = Path(os.environ["OUT"])

@click.command()
@click.option("--code", type=int, default=0)
@click.option("--thread", is_flag=True)
def probe(code: int, thread: bool) -> None:
    atexit.register(lambda: (out / "atexit").write_text("ran"))
    if thread:  # a thread still working when the command returns is waited for
        threading.Thread(target=lambda: (time.sleep(0.2), (out / "thread").write_text("done"))).start()
    click.echo("x" * 200_000)
    sys.exit(code)

run(probe, "probe")
"""


def test_run_ends_the_process_with_the_code_output_and_atexit_whole(tmp_path: Path) -> None:
    for args, code in (([], 0), (["--code", "3"], 3), (["--thread"], 0)):
        done = subprocess.run(
            [sys.executable, "-c", RUN, *args],
            env={**os.environ, "OUT": str(tmp_path)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == code and done.stdout == "x" * 200_000 + "\n" and done.stderr == ""
        assert (tmp_path / "atexit").read_text() == "ran"
        (tmp_path / "atexit").unlink()
    assert (tmp_path / "thread").read_text() == "done"


def test_a_reader_that_stops_early_gets_no_traceback(repo: Path) -> None:
    for n in range(300):
        write_task(repo, f"t{n}.md", f"---\ntitle: Task {n}\n---\n")
    task = Path(sys.executable).parent / "task"
    listing = subprocess.Popen(
        [task, "list", "--json"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert listing.stdout is not None and listing.stderr is not None
    listing.stdout.read(10)
    listing.stdout.close()  # as `task list --json | head -c 10` does
    assert listing.wait(timeout=60) in (0, 1) and b"Traceback" not in listing.stderr.read()
    whole = subprocess.run([task, "list", "--json"], cwd=repo, capture_output=True, check=True)
    assert len(json.loads(whole.stdout)) == 300


def test_a_json_array_written_in_chunks_is_the_bytes_of_the_whole() -> None:
    import orjson

    for count in (0, 1, 6, 7, 8, 20):
        items = [{"n": n, "text": "é" * n} for n in range(count)]
        probe = f"from taskfiles.cli.app import emit_json_array; emit_json_array(iter({items!r}), chunk=7)"
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True)
        assert done.stdout == orjson.dumps(items) + b"\n", count
