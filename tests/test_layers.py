"""The house plan, enforced: every import of the package read with ``ast`` (those inside
functions too), checked against the layer rules README's module map states."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "taskfiles"
FLOOR = {"errors", "config", "settings", "git", "atomic", "slugs", "folders", "process", "portable"}
# room -> the rooms it may import besides itself; a room is a package, a top-level module, or
# "floor" (the low floor's modules, which import only each other)
MAY_IMPORT = {
    "floor": set(),
    "plan": {"floor"},
    "registry": {"floor"},
    "state": {"floor", "plan", "registry"},
    "status": {"floor", "plan", "registry", "state"},
    "claims": {"floor", "plan", "registry", "state", "status"},
    "migration": {"floor", "plan", "registry", "state"},
    "facts": {"floor", "plan", "registry"},
    "history": {"floor", "plan", "registry"},
    "dispatch": {"floor", "plan", "registry", "state", "status"},
    "metrics": {"floor", "plan", "registry", "state"},
    "changes": {"floor", "plan", "state"},
    "serve": {"floor", "plan", "registry", "state", "status", "metrics", "history"},
    "mcp": {
        "floor",
        "plan",
        "registry",
        "state",
        "status",
        "claims",
        "dispatch",
        "serve",
        "facts",
        "history",
    },
    "cli": {
        *("floor", "plan", "registry", "state", "status", "claims", "migration", "dispatch", "serve"),
        *("metrics", "facts", "history", "mcp", "changes"),
    },
    "__init__": {"floor", "plan", "registry", "state", "status"},  # the public API (loaded lazily)
    "__main__": {"cli"},
}


def modules() -> Iterator[tuple[str, Path]]:
    """Every module by its import name (a package by its own name, not ``pkg.__init__``)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(("taskfiles", *parts)), path


def room(module: str) -> str:
    """``taskfiles.plan.source`` -> ``plan``; a low-floor module -> ``floor``."""
    name = module.split(".")[1] if module.count(".") else "__init__"  # "taskfiles": the API
    return "floor" if name in FLOOR else name


def imports(module: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every taskfiles import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    top = {id(node) for node in tree.body} | {
        id(inner) for node in tree.body if isinstance(node, ast.If) for inner in node.body
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                if target.startswith("taskfiles."):
                    yield target, node.lineno, id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("taskfiles."):
                    yield alias.name, node.lineno, id(node) in top


def third_party(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=lambda v: str(v).rsplit("/", 1)[-1])
def test_imports_point_down_the_layers(module: str, path: Path) -> None:
    mine = room(module)
    allowed = MAY_IMPORT[mine] | {mine}
    wrong = [
        f"line {line}: {target}" for target, line, _ in imports(module, path) if room(target) not in allowed
    ]
    assert not wrong, f"{module} ({mine}) may import only {sorted(allowed)}; it imports {wrong}"


def test_only_cli_imports_click() -> None:
    found = [m for m, path in modules() if room(m) != "cli" and third_party(path) & {"click"}]
    assert found == []


def test_no_import_circles_at_module_level() -> None:
    """Module-level imports form no cycle (a cycle makes import order matter and hides layers)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        graph[module] = {target for target, _, top in imports(module, path) if top}
    names = set(graph)
    for module in graph:  # ``from pkg import sub``: resolve to the submodule when it is one
        graph[module] = {t if t in names else t.rsplit(".", 1)[0] for t in graph[module]} & names
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt == node or _is_package_init(nxt, node):
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            raise AssertionError("import circle: " + " -> ".join(cycle))


def _is_package_init(target: str, importer: str) -> bool:
    """A module importing its own package's ``__init__`` (which re-exports it) is no circle."""
    return importer.startswith(target + ".")
