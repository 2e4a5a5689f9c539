"""make mutate: mutation testing of the core modules with mutmut, one module at a time.

    python tools/mutate.py                          # every module in [tool.mutmut] only_mutate
    python tools/mutate.py taskfiles/state.py       # one module (or several, one after another)
    python tools/mutate.py taskfiles/state.py --tests "tests/test_state.py -k 'not postgres'"
    python tools/mutate.py taskfiles/state.py --mutants 'taskfiles.state.x__age*'  # some mutants

Each module runs in its own folder, ``.mutate/<module>/`` (e.g. ``.mutate/taskfiles.state/``):
a copy of the package, the tests and what they read, where mutmut makes its ``mutants/`` and
mutates that module alone. Runs for two modules never share a file, so two can run at once;
a second run of the same module waits for the first (a lock beside the folder).

Many tests run the ``task`` CLI in a subprocess. Every process of a run gets
``mutants/`` first on PYTHONPATH, so a child imports the mutated package and follows
MUTANT_UNDER_TEST like the tests' own process; ``tools/mutate_site`` (also on PYTHONPATH) makes
the functions a child reaches count for the test that started it, so mutmut runs that test on
their mutants (mutmut alone records its own process's calls only).

Each module may have a file ``tools/mutation/<module>.toml`` (e.g.
``tools/mutation/taskfiles.state.toml``): ``tests``, the pytest arguments that choose the tests
run on its mutants (default: [tool.mutmut]'s, the whole suite, hours for a module), and its
equivalent mutants (no test can tell them from the code), each an ``[[equivalent]]`` table with
``function`` (mutmut's name up to ``__mutmut_N``), ``diff`` (the diff's ``-``/``+`` lines) and a
one-line ``reason``. They are matched by function and diff, not by number: mutmut renumbers a
function's mutants when it changes.

The report (``.mutate/<module>/report.md``, also printed) gives the score, killed / all
mutants and killed / all but the equivalent ones, the run's minutes, and every mutant not
killed with its diff.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "tools" / "mutate_site"
SETTINGS = ROOT / "tools" / "mutation"
HOME = ROOT / ".mutate"
# What the tests need besides the package: copied into the run's folder as they are now.
COPIED = ("taskfiles", "tests", "bench", "examples", "README.md", "SKILL.md", "Makefile", "pyproject.toml")
# mutmut's exit codes: a mutant that failed a test, hung one (timeout) or crashed is caught.
CAUGHT = {"killed", "timeout", "segfault", "caught by type check"}
HITS_ENV = "TASKFILES_MUTATE_HITS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("modules", nargs="*", help="paths like taskfiles/state.py (default: every core module)")
    add("--max-children", type=int, default=1, help="mutants run at once (default 1)")
    add(
        "--tests",
        type=shlex.split,
        help="pytest arguments choosing the tests, as one string (default: the module's)",
    )
    add("--mutants", nargs="+", help="mutmut names or globs to run (default: all of the module's)")
    args = parser.parse_args(argv)
    config = _config(ROOT / "pyproject.toml")
    modules = args.modules or config["only_mutate"]
    unknown = [m for m in modules if m not in config["only_mutate"]]
    if unknown:
        known = ", ".join(config["only_mutate"])
        parser.error(f"not a core module: {', '.join(unknown)}; choose from {known}")
    for module in modules:
        print(run(module, max_children=args.max_children, tests=args.tests, mutants=args.mutants))
    return 0


def run(
    module: str, *, max_children: int = 1, tests: list[str] | None = None, mutants: list[str] | None = None
) -> str:
    """Mutate ``module`` in its own folder under .mutate/ and return the report (also written
    to the folder's report.md)."""
    name = module.removesuffix(".py").replace("/", ".")
    work = HOME / name
    settings = _settings(name)
    with _lock(HOME / f"{name}.lock"):
        _prepare(work, module, tests or settings.get("tests"))
        started = time.monotonic()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SITE), str(work / "mutants")]),
            HITS_ENV: str(work / "hits.txt"),
        }
        mutmut = Path(sys.executable).with_name("mutmut")
        command = [str(mutmut), "run", "--max-children", str(max_children), *(mutants or [f"{name}.*"])]
        with open(work / "mutmut.log", "w", encoding="utf-8") as log:
            done = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=log, check=False)
        minutes = (time.monotonic() - started) / 60
        if done.returncode != 0:
            tail = (work / "mutmut.log").read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(f"mutmut failed on {module} (exit {done.returncode}); {log.name} ends:\n{tail}")
        report = _report(module, _results(work), settings.get("equivalent", []), minutes)
    (work / "report.md").write_text(report, encoding="utf-8")
    return report


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _prepare(work: Path, module: str, tests: list[str] | None) -> None:
    """A fresh folder with the sources copied and pyproject's [tool.mutmut] narrowed to ``module``."""
    shutil.rmtree(work, ignore_errors=True)
    # Made now, before mutmut starts: Python remembers a PYTHONPATH entry that did not exist
    # at its first import as one with nothing in it, and may not look in it again.
    (work / "mutants").mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "results")  # bench/results: not needed
    for item in COPIED:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, work / item, ignore=skip)
        else:
            shutil.copy(source, work / item)
    text = (work / "pyproject.toml").read_text(encoding="utf-8")
    settings = _config(work / "pyproject.toml")
    settings["only_mutate"] = [module]
    if tests:
        settings["pytest_add_cli_args_test_selection"] = tests
    settings["pytest_add_cli_args"] = [*settings.get("pytest_add_cli_args", []), "-p", "mutate_hits"]
    (work / "pyproject.toml").write_text(_replace_table(text, "tool.mutmut", settings), encoding="utf-8")


def _config(pyproject: Path) -> dict[str, Any]:
    settings: dict[str, Any] = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["mutmut"]
    return settings


def _replace_table(text: str, table: str, values: dict[str, Any]) -> str:
    """``text`` with TOML table ``[table]`` replaced by ``values`` (strings, numbers, booleans and
    lists of them: JSON spells those as TOML does)."""
    start = text.index(f"[{table}]\n")
    rest = re.search(r"^\[", text[start + 1 :], re.MULTILINE)
    end = start + 1 + rest.start() if rest else len(text)
    body = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    return f"{text[:start]}[{table}]\n{body}\n{text[end:]}"


def _results(work: Path) -> list[dict[str, str]]:
    """Each mutant's name, status and diff, read by mutmut itself in ``work``."""
    code = (
        "import json, sys\n"
        "from mutmut.__main__ import walk_mutatable_files, SourceFileMutationData, status_by_exit_code\n"
        "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
        "rows = []\n"
        "for path in walk_mutatable_files():\n"
        "    data = SourceFileMutationData(path=path)\n"
        "    data.load()\n"
        "    for name, code in data.exit_code_by_key.items():\n"
        "        status = status_by_exit_code[code]\n"
        "        diff = '' if status == 'killed' else get_diff_for_mutant(name, path=path)\n"
        "        rows.append({'name': name, 'status': status, 'diff': diff})\n"
        "json.dump(rows, sys.stdout)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, check=True)
    rows: list[dict[str, str]] = json.loads(done.stdout)
    return rows


def _changed_lines(diff: str) -> str:
    """The ``-``/``+`` lines of a diff, stripped: what identifies a mutant across renumbering."""
    changed = [
        line[0] + line[1:].strip()
        for line in diff.splitlines()
        if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))
    ]
    return "\n".join(changed)


def _function(mutant: str) -> str:
    return mutant.partition("__mutmut_")[0]


def _settings(name: str) -> dict[str, Any]:
    """tools/mutation/<name>.toml: the module's tests and equivalent mutants (none without it)."""
    path = SETTINGS / f"{name}.toml"
    if not path.exists():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _report(
    module: str, rows: list[dict[str, str]], equivalents: list[dict[str, str]], minutes: float
) -> str:
    """The score line (a README table row) and each mutant not caught, with its diff."""
    known = {(e["function"], _changed_lines(e["diff"])): e["reason"] for e in equivalents}
    rows = [r for r in rows if r["status"] != "not checked"]  # --mutants ran only some
    caught = [r for r in rows if r["status"] in CAUGHT]
    left = [r for r in rows if r["status"] not in CAUGHT]
    reasons = {r["name"]: known.get((_function(r["name"]), _changed_lines(r["diff"]))) for r in left}
    equivalent = [r for r in left if reasons[r["name"]]]
    total, killed = len(rows), len(caught)
    real = total - len(equivalent)
    lines = [
        f"# {module}",
        "",
        "| module | mutants | killed | equivalent | killed / all | killed / non-equivalent | run |",
        "|---|---|---|---|---|---|---|",
        f"| `{module}` | {total} | {killed} | {len(equivalent)} | {_share(killed, total)} "
        f"| {_share(killed, real)} | {minutes:.0f} min |",
        "",
    ]
    for row in left:
        reason = reasons[row["name"]]
        label = f"equivalent: {reason}" if reason else row["status"]
        lines += [f"## {row['name']} ({label})", "", "```diff", row["diff"].strip(), "```", ""]
    return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "0/0"


if __name__ == "__main__":
    raise SystemExit(main())
