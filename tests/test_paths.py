"""Paths in output and JSON: relative to the repository, forward slashes, on every platform.

``str(path)`` is ``tasks\\core\\x.md`` on Windows, so output names a path through one
function, ``config.shown_path`` (``Config.relpath``). These machines run Linux, where
``str(path)`` already has forward slashes, so three kinds of test stand in for Windows:
``shown_path`` given ``PureWindowsPath`` values; a reading of the package's source that finds
a ``Path`` turned into text without it (an f-string, or ``str()`` where a message or JSON is
built); and the commands run from a subfolder, whose output must still name files from the
repository's root.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

import pytest

from taskfiles.config import shown_path

from .conftest import commit_all, write_task

pytestmark = pytest.mark.planning

PACKAGE = Path(__file__).resolve().parent.parent / "taskfiles"

# -- the one rendering ---------------------------------------------------------------------------

# (path, root, shown)
SHOWN: list[tuple[PurePath, PurePath, str]] = [
    (PureWindowsPath(r"C:\work\repo\tasks\core\x.md"), PureWindowsPath(r"C:\work\repo"), "tasks/core/x.md"),
    (PureWindowsPath(r"c:\WORK\Repo\tasks\x.md"), PureWindowsPath(r"C:\work\repo"), "tasks/x.md"),
    (PureWindowsPath(r"C:\work\repo"), PureWindowsPath(r"C:\work\repo"), "."),
    (
        PureWindowsPath(r"D:\registry\events.jsonl"),
        PureWindowsPath(r"C:\work\repo"),
        "D:/registry/events.jsonl",
    ),
    (
        PureWindowsPath(r"\\server\share\repo\tasks\a.md"),
        PureWindowsPath(r"\\server\share\repo"),
        "tasks/a.md",
    ),
    (
        PureWindowsPath(r"C:\work\repo-2\tasks\a.md"),
        PureWindowsPath(r"C:\work\repo"),
        "C:/work/repo-2/tasks/a.md",
    ),
    (PurePosixPath("/work/repo/tasks/core/x.md"), PurePosixPath("/work/repo"), "tasks/core/x.md"),
    (PurePosixPath("/var/registry"), PurePosixPath("/work/repo"), "/var/registry"),
]


@pytest.mark.parametrize(("path", "root", "shown"), SHOWN, ids=[str(s[0]) for s in SHOWN])
def test_a_path_is_shown_from_the_root_with_forward_slashes(
    path: PurePath, root: PurePath, shown: str
) -> None:
    assert shown_path(path, root) == shown


# -- the source: no Path becomes text another way ------------------------------------------------

# dispatch/ is the runtime, which runs on Linux and macOS only (on Windows it stops with one
# error), where str(path) is the forward-slash form.
NOT_CHECKED = ("dispatch",)
PATH_TYPES = {"Path", "PurePath", "Path | None", "None | Path", "Optional[Path]"}
PATH_METHODS = {"resolve", "absolute", "expanduser", "with_suffix", "with_name", "with_stem", "joinpath"}
OS_ERRORS = {"OSError", "IOError", "FileNotFoundError", "PermissionError", "IsADirectoryError"}
# Calls whose arguments become output: the CLI's printers, MCP's error, a validation problem.
OUTPUT_CALLS = {"echo", "warn", "secho", "emit_json", "_error", "Problem", "_fatal"}


def _is_path_type(annotation: ast.expr | None) -> bool:
    return annotation is not None and ast.unparse(annotation).strip("'\"") in PATH_TYPES


class PathNames:
    """Which expressions are Paths, read from the annotations in the package: attributes and
    functions declared Path (and never anything else), parameters annotated Path, and locals
    made from those (``/``, ``.parent``, ``.resolve()``, ``Path(...)``)."""

    def __init__(self, trees: list[ast.Module]) -> None:
        self.attributes = self._declared(trees, attributes=True)
        self.functions = self._declared(trees, attributes=False)

    @staticmethod
    def _declared(trees: list[ast.Module], *, attributes: bool) -> set[str]:
        paths: set[str] = set()
        others: set[str] = set()
        for node in (n for tree in trees for n in ast.walk(tree)):
            if attributes and isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                        (paths if _is_path_type(stmt.annotation) else others).add(stmt.target.id)
            if isinstance(node, ast.FunctionDef) and node.returns is not None:
                is_property = any(
                    ast.unparse(d) in ("property", "cached_property") for d in node.decorator_list
                )
                if is_property == attributes:
                    (paths if _is_path_type(node.returns) else others).add(node.name)
        return paths - others

    def is_path(self, node: ast.expr, local: set[str]) -> bool:
        """Whether ``node`` is a Path, as far as the annotations tell."""
        match node:
            case ast.Name(id=name):
                return name in local
            case ast.Attribute(value=value, attr="parent"):
                return self.is_path(value, local)
            case ast.Attribute(attr=attr):
                return attr in self.attributes
            case ast.BinOp(left=left, op=ast.Div()):
                return self.is_path(left, local)
            case ast.Call(func=ast.Name(id=name)):
                return name == "Path" or name in self.functions
            case ast.Call(func=ast.Attribute(value=value, attr=attr)):
                return attr in self.functions or (attr in PATH_METHODS and self.is_path(value, local))
            case ast.IfExp(body=body, orelse=orelse):
                return self.is_path(body, local) or self.is_path(orelse, local)
        return False

    def locals_of(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
        args = function.args
        local = {
            a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if _is_path_type(a.annotation)
        }
        for _ in range(2):  # a local made from a local assigned later in the text
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and self.is_path(node.value, local):
                    local.update(t.id for t in node.targets if isinstance(t, ast.Name))
                elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and isinstance(node.target, ast.Name):
                    value = node.value
                    typed = isinstance(node, ast.AnnAssign) and _is_path_type(node.annotation)
                    if typed or (value is not None and self.is_path(value, local)):
                        local.add(node.target.id)
        return local


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _in_output(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` ends up in a message or a JSON document: inside a raise, a dict's
    value, or an argument of a call that prints."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Raise) or (isinstance(parent, ast.Dict) and child in parent.values):
            return True
        if isinstance(parent, ast.Call) and child in parent.args and _called(parent) in OUTPUT_CALLS:
            return True
        if isinstance(parent, ast.stmt):
            return False
        child, parent = parent, parents.get(parent)
    return False


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _whole_text(node: ast.AST) -> ast.expr | None:
    """What ``node`` turns into text whole: an f-string's value, ``str()``'s argument."""
    if isinstance(node, ast.FormattedValue):
        return node.value
    if isinstance(node, ast.Call) and _called(node) in ("str", "repr") and len(node.args) == 1:
        return node.args[0]
    return None


def _catches_os_errors(handler: ast.ExceptHandler) -> bool:
    caught = {n.id for n in ast.walk(handler.type) if isinstance(n, ast.Name)} if handler.type else set()
    return bool(caught & OS_ERRORS)


def paths_made_text(trees: dict[str, ast.Module]) -> list[str]:
    """``module:line: how`` for each place a Path, or an OSError's whole text (which repeats its
    file's path as the platform writes it), becomes text without ``shown_path``/``as_posix``."""
    return list(dict.fromkeys(_made_text(trees)))  # a nested function is walked twice


def _made_text(trees: dict[str, ast.Module]) -> Iterator[str]:
    names = PathNames(list(trees.values()))
    for module, tree in trees.items():
        parents = _parents(tree)
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
            local = names.locals_of(function)
            for node in (n for n in ast.walk(function) if isinstance(n, ast.expr)):
                value = _whole_text(node)
                if value is None or not names.is_path(value, local):
                    continue
                if isinstance(node, ast.FormattedValue):
                    yield f"{module}:{node.lineno}: f-string of {ast.unparse(value)}"
                elif _in_output(node, parents):
                    yield f"{module}:{node.lineno}: {ast.unparse(node)} in output"
        for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)):
            if handler.name is None or not _catches_os_errors(handler):
                continue
            for node in (n for stmt in handler.body for n in ast.walk(stmt) if isinstance(n, ast.expr)):
                value = _whole_text(node)
                if isinstance(value, ast.Name) and value.id == handler.name:
                    yield f"{module}:{node.lineno}: the whole text of OSError {value.id} (errors.reason)"


def package_trees() -> dict[str, ast.Module]:
    return {
        path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in NOT_CHECKED
    }


def test_no_path_becomes_text_but_through_shown_path() -> None:
    found = paths_made_text(package_trees())
    assert not found, "render these with Config.relpath (config.shown_path) or as_posix():\n" + "\n".join(
        found
    )


# (source, what the check finds)
CAUGHT: list[tuple[str, list[str]]] = [
    ("def f(p: Path) -> str:\n    return f'{p}'\n", ["m.py:2: f-string of p"]),
    (
        "def f(cfg: Config) -> None:\n    raise E(f'x {cfg.root / \"a\"}')\n",
        ["m.py:2: f-string of cfg.root / 'a'"],
    ),
    (
        "def f(p: Path) -> dict:\n    q = p.parent\n    return {'file': str(q)}\n",
        ["m.py:3: str(q) in output"],
    ),
    ("def f(p: Path) -> None:\n    echo(repr(p.resolve()))\n", ["m.py:2: repr(p.resolve()) in output"]),
    (
        "def f() -> None:\n    try:\n        g()\n    except OSError as exc:\n        raise E(f'{exc}')\n",
        ["m.py:5: the whole text of OSError exc (errors.reason)"],
    ),
    ("def f(p: Path) -> None:\n    os.open(str(p), 0)\n    g(f'{p.as_posix()}', p.name)\n", []),
    ("def f(p: str) -> str:\n    return f'{p}'\n", []),
]


@pytest.mark.parametrize(("source", "expected"), CAUGHT, ids=[str(i) for i in range(len(CAUGHT))])
def test_the_source_check_finds_a_path_made_text(source: str, expected: list[str]) -> None:
    classes = "class Config:\n    root: Path\n"
    assert list(paths_made_text({"m.py": ast.parse(source), "c.py": ast.parse(classes)})) == expected


# -- the commands -------------------------------------------------------------------------------

ALPHA = "---\ntitle: Alpha\nstatus: ready\npriority: p1\n---\n"
BETA = "---\ntitle: Beta\nstatus: not_started\ndepends_on: [alpha]\n---\n"
BAD = "---\ntitle: Bad\nstatus: done\n---\n"


@pytest.fixture
def nested(repo: Path) -> Path:
    """alpha in tasks/core/, beta in tasks/core/api/ (two folders deep), committed."""
    write_task(repo, "core/alpha.md", ALPHA)
    write_task(repo, "core/api/beta.md", BETA)
    commit_all(repo)
    return repo


def task(cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """The ``task`` CLI in a real process, run in ``cwd`` (a subfolder of the repository)."""
    done = subprocess.run(
        [sys.executable, "-m", "taskfiles", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == code, f"exit {done.returncode}: {done.stdout}{done.stderr}"
    return done


def test_commands_run_in_a_subfolder_name_files_from_the_root(nested: Path) -> None:
    inside = nested / "tasks" / "core" / "api"
    listed = json.loads(task(inside, "list", "--json").stdout)
    assert [t["path"] for t in listed] == ["tasks/core/alpha.md", "tasks/core/api/beta.md"]
    assert [t["workstream"] for t in listed] == ["core", "core/api"]
    assert json.loads(task(inside, "show", "beta", "--json").stdout)["path"] == "tasks/core/api/beta.md"
    assert json.loads(task(inside, "next", "--json").stdout)["path"] == "tasks/core/alpha.md"
    (inside / "bad.md").write_text(BAD, encoding="utf-8")
    report = json.loads(task(inside, "validate", "bad.md", "--json", code=1).stdout)
    assert [(p["path"], p["line"]) for p in report["problems"]] == [("tasks/core/api/bad.md", 3)]
    github = task(inside, "validate", "bad.md", "--format", "github", code=1).stdout
    assert github.startswith("::error file=tasks/core/api/bad.md,line=3")
    missing = task(inside, "validate", "okk.md", code=2).stderr
    assert "error: no such file: tasks/core/api/okk.md;" in missing
    assert task(inside, "new", "Gamma", "--workstream", "web").stdout == "tasks/web/gamma.md\n"
    assert task(inside, "ready", "beta").stdout == "tasks/core/api/beta.md: status: ready\n"
    changed = json.loads(task(inside, "set", "alpha", "beta", "priority=p0", "--json").stdout)["changed"]
    assert [c["path"] for c in changed] == ["tasks/core/alpha.md", "tasks/core/api/beta.md"]
    assert task(inside, "complete", "beta").stdout == "tasks/core/api/beta.md: completed\n"


def test_a_settings_error_names_the_file_from_the_root(nested: Path) -> None:
    (nested / "taskfiles.toml").write_text("owners = [\n", encoding="utf-8")
    stderr = task(nested / "tasks" / "core", "list", code=2).stderr
    assert stderr.startswith("error: taskfiles.toml: invalid TOML"), stderr
