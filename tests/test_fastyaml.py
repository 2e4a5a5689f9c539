"""The fast path (plan/fastyaml.py) reads what libyaml reads, or declines: a property test
over documents from its grammar and near misses of it, tables of what it reads and what it
declines, the plain-scalar rules checked against PyYAML's, and yaml left unimported by a
command whose files all took the fast path."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from taskfiles.plan import fastyaml, frontmatter, scalars, yamlevents, yamlsafe

from .conftest import write_task
from .test_yaml_fuzz import FUZZ

pytestmark = pytest.mark.planning

SETTINGS = settings(FUZZ, max_examples=2000)  # derandomized, no example database: as the fuzz test


def typed(value: Any) -> Any:
    """``value`` with every scalar's type beside it (``1 == True == 1.0`` in Python), and NaN
    made comparable."""
    if isinstance(value, dict):
        return ("dict", [(key, typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [typed(item) for item in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def check_same_as_libyaml(text: str) -> bool:
    """Either the fast path declines ``text``, or it reads exactly what libyaml's path reads
    (values, types, key order and key lines). True when the fast path read it."""
    fast = fastyaml.read(text, 2)
    if fast is None:
        return False
    slow = yamlevents.load(text, 2)  # an error here is a file the fast path should have declined
    assert typed(fast[0]) == typed(slow.value)
    assert list(fast[1].items()) == list(slow.key_lines.items())
    return True


# -- the generated documents ---------------------------------------------------------------------

# Characters that end, start or change a YAML scalar, or that libyaml refuses or breaks lines at.
TRICKY = [*" #:-,[]{}&*!|>'\"%@`?~.=<+_/\\()", *"\t\r\xa0\x85\u2028\ufeff\x7f\u3000\x0b"]
# YAML 1.1's plain values that are not text, and text that looks like them.
WORDS = [
    *("yes", "No", "ON", "off", "y", "n", "true", "False", "null", "NULL", "~", "Null", "nil"),
    *("0", "012", "019", "0o17", "0x1F", "0x_", "0b101", "0b_", "1_000", "+7", "-7", "1:20", "-1:20:30"),
    *("190:20:30.15", "1.", ".5", "1e3", "1.0e+3", "1.0e3", "+.inf", "-.Inf", ".NaN", ".nan", "._", "."),
    *("2026-03-04", "2026-3-4", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10", "12:30"),
    *("=", "<<", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "0x" + "f" * 17),
    *("p2", "not_started", "ready", "v1.0", "#12", "a#b", "a #b", "a:b", "a: b", "a:", "http://x/y?z=1"),
    *("-", "--", "---", "...", "- a", "-a", "?a", ":a", "&a", "*a", "!a", "!!str a", "|", ">-", "%a"),
    *("'", '"', "''", "it's", 'say "hi"', "back\\slash", "\\n", "é", "日本", "a  b", " a", "a "),
]
TEXT = st.text(st.sampled_from([*"abcxyz019 ", *TRICKY]), max_size=12)
SCALAR_TEXT = st.one_of(st.sampled_from(WORDS), TEXT)


@st.composite
def scalars_written(draw: st.DrawFn) -> str:
    """A scalar as written: plain, quoted with its quotes escaped or not, or a word."""
    text = draw(SCALAR_TEXT)
    style = draw(st.sampled_from(["plain", "plain", "single", "double", "raw-single", "raw-double"]))
    if style == "single":
        return "'" + text.replace("'", "''") + "'"
    if style == "double":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if style == "raw-single":
        return "'" + text + "'"
    if style == "raw-double":
        return '"' + text + '"'
    return text


@st.composite
def flow_lists(draw: st.DrawFn) -> str:
    items = draw(st.lists(scalars_written(), max_size=4))
    separator = draw(st.sampled_from([", ", ",", " , ", ",  "]))
    inner = separator.join(items)
    tail = draw(st.sampled_from(["", "", " ", ",", "]", "[x]", "{a: b}"]))
    return draw(st.sampled_from(["[", "[ "])) + inner + tail + draw(st.sampled_from(["]", " ]", "", "]]"]))


KEYS = st.one_of(
    st.sampled_from(["title", "status", "owner", "labels", "depends_on", "pr", "x", "a.b", "a-b", "_k"]),
    st.sampled_from(["on", "Yes", "null", "No", "y", "n", "~", "<<", "1", "a b", "'q'", '"q"', "-a", "?a"]),
    st.text(st.sampled_from([*"abkNOY01_.-", *TRICKY]), min_size=1, max_size=6),
)
COMMENTS = st.sampled_from(["", "", "", " # note", "  #", " #: x", "# x", "\t# x", " # 'x"])


@st.composite
def key_lines(draw: st.DrawFn) -> str:
    key = draw(KEYS)
    colon = draw(st.sampled_from([": ", ": ", ":  ", " : ", ":", ":\t", ": \t"]))
    value = draw(st.one_of(st.just(""), scalars_written(), flow_lists()))
    return key + colon + value + draw(COMMENTS)


@st.composite
def item_lines(draw: st.DrawFn) -> str:
    indent = draw(st.sampled_from(["", "  ", "  ", "    ", " ", "\t"]))
    dash = draw(st.sampled_from(["- ", "- ", "-  ", "-", "-\t", "- - ", "? "]))
    value = draw(st.one_of(st.just(""), scalars_written(), flow_lists()))
    return indent + dash + value + draw(COMMENTS)


# Lines the grammar does not have, each something libyaml reads some other way.
NEAR_MISSES = st.sampled_from(
    [
        *("  more text", "  title: x", "? x", ": x", "--- x", "... x", "---", "...", "%YAML 1.1"),
        *("key: &a x", "key: *a", "key: !!str x", "key: |", "key: >-", "key: {a: b}", "<<: *a"),
        *("key: a: b", "- a: b", "- [a]", "key: [a,\n  b]", "key: 'a\n  b'", 'key: "a\\tb"'),
        *("  - a", "    - b", "- c", "key:", "&a key: x", "!t key: x", "\ufeffkey: x", "key: x\r"),
    ]
)


TRICKY_SCALARS = st.one_of(
    st.sampled_from(WORDS).filter(lambda word: "'" not in word and '"' not in word),
    st.sampled_from(WORDS).map(lambda word: "'" + word.replace("'", "''") + "'"),
    st.sampled_from(WORDS).map(lambda word: '"' + word.replace('"', "") + '"'),
    st.from_regex(r"[A-Za-z][A-Za-z0-9 ._/()#-]{0,12}", fullmatch=True),
)


@st.composite
def clean_entries(draw: st.DrawFn) -> list[str]:
    """A key and its value in the grammar's shapes, the scalars YAML's tricky values (some
    declined: 'on:', '<<', an integer past 64 bits), and maybe a comment or blank line."""
    key = draw(st.one_of(SAFE_KEYS, SAFE_KEYS, st.sampled_from(["title", "a.b", "_k", "on", "No"])))
    comment = draw(st.sampled_from(["", "", " # note"]))
    shape = draw(st.sampled_from(["scalar", "scalar", "flow", "block", "empty"]))
    if shape == "scalar":
        lines = [f"{key}: {draw(TRICKY_SCALARS)}{comment}"]
    elif shape == "flow":
        lines = [f"{key}: [{', '.join(draw(st.lists(TRICKY_SCALARS, max_size=3)))}]{comment}"]
    elif shape == "block":
        indent = draw(st.sampled_from(["", "  ", "    "]))
        items = draw(st.lists(TRICKY_SCALARS, min_size=1, max_size=3))
        lines = [f"{key}:{comment}", *(f"{indent}- {item}" for item in items)]
    else:
        lines = [f"{key}:{comment}"]
    return lines + draw(st.sampled_from([[], [], [""], ["# a comment"], ["  # indented"]]))


@st.composite
def near_misses(draw: st.DrawFn, lines: list[str]) -> list[str]:
    """``lines`` with one near miss: a tricky character put in, a character taken out, or
    a line replaced by a tricky one, indented or repeated."""
    lines = list(lines)
    at = draw(st.integers(0, len(lines) - 1))
    line = lines[at]
    kind = draw(st.sampled_from(["char", "delete", "replace", "indent", "repeat"]))
    if kind == "char":
        where = draw(st.integers(0, len(line)))
        lines[at] = line[:where] + draw(st.sampled_from(TRICKY)) + line[where:]
    elif kind == "delete" and line:
        where = draw(st.integers(0, len(line) - 1))
        lines[at] = line[:where] + line[where + 1 :]
    elif kind == "replace":
        lines[at] = draw(st.one_of(key_lines(), item_lines(), NEAR_MISSES))
    elif kind == "indent":
        lines[at] = draw(st.sampled_from([" ", "  ", "    "])) + line
    else:
        lines.insert(at, line)
    return lines


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A frontmatter from the grammar, then (for most) a near miss or two."""
    entries = draw(st.lists(clean_entries(), min_size=1, max_size=6))
    lines = [line for entry in entries for line in entry]
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        lines = draw(near_misses(lines))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "\n", "", "\n\n"]))


@SETTINGS
@given(text=documents())
def test_the_fast_path_reads_what_libyaml_reads_or_declines(text: str) -> None:
    check_same_as_libyaml(text)


# Documents the fast path must read (not decline): the shapes nearly every task file has.
def fast_readable(text: str) -> bool:
    """A plain scalar that reads as a value anywhere: no ':' (declined in flow lists), no
    merge key, and a number only when it is one within 64 bits."""
    tag = scalars.plain_tag(text)
    if ":" in text or tag == scalars.MERGE:
        return False
    if tag == scalars.INT:
        number = scalars.int_of(text)
        return number is not None and scalars.INT_MIN <= number <= scalars.INT_MAX
    return tag != scalars.FLOAT or scalars.float_of(text) is not None


def printable(text: str) -> bool:
    return all(char == " " or char.isprintable() for char in text)


SAFE_KEYS = st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True).filter(
    lambda key: scalars.plain_tag(key) == scalars.STR
)
SAFE_PLAIN = st.from_regex(r"[A-Za-z0-9(/][A-Za-z0-9 ()/._#'\"!-]{0,15}", fullmatch=True).filter(
    lambda text: not text.endswith(" ") and " #" not in text and fast_readable(text)
)
SAFE_SCALARS = st.one_of(
    SAFE_PLAIN,
    st.sampled_from(WORDS[:40]).filter(fast_readable),
    st.text(st.characters(exclude_characters="'\ufeff", codec="utf-8"), max_size=8)
    .filter(printable)
    .map(lambda text: "'" + text.replace("'", "''") + "'"),
)
COMMON_COMMENTS = st.sampled_from(["", "", "", " # note", "  #", " #: x"])


@st.composite
def common_documents(draw: st.DrawFn) -> str:
    keys = draw(st.lists(SAFE_KEYS, min_size=1, max_size=6, unique=True))
    lines = []
    for key in keys:
        shape = draw(st.sampled_from(["scalar", "scalar", "flow", "block", "empty"]))
        if shape == "scalar":
            lines.append(f"{key}: {draw(SAFE_SCALARS)}{draw(COMMON_COMMENTS)}")
        elif shape == "flow":
            lines.append(f"{key}: [{', '.join(draw(st.lists(SAFE_SCALARS, max_size=3)))}]")
        elif shape == "block":
            indent = draw(st.sampled_from(["", "  ", "    "]))
            lines.append(f"{key}:")
            lines += [f"{indent}- {item}" for item in draw(st.lists(SAFE_SCALARS, min_size=1, max_size=3))]
        else:
            lines.append(f"{key}:")
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "# reviewed", "  # indented note"])))
    return "\n".join(lines) + "\n"


@settings(SETTINGS, max_examples=500)
@given(text=common_documents())
def test_the_fast_path_reads_the_common_shapes(text: str) -> None:
    assert check_same_as_libyaml(text), f"declined: {text!r}"


@st.composite
def task_files(draw: st.DrawFn) -> str:
    """A whole file: delimiter lines exact or not, a frontmatter, a body that may hold more
    delimiter lines."""
    opening = draw(st.sampled_from(["---\n"] * 6 + ["--- \n", "\ufeff---\n", "---\r\n", "...\n", ""]))
    closing = draw(st.sampled_from(["---\n"] * 5 + ["---", "...\n", "--- \n", "---\r\n", "----\n", ""]))
    header = draw(st.one_of(documents(), common_documents(), st.just("")))
    body = draw(st.sampled_from(["", "\nBody.\n", "---\n", "\n---\nmore\n", "## Plan\n\n- [ ] x\n"]))
    return opening + header + closing + body


@SETTINGS
@given(text=task_files())
def test_the_fast_path_splits_a_file_where_frontmatter_split_does(text: str) -> None:
    fast = fastyaml.read_file(text)
    if fast is None:
        return
    split = frontmatter.split(text)
    slow = yamlevents.load(split.header, frontmatter.HEADER_LINE)
    assert (fast.body, fast.body_line) == (split.body, split.body_line)
    assert typed(fast.meta) == typed(slow.value)
    assert list(fast.key_lines.items()) == list(slow.key_lines.items())


# -- tables ---------------------------------------------------------------------------------------

# (text, what it reads as): each value's type matters.
READ = [
    ("title: Fix it\nstatus: ready\n", {"title": "Fix it", "status": "ready"}),
    ("title: Fix (#12) #7\n", {"title": "Fix (#12)"}),  # ' #' starts a comment, '(#' does not
    ("title: C#, a:b and http://x\n", {"title": "C#, a:b and http://x"}),
    ("pr: '#12'\nowner: \"a b\"\n", {"pr": "#12", "owner": "a b"}),
    ("t: 'it''s'\ne: ''\n", {"t": "it's", "e": ""}),
    (
        "n: 12\nf: 1.5\no: 012\nx: 0x1f\ns: 1:20\nb: 1_000\n",
        {"n": 12, "f": 1.5, "o": 10, "x": 31, "s": 80, "b": 1000},
    ),
    ("a: yes\nb: Off\nc: ~\nd: null\ne:\n", {"a": True, "b": False, "c": None, "d": None, "e": None}),
    ("completed_at: 2026-03-04\nv: 1.0\n", {"completed_at": "2026-03-04", "v": 1.0}),
    ("i: .inf\nj: -.Inf\n", {"i": math.inf, "j": -math.inf}),
    ("labels: [a, 'b c', \"d\", 1, yes]\n", {"labels": ["a", "b c", "d", 1, True]}),
    ("labels: []\nd: [ a ,b ]\n", {"labels": [], "d": ["a", "b"]}),
    ("labels:\n  - a\n  # between\n\n  - 'b'\n", {"labels": ["a", "b"]}),
    ("labels:\n- a\n- b\nowner: x\n", {"labels": ["a", "b"], "owner": "x"}),
    ("labels: # the list\n    - a  # first\n", {"labels": ["a"]}),
    ("# top\n\ntitle : spaced  \n  # indented comment\nx: y\n", {"title": "spaced", "x": "y"}),
    ("v: =\nw: -a\nz: é 日本\n", {"v": "=", "w": "-a", "z": "é 日本"}),
]


@pytest.mark.parametrize(("text", "expected"), READ, ids=[text[:24] for text, _ in READ])
def test_what_the_fast_path_reads(text: str, expected: dict[str, Any]) -> None:
    read = fastyaml.read(text)
    assert read is not None
    assert typed(read[0]) == typed(expected)
    assert check_same_as_libyaml(text)


# Each is declined: libyaml reads it some other way, or reports an error with its line.
DECLINED = [
    "title: x\ntitle: y\n",  # a duplicate key
    "on: push\n",  # a key that reads as true
    "n: 9223372036854775808\n",  # past 64 bits
    "x: 0b_\n",  # reads as a number but is not one
    "v: <<\n",  # the merge key as a value
    "<<: *a\n",
    "title: a: b\n",
    "title: x\n  continued\n",  # a multi-line plain scalar
    "title:\n  x\n",
    "labels:\n  - a\n    b\n",
    "labels:\n  - a\n - b\n",  # items not indented alike
    "title: x\n- a\n",  # an item after a key with a value
    "labels:\n  -\n",  # a null item
    "labels:\n  - - a\n",
    "labels:\n  - [a]\n",
    "labels: [a, [b]]\n",
    "labels: [a,\n  b]\n",
    "labels: [a, b,]\n",
    "labels: [a:b]\n",
    "x: &a y\n",
    "x: *a\n",
    "x: !!str 1\n",
    "x: |\n  text\n",
    "x: >\n  text\n",
    "x: {a: b}\n",
    "? x\n",
    "  title: x\n",
    "'title': x\n",
    "title:\tx\n",
    "title: x\r\n",
    "title: x\u2028y\n",
    "\ufefftitle: x\n",
    'title: "a\\tb"\n',
    "title: 'a\n  b'\n",
    "%YAML 1.1\n--- \ntitle: x\n",
    "# only a comment\n",
    "",
]


@pytest.mark.parametrize("text", DECLINED)
def test_what_the_fast_path_declines(text: str) -> None:
    assert fastyaml.read(text) is None


def test_a_declined_error_keeps_its_line() -> None:
    with pytest.raises(yamlsafe.YamlError) as duplicate:
        yamlsafe.load("title: x\nowner: a\ntitle: y\n", 2)
    assert duplicate.value.line == 4
    assert "duplicate key 'title' (first on line 2)" in duplicate.value.message


def test_plain_scalar_rules_are_pyyamls() -> None:
    """scalars.RESOLVERS copies PyYAML's implicit resolvers (less timestamps): pinned here,
    so an upgrade of PyYAML that changed them fails until the copy follows."""
    pyyaml = {
        first: [
            (tag, rx.pattern, rx.flags)
            for tag, rx in rules
            if tag not in (scalars.TIMESTAMP, "tag:yaml.org,2002:yaml")
        ]
        for first, rules in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }
    ours = {
        first: [(tag, rx.pattern, rx.flags) for tag, rx in rules]
        for first, rules in scalars.RESOLVERS.items()
    }
    assert ours == {first: rules for first, rules in pyyaml.items() if rules}


# -- yaml stays unimported ------------------------------------------------------------------------

IMPORTED = """
import sys
from taskfiles.cli import app  # click's main: SystemExit, then what follows
sys.argv = ["task", "-C", sys.argv[1], "list", "--json"]
try:
    app.main(prog_name='task')
finally:
    print("yaml imported:", "yaml" in sys.modules, file=sys.stderr)
"""


def imports_yaml(repo: Path) -> bool:
    done = subprocess.run([sys.executable, "-c", IMPORTED, str(repo)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return "yaml imported: True" in done.stderr


def test_a_list_of_common_files_never_imports_yaml(repo: Path) -> None:
    write_task(repo, "a.md", "---\ntitle: A\nstatus: ready\nlabels: [x]\n---\n\nBody.\n")
    write_task(repo, "b.md", "---\ntitle: 'B'\ndepends_on:\n  - a\n---\n")
    assert not imports_yaml(repo)
    write_task(repo, "c.md", "---\ntitle: C\nnotes: |\n  a block scalar\n---\n")
    assert imports_yaml(repo)
