"""Every YAML input parses into JSON-shaped data or is that file's ``path:line: message``,
in bounded time and memory (plan/yamlsafe.py): the inputs that crashed commands, run
through the parser and the real CLI, heartbeat and page; the bounds; the libyaml rule;
the parse cache; and a fuzz test over mutated task files."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskfiles import config as tconfig
from taskfiles import state
from taskfiles.plan import cache, frontmatter, source, taskfile, validate, yamlsafe
from taskfiles.plan.taskfile import Parsed, Task

from .conftest import commit_all, write_task
from .harness import Site

BIN = Path(sys.executable).parent
GOOD = "---\ntitle: Good\nstatus: ready\n---\n\nStill listed.\n"
# The 354-byte alias bomb: seven levels of ten aliases, 10^7 values when expanded.
BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{name}: &{name} [{','.join(['*' + prev] * 10)}]\n"
    for prev, name in zip("abcdef", "bcdefg", strict=True)
)

# (slug, frontmatter lines after 'title: t' on line 2, line of the error, message fragment)
CRASHES: list[tuple[str, str, int, str]] = [
    ("bad-int", "owner: a\nx: !!int x", 4, "`x` is not an integer; fix it or remove the !!int tag"),
    ("empty-int", "x: !!int ''", 3, "`''` is not an integer"),
    ("bad-float", "x: !!float x", 3, "`x` is not a number; fix it or remove the !!float tag"),
    ("bad-bool", "x: !!bool maybe", 3, "`maybe` is not a boolean; write true or false"),
    ("map-on-a-list", "x: !!map [1]", 3, "tag !!map does not fit a list; remove it"),
    ("binary", "x: !!binary aGk=", 3, "tag !!binary is not supported in task files; write plain text"),
    ("plain-not-a-number", "x: 0b_", 3, "`0b_` reads as a number but is not one; quote it: '0b_'"),
    ("key-on", "on: push", 3, "key `on` reads as true; quote it: 'on':"),
    ("nested-key-on", "x:\n  on: push", 4, "key `on` reads as true; quote it: 'on':"),
    ("key-null", "~: x", 3, "key `~` reads as null; quote it: '~':"),
    ("key-number", "notes: {1: a}", 3, "key `1` reads as the number 1; quote it: '1':"),
    ("key-list", "[a]: x", 3, "a key is a list; keys must be text"),
    ("key-mapping", "? {a: 1}\n: x", 3, "a key is a mapping; keys must be text"),
    (
        "int-beyond-64-bits",
        "n: 18446744073709551616",
        3,
        "does not fit in 64 bits; to keep it as text quote it",
    ),
    (
        "recursive-alias",
        "owner: a\nx: &a [*a]",
        4,
        "alias *a is inside the value it names (anchored on line 4)",
    ),
    (
        "deep-brackets",
        "x: " + "[" * 500 + "]" * 500,
        3,
        "values nest deeper than 64 levels; flatten this value",
    ),
    (
        "deep-block",
        "x:\n" + "".join("  " * i + "-\n" for i in range(70)) + "  " * 70 + "- a",
        3 + 64,
        "nest deeper",
    ),
    ("alias-bomb", BOMB.rstrip("\n"), 6, "aliases repeat more than 4096 values"),
]
CRASH_IDS = [case[0] for case in CRASHES]


def crash_file(lines: str) -> bytes:
    return f"---\ntitle: t\n{lines}\n---\n\nBody.\n".encode()


@pytest.mark.planning
@pytest.mark.parametrize(("slug", "lines", "line", "fragment"), CRASHES, ids=CRASH_IDS)
def test_each_crash_is_one_line_naming_its_line(
    tmp_path: Path, slug: str, lines: str, line: int, fragment: str
) -> None:
    path = tmp_path / f"{slug}.md"
    path.write_bytes(crash_file(lines))
    parsed = taskfile.parse(path.read_bytes(), f"tasks/{slug}.md", None)
    assert parsed.task is None
    (problem,) = parsed.problems
    assert (problem.code, problem.line) == ("yaml", line)
    assert fragment in problem.message
    assert len(str(problem).splitlines()) == 1


@pytest.mark.planning
def test_the_alias_bomb_and_deep_nesting_are_errors_before_anything_is_built() -> None:
    assert len(BOMB.encode()) < 400
    with pytest.raises(yamlsafe.YamlError, match="an alias bomb") as bomb:
        yamlsafe.load(BOMB)
    assert bomb.value.line == BOMB.splitlines().index("d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]") + 1
    # 64 levels read; one more, written out or through an alias, is refused.
    assert yamlsafe.load("x: " + "[" * 63 + "]" * 63).value is not None
    for text in (
        "x: " + "[" * 64 + "]" * 64,
        "x: " + "{a: " * 64 + "b" + "}" * 64,
        "- " * 65 + "a",
        "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30,
        "x: " + "[" * 300_000,  # past libyaml's own limit (1000), which may speak first
    ):
        with pytest.raises(yamlsafe.YamlError, match="deeper than 64 levels"):
            yamlsafe.load(text)
    # Text repeated by aliases counts too: one 70,000-character value aliased once is too much.
    with pytest.raises(yamlsafe.YamlError, match="65536 characters"):
        yamlsafe.load("a: &a '" + "y" * 70_000 + "'\nb: *a")


@pytest.mark.planning
def test_json_edge_values_reach_json_output(tmp_path: Path) -> None:
    text = (
        "---\ntitle: t\nnan: .nan\ninf: -.inf\ndate: 2026-01-02\nwhen: 2026-01-02 10:30:00\n"
        "stamp: !!timestamp 2026-01-02\nbig: 9223372036854775807\nsmall: -9223372036854775808\n"
        "shared: &s {a: [1, 2]}\nagain: *s\n'on': quoted\n---\n"
    )
    task = taskfile.parse(text.encode(), "tasks/t.md", None).task
    assert task is not None
    extra = json.loads(orjson.dumps(task.to_dict())).get("extra")
    assert extra == {
        "nan": None,  # orjson writes NaN and infinities as null, as JSON has neither
        "inf": None,
        "date": "2026-01-02",
        "when": "2026-01-02 10:30:00",
        "stamp": "2026-01-02",
        "big": 2**63 - 1,
        "small": -(2**63),
        "shared": {"a": [1, 2]},
        "again": {"a": [1, 2]},
        "on": "quoted",
    }


# -- the real commands ---------------------------------------------------------------------------


def task_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN / "task", "-C", str(root), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def crash_repo(repo: Path) -> Path:
    """Every crash file next to one good task, committed."""
    write_task(repo, "good.md", GOOD)
    for slug, lines, _, _ in CRASHES:
        (repo / "tasks" / f"{slug}.md").write_bytes(crash_file(lines))
    commit_all(repo)
    return repo


@pytest.mark.planning
def test_crash_files_are_skipped_by_list_show_and_edits_and_named_by_validate(crash_repo: Path) -> None:
    for _ in range(2):  # the second run reads the parse cache the first one wrote
        listed = task_cli(crash_repo, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [t["slug"] for t in json.loads(listed.stdout)] == ["good"]
        assert f"skipped {len(CRASHES)} unreadable task file(s)" in listed.stderr
    shown = task_cli(crash_repo, "show", "good", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["slug"] == "good"
    for command in (
        ["show", "recursive-alias", "--json"],
        ["ready", "recursive-alias"],
        ["complete", "bad-int"],
    ):
        done = task_cli(crash_repo, *command)
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines()[-1].startswith("error: tasks/")
        assert "cannot be read; run 'task validate" in done.stderr
    checked = task_cli(crash_repo, "validate")
    assert checked.returncode == 1
    reported = [line for line in checked.stdout.splitlines() if line.startswith("tasks/")]
    expected = [(f"tasks/{slug}.md:{line}: ", fragment) for slug, _, line, fragment in sorted(CRASHES)]
    assert len(reported) == len(expected)
    for got, (where, fragment) in zip(reported, expected, strict=True):
        assert got.startswith(where) and fragment in got, got
    as_json = json.loads(task_cli(crash_repo, "validate", "--json").stdout)
    assert {p["path"] for p in as_json["problems"]} == {f"tasks/{slug}.md" for slug in CRASH_IDS}
    at_ref = task_cli(crash_repo, "list", "--json", "--ref", "main")
    assert [t["slug"] for t in json.loads(at_ref.stdout)] == ["good"]


def test_the_heartbeat_dispatches_the_other_tasks(site: Site) -> None:
    site.task("a")
    for slug, lines, _, _ in CRASHES:
        (site.root / "tasks" / f"{slug}.md").write_bytes(crash_file(lines))
    commit_all(site.root, "crash files")
    result = site.cycle()
    assert [d.slug for d in result.dispatched if not d.error] == ["a"]
    assert sorted(result.skipped) == sorted(f"tasks/{slug}.md" for slug in CRASH_IDS)
    site.wait("a", "exited")


def test_the_status_page_lists_the_other_tasks(crash_repo: Path) -> None:
    from starlette.testclient import TestClient

    from taskfiles.serve import create_app

    app = create_app(tconfig.load(crash_repo), watch=False, max_age=0)
    client = TestClient(app, base_url="http://127.0.0.1:8005", client=("127.0.0.1", 50000))
    page = client.get("/")
    assert page.status_code == 200 and "Good" in page.text
    listing = client.get("/api/tasks").json()
    assert [t["slug"] for t in listing["tasks"]] == ["good"]
    assert sorted(listing["skipped"]) == sorted(f"tasks/{slug}.md" for slug in CRASH_IDS)


# -- libyaml on every machine ---------------------------------------------------------------------

WITHOUT_LIBYAML = """
import sys
sys.modules["yaml._yaml"] = None  # as on a PyYAML built without libyaml
from taskfiles.cli import main
sys.argv = ["task", "-C", sys.argv[1], "list"]
main()
"""


@pytest.mark.planning
def test_without_libyaml_commands_say_how_to_install_it(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\n---\n")
    done = subprocess.run([sys.executable, "-c", WITHOUT_LIBYAML, str(repo)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {yamlsafe.NO_LIBYAML}"
    assert "pip install --force-reinstall --only-binary pyyaml pyyaml" in done.stderr


@pytest.mark.planning
def test_inputs_the_two_pyyaml_parsers_disagree_on_read_as_libyaml_reads_them() -> None:
    text = "title:\tx\n"  # a tab after the colon: libyaml reads it, PyYAML's Python parser refuses it
    with pytest.raises(yaml.YAMLError):
        yaml.load(text, Loader=yaml.SafeLoader)
    assert yamlsafe.load(text).value == yaml.load(text, Loader=yaml.CSafeLoader) == {"title": "x"}


# -- the parse cache ------------------------------------------------------------------------------


@pytest.mark.planning
def test_a_cache_write_that_cannot_pickle_is_skipped_not_raised(tmp_path: Path) -> None:
    nested: list[Any] = []
    for _ in range(100_000):  # deeper than pickle can recurse
        nested = [nested]
    good = taskfile.parse(GOOD.encode(), "tasks/good.md", None)
    assert good.task is not None
    for strange in (nested, lambda: None):
        path = tmp_path / "tree-cache.pickle"
        store = cache.TreeStore(path, ("print",))
        odd = Parsed(replace(good.task, extra={"x": strange}))
        store.put("tasks/good.md", bytes(32), odd, keep=True)
        stats = store.save(([], [], []))
        assert (stats.parsed, stats.stored) == (1, None)
        assert list(tmp_path.iterdir()) == []  # no cache file, no temporary file left behind


# -- fuzz: mutated task files ---------------------------------------------------------------------

BASES = [
    "---\ntitle: Fix login\nstatus: ready\npriority: p1\nowner: core\ndepends_on: [a, b]\n"
    "labels:\n  - web\n  - ux\n---\n\n## Problem\n\nLogin fails.\n",
    "---\n# planning record\ntitle: 'quoted: yes'\nstatus: completed\ncompleted_at: 2026-01-02\npr: 12\n"
    "notes: |\n  line one\n  line two\nmeta: {size: 3, tags: [x, y]}\n---\nbody\n",
    "---\ntitle: Anchors\nbase: &b {size: 1, risk: low}\nplan:\n  <<: *b\n  risk: high\n"
    "list: &l [a, b]\nagain: *l\n---\n",
    "---\r\ntitle: crlf\r\nstatus: not_started\r\nmilestone: m1\r\n---\r\nbody\r\n",
]
TAGS = [
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!str",
    "!!map",
    "!!seq",
    "!!set",
    "!!omap",
    "!!pairs",
    "!!binary",
    "!!timestamp",
    "!!merge",
    "!",
    "!local",
    "!!python/tuple",
]
VALUES = [
    "x",
    "''",
    "1",
    "-0",
    "0x1F",
    "0b102",
    "1:30",
    "1e5",
    ".nan",
    "-.inf",
    "maybe",
    "yes",
    "~",
    "2026-01-02",
    "aGk=",
    "[1, a]",
    "{a: 1}",
    "[a: 1]",
    "18446744073709551616",
    "-9223372036854775809",
    "1:" + ":".join(["59"] * 30),
]
KEYS = [
    "x",
    "title",
    "status",
    "on",
    "1",
    "~",
    "1.5",
    "2026-01-01",
    "<<",
    "=",
    "[a]",
    "? {a: 1}\n",
    '"a\\nb"',
    "&k key",
    "*k",
]
SNIPPETS = st.one_of(
    st.builds(
        lambda k, t, v: f"{k}: {t} {v}", st.sampled_from(KEYS), st.sampled_from(TAGS), st.sampled_from(VALUES)
    ),
    st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(KEYS), st.sampled_from(VALUES)),
    st.sampled_from(
        [
            "a: &a [x, y]",
            "b: *a",
            "c: &c {k: *a}",
            "<<: *c",
            "<<: [*c, {z: 1}]",
            "<<: 1",
            "d: &d [*d]",
            "e: &e {k: *e}",
            "f: *missing",
            "g: &a dup",
            "--- x",
            "...",
            "%YAML 1.1",
            "? [a, b]\n: c",
            "'quoted: key': 1",
            "h: |\n  block\n   text",
            "i: >-\n  folded",
            "\t- tab",
        ]
    ),
    st.integers(1, 150).map(lambda n: "x: " + "[" * n + "]" * n),
    st.integers(1, 150).map(lambda n: "x: " + "{a: " * n + "b" + "}" * n),
    st.integers(1, 100).map(
        lambda n: "x:\n" + "".join("  " * i + "-\n" for i in range(n)) + "  " * n + "- a"
    ),
    st.integers(1, 200_000).map(lambda n: "x: " + "y" * n),
    st.integers(2, 12).map(
        lambda width: (
            "a: &a ["
            + ",".join(["x"] * width)
            + "]\n"
            + "b: &b ["
            + ",".join(["*a"] * width)
            + "]\n"
            + "c: ["
            + ",".join(["*b"] * width)
            + "]"
        )
    ),
)


# Bytes that mean something to YAML, most of the time; any byte now and then.
NOISE = st.one_of(
    st.lists(st.sampled_from(list(b":-[]{}&*!|>'\"#,?% \t\n\r\\")), min_size=1, max_size=4).map(bytes),
    st.binary(min_size=1, max_size=4),
)
EDITS = ["snippet"] * 16 + ["noise"] * 6 + ["delete"] * 4 + ["truncate"]


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A valid task file, then one to four edits: YAML snippets at the start of header
    lines, bytes inserted, a range deleted, or the file cut short."""
    data = bytearray(draw(st.sampled_from(BASES)).encode())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(EDITS))
        close = data.find(b"\n---", 3)  # mostly edit the header: the body is not YAML
        header_end = close if close > 0 else len(data)
        first = min(data.find(b"\n") + 1, header_end)  # keep the opening delimiter
        if kind == "snippet":
            starts = [i + 1 for i, byte in enumerate(data[:header_end]) if byte == ord("\n")]
            at = draw(st.sampled_from(starts or [0]))
            indent = draw(st.sampled_from(["", "", "", "", "  "]))
            data[at:at] = (indent + draw(SNIPPETS) + "\n").encode()
        elif kind == "noise":
            at = draw(st.integers(first, header_end))
            data[at:at] = draw(NOISE)
        elif kind == "delete":
            at = draw(st.integers(first, max(first, header_end - 1)))
            del data[at : at + draw(st.integers(1, 12))]
        else:
            del data[draw(st.integers(0, len(data))) :]
    return bytes(data)


class _PyYAMLOracle(yaml.CSafeLoader):
    """The loader task files had before yamlsafe: PyYAML's, with dates as text, duplicate
    keys refused and no sets, ordered maps or bytes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [(k.tag, k.value) for k, _ in node.value if isinstance(k, yaml.ScalarNode) and k.tag != MERGE]
        if len(keys) != len(set(keys)):
            raise yaml.constructor.ConstructorError(None, None, "duplicate key", node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """PyYAML merges a tagged mapping or list of them (``<<: !!set {a: 1}``, ``<<: !!set
        [a: 1]``) as plain ones; yamlsafe, like this oracle, refuses the tag."""
        for key, value in node.value:
            merged = [value, *value.value] if isinstance(value, yaml.SequenceNode) else [value]
            for each in merged if key.tag == MERGE else []:
                if each.tag not in (MAP, SEQ) and not isinstance(each, yaml.ScalarNode):
                    raise yaml.constructor.ConstructorError(
                        None, None, f"tag {each.tag} refused", each.start_mark
                    )
        super().flatten_mapping(node)


def _as_text(loader: _PyYAMLOracle, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


def _refused(loader: _PyYAMLOracle, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(None, None, f"tag {node.tag} refused", node.start_mark)


MERGE = "tag:yaml.org,2002:merge"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"
_PyYAMLOracle.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in found if tag != yamlsafe.TIMESTAMP]
    for first, found in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PyYAMLOracle.add_constructor(yamlsafe.TIMESTAMP, _as_text)
for _tag in ("binary", "set", "omap", "pairs"):
    _PyYAMLOracle.add_constructor(f"tag:yaml.org,2002:{_tag}", _refused)


def json_shaped(value: object, depth: int = 0, budget: list[int] | None = None) -> bool:
    """True when ``value`` is what yamlsafe may build: JSON types, text keys, 64-bit
    integers, at most 64 levels, and not too big once aliases are expanded."""
    budget = [20_000] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0 or depth > 64:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_shaped(v, depth + 1, budget) for k, v in value.items())
    if isinstance(value, list):
        return all(json_shaped(v, depth + 1, budget) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return True
    return isinstance(value, int) and yamlsafe.INT_MIN <= value <= yamlsafe.INT_MAX


def check_parsed(parsed: Parsed, data: bytes, path: str) -> None:
    """The contract of a parse: problems name a line on one line; a task is JSON- and pickle-safe."""
    lines = data.count(b"\n") + 1
    for problem in parsed.problems:
        assert problem.path == path
        assert 1 <= problem.line <= lines, problem
        assert problem.message and len(str(problem).splitlines()) == 1, problem
    if parsed.task is None:
        assert any(p.severity == "error" for p in parsed.problems)
        return
    written = orjson.dumps(parsed.task.to_dict(body=True))
    assert json.loads(written)["slug"] == parsed.task.slug
    assert orjson.dumps(pickle.loads(pickle.dumps(parsed.task)).to_dict(body=True)) == written


def check_against_pyyaml(data: bytes) -> None:
    """Where the old loader read a header into JSON-shaped data, yamlsafe reads the same,
    unless a bound refused it, or a tag on a merged mapping (which PyYAML ignores)."""
    try:
        header = frontmatter.split(data.decode("utf-8")).header
        theirs = yaml.load(header, Loader=_PyYAMLOracle)
    except Exception:  # PyYAML's own crashes (ValueError, KeyError, ...) are what yamlsafe replaces
        return
    if not json_shaped(theirs):
        return
    try:
        ours = yamlsafe.load(header).value
    except yamlsafe.YamlError as exc:
        assert any(word in exc.message for word in ("deeper than", "alias bomb", "does not fit")), exc.message
        return
    assert repr(ours) == repr(theirs)


FUZZ = settings(
    max_examples=4000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_config(tmp_path_factory: pytest.TempPathFactory) -> tconfig.Config:
    root = tmp_path_factory.mktemp("fuzz")
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "tasks").mkdir()
    return tconfig.load(root)


@pytest.mark.planning
@FUZZ
@given(data=mutated_files())
@example(data=b"---\n<<: !!set {a: 1}\ntitle: Fix login\nstatus: ready\n---\n")  # a tag on a merged mapping
@example(data=b"---\n<<: !!set [a: 1]\ntitle: Fix login\nstatus: ready\n---\n")  # on a merged list
def test_mutated_task_files_parse_validate_classify_and_serialise(
    fuzz_config: tconfig.Config, data: bytes
) -> None:
    path = "tasks/fuzz.md"
    parsed = taskfile.parse(data, path, None)
    check_parsed(parsed, data, path)
    check_against_pyyaml(data)
    good = taskfile.parse(GOOD.encode(), "tasks/good.md", None).task
    assert good is not None
    tasks = tuple(t for t in (good, parsed.task) if t is not None)
    taskset = source.TaskSet(tasks, parsed.problems, () if parsed.task else (path,))
    problems = validate.validate(fuzz_config, taskset)
    assert all(len(str(p).splitlines()) == 1 for p in problems)
    rows = state.classify_all(taskset, {}, state.Inputs(now=datetime.now(UTC)))
    orjson.dumps([row.to_dict() for row in rows])


@pytest.mark.planning
@settings(FUZZ, max_examples=300)
@given(data=mutated_files())
def test_mutated_files_in_a_folder_list_twice_beside_a_good_task(
    fuzz_config: tconfig.Config, data: bytes
) -> None:
    tasks_dir = fuzz_config.tasks_dir
    for old in tasks_dir.glob("fuzz-*.md"):
        old.unlink()
    name = f"fuzz-{time.monotonic_ns()}.md"  # a new file each time: identities never collide
    (tasks_dir / name).write_bytes(data)
    (tasks_dir / "good.md").write_text(GOOD, encoding="utf-8")
    later = time.time_ns() + 10**10  # every file counts as settled, so the first load caches it
    cold = source.load_tree(fuzz_config, now_ns=later)
    warm = source.load_tree(fuzz_config, now_ns=later)
    assert orjson.dumps([t.to_dict(body=True) for t in warm.tasks]) == orjson.dumps(
        [t.to_dict(body=True) for t in cold.tasks]
    )
    assert warm.problems == cold.problems
    assert "good" in cold.by_slug
    assert (f"tasks/{name}" in cold.skipped) == (name.removesuffix(".md") not in cold.by_slug)
    orjson.dumps([task.to_dict() for task in cold.tasks])
    for problem in validate.validate(fuzz_config, cold):
        assert len(str(problem).splitlines()) == 1


@pytest.mark.planning
def test_the_fuzz_bases_are_valid_task_files() -> None:
    for text in BASES:
        parsed = taskfile.parse(text.encode(), "tasks/base.md", None)
        assert isinstance(parsed.task, Task), parsed.problems
        check_parsed(parsed, text.encode(), "tasks/base.md")
