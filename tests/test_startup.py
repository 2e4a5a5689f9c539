"""What a command line imports: only the module of the command it names (cli.COMMANDS)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from taskfiles import cli
from taskfiles.cli import COMMANDS
from taskfiles.cli.params import App

from .conftest import write_task


@pytest.mark.parametrize("module", COMMANDS)
def test_the_table_names_what_each_module_registers_in_order(module: str) -> None:
    scratch = App()
    importlib.import_module(f"taskfiles.cli.{module}").register(scratch)
    built = scratch.group()  # the names click gets, commands then groups
    assert list(built.commands) == list(COMMANDS[module])


def test_every_command_module_has_a_line_and_every_name_one_module() -> None:
    modules = [
        info.name
        for info in pkgutil.iter_modules(cli.__path__)
        if hasattr(importlib.import_module(f"taskfiles.cli.{info.name}"), "register")
    ]
    assert sorted(modules) == sorted(COMMANDS), (
        "add the module's line to COMMANDS in taskfiles/cli/__init__.py"
    )
    names = [name for names in COMMANDS.values() for name in names]
    assert len(names) == len(set(names))


PROBE = """
import sys
from taskfiles.cli import app  # click's main: SystemExit, then what follows
sys.argv = ["task", *{argv!r}]
try:
    app.main(prog_name='task')
except SystemExit as end:
    code = end.code
loaded = sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("taskfiles.cli."))
config = vars(sys.modules["taskfiles.config"]) if "taskfiles.config" in sys.modules else dict()
settings = "taskfiles.settings" in sys.modules or "WorkerSettings" in config
print(__import__("json").dumps([code, loaded, settings, sorted(sys.modules)]), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("argv", "modules"),
    [
        (["list", "--json"], ["planning"]),
        (["note", "a", "noted"], ["runtime"]),
        (["merge-driver", "status", "--help"], ["mergedriver"]),
        (["registry", "repair", "--help"], ["runtime"]),
        (["--help"], sorted(COMMANDS)),
        (["lst"], sorted(COMMANDS)),  # an unknown name is compared with every command
    ],
)
def test_a_command_line_imports_only_the_module_of_its_command(
    repo: Path, argv: list[str], modules: list[str]
) -> None:
    write_task(repo, "a.md", "---\ntitle: A\n---\n")
    probe = PROBE.format(argv=["-C", str(repo), *argv])
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    code, loaded, settings, _ = json.loads(done.stderr.splitlines()[-1])
    assert sorted(set(loaded) & set(COMMANDS)) == modules
    if argv[0] in ("list", "note"):  # they read no [worker], [heartbeat], [logs] or [limits]
        assert not settings, "config.py built the settings sections (settings.py) unasked"
    if argv == ["lst"]:
        assert code == 2 and "No such command 'lst'. (Did you mean one of: 'list', 'set'?)" in done.stderr
        assert done.stderr.count("Did you mean") == 1, done.stderr  # once
    else:
        assert code in (0, None), done.stderr


# The heartbeat's cycle record and a whole registry's dump (registry copy) are read and
# written by other commands only.
NOT_FOR_ANY_ENTRY = {f"taskfiles.registry.{name}" for name in ("cyclerecord", "dump", "copy")}
NOT_FOR_A_NOTE = (
    {"socket", "secrets", "hashlib", "taskfiles.plan"}
    | NOT_FOR_ANY_ENTRY
    | {f"taskfiles.registry.{name}" for name in ("rollup", "repair", "runlog")}
)
NOT_FOR_A_LIST = {
    "taskfiles.status",
    "taskfiles.state",
    "taskfiles.settings",
    "socket",
    "secrets",
} | NOT_FOR_ANY_ENTRY


@pytest.mark.parametrize(
    ("argv", "unneeded"),
    [(["note", "a", "noted"], NOT_FOR_A_NOTE), (["list", "--json"], NOT_FOR_A_LIST)],
)
def test_the_most_run_commands_on_a_claimed_task_import_only_what_they_run(
    repo: Path, argv: list[str], unneeded: set[str]
) -> None:
    """An agent's note reads no task file when its task has an entry (the plan is not
    imported); a listing shows each entry's runtime view without the heartbeat's
    classification or its settings; neither imports a module only other commands use."""
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\n---\n")
    claim = [sys.executable, "-m", "taskfiles", "-C", str(repo), "claim", "a"]
    subprocess.run(claim, check=True, capture_output=True)
    probe = PROBE.format(argv=["-C", str(repo), *argv])
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    code, _, _, modules = json.loads(done.stderr.splitlines()[-1])
    assert code in (0, None), done.stderr
    assert unneeded.isdisjoint(modules), sorted(unneeded & set(modules))
