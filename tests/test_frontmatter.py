"""Line-minimal frontmatter edits: table tests and a property test over arbitrary files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskfiles.errors import TaskFileError
from taskfiles.plan import frontmatter
from taskfiles.plan.frontmatter import render_scalar, set_keys

pytestmark = pytest.mark.planning

READY = {"status": "ready"}
COMPLETE = {"status": "completed", "completed_by": "alice", "completed_at": "2026-01-02", "pr": 42}
MIGRATE = {"status": "ready", "started_at": None, "claimed_by": None}

# (id, text before, updates, text after)
EDITS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "plain",
        "---\ntitle: x\nstatus: not_started\n---\nbody\n",
        READY,
        "---\ntitle: x\nstatus: ready\n---\nbody\n",
    ),
    ("single-quoted", "---\nstatus: 'not_started'\n---\n", READY, "---\nstatus: 'ready'\n---\n"),
    ("double-quoted", '---\nstatus: "not_started"\n---\n', READY, '---\nstatus: "ready"\n---\n'),
    (
        "trailing comment kept",
        "---\nstatus: not_started   # planning only\n---\n",
        READY,
        "---\nstatus: ready   # planning only\n---\n",
    ),
    (
        "comment on a key without value kept",
        "---\ntitle: x\nstatus:  # set by task ready\n---\n",
        READY,
        "---\ntitle: x\nstatus: ready  # set by task ready\n---\n",
    ),
    (
        "quoted value with '#' and a comment",
        "---\ncompleted_by: 'a # b'  # who\n---\n",
        {"completed_by": "carol"},
        "---\ncompleted_by: 'carol'  # who\n---\n",
    ),
    (
        "tab between key and value kept",
        "---\nstatus:\tnot_started\n---\n",
        READY,
        "---\nstatus:\tready\n---\n",
    ),
    (
        "indented comment after the value kept",
        "---\nstatus: not_started\n  # about the status\ntitle: x\n---\n",
        READY,
        "---\nstatus: ready\n  # about the status\ntitle: x\n---\n",
    ),
    (
        "multi-line block scalar replaced",
        "---\ntitle: x\npr: |\n  first line\n  # not a comment\n\n  last\n"
        "# a real comment\nowner: bob\n---\n",
        {"pr": "https://example.com/pr/7"},
        "---\ntitle: x\npr: https://example.com/pr/7\n# a real comment\nowner: bob\n---\n",
    ),
    (
        "multi-line block list replaced, comment on its key kept",
        "---\ncompleted_by:  # several people\n  - a\n  # between\n  - b\nstatus: ready\n---\n",
        {"completed_by": "a"},
        "---\ncompleted_by: a  # several people\nstatus: ready\n---\n",
    ),
    (
        "multi-line quoted value replaced",
        '---\ncompleted_at: "2026-01-01\n  10:00"\ntitle: x\n---\n',
        {"completed_at": "2026-01-02"},
        '---\ncompleted_at: "2026-01-02"\ntitle: x\n---\n',
    ),
    (
        "absent keys appended before the closing delimiter, in order",
        "---\ntitle: x\nstatus: ready\n# end of header\n---\nbody\n",
        COMPLETE,
        '---\ntitle: x\nstatus: completed\n# end of header\ncompleted_by: alice\ncompleted_at: "2026-01-02"\n'
        "pr: 42\n---\nbody\n",
    ),
    (
        "removal (task migrate)",
        "---\ntitle: x\nstatus: in_progress\nstarted_at: 2026-01-01  # by worker\nclaimed_by:\n  - w1\n"
        "  - w2\nowner: bob\n---\n",
        MIGRATE,
        "---\ntitle: x\nstatus: ready\nowner: bob\n---\n",
    ),
    (
        "removal keeps the comment above the next key",
        "---\nstarted_at: x\n# owner is the team\nowner: core\n---\n",
        {"started_at": None},
        "---\n# owner is the team\nowner: core\n---\n",
    ),
    (
        "removing an absent key changes nothing",
        "---\ntitle: x\n---\n",
        {"started_at": None},
        "---\ntitle: x\n---\n",
    ),
    (
        "CRLF preserved, also on appended lines",
        "---\r\ntitle: x\r\nstatus: not_started\r\n---\r\nbody\r\n",
        {"status": "ready", "pr": "7"},
        '---\r\ntitle: x\r\nstatus: ready\r\npr: "7"\r\n---\r\nbody\r\n',
    ),
    (
        "CRLF key without a value",
        "---\r\ntitle: x\r\nstatus:\r\n---\r\n",
        READY,
        "---\r\ntitle: x\r\nstatus: ready\r\n---\r\n",
    ),
    (
        "no final newline after the body",
        "---\ntitle: x\nstatus: ready\n---\nlast line",
        {"status": "completed", "completed_at": "2026-01-02"},
        '---\ntitle: x\nstatus: completed\ncompleted_at: "2026-01-02"\n---\nlast line',
    ),
    (
        "no final newline after the closing delimiter",
        "---\ntitle: x\n---",
        READY,
        "---\ntitle: x\nstatus: ready\n---",
    ),
    (
        "body untouched, even when it looks like frontmatter",
        "---\ntitle: x\nstatus: not_started\n---\nstatus: not_started\n---\n<<<<<<< not a marker here\n",
        READY,
        "---\ntitle: x\nstatus: ready\n---\nstatus: not_started\n---\n<<<<<<< not a marker here\n",
    ),
    ("BOM kept", "\ufeff---\nstatus: not_started\n---\n", READY, "\ufeff---\nstatus: ready\n---\n"),
    (
        "values that need quotes get them",
        "---\ntitle: x\ncompleted_by: someone\n---\n",
        {"completed_by": "@alice", "completed_at": "2026-01-02", "pr": "yes"},
        '---\ntitle: x\ncompleted_by: "@alice"\ncompleted_at: "2026-01-02"\npr: "yes"\n---\n',
    ),
    (
        "single quotes kept for a value with a quote",
        "---\ncompleted_by: 'x'\n---\n",
        {"completed_by": "o'neil"},
        "---\ncompleted_by: 'o''neil'\n---\n",
    ),
    (
        "flow list with a quoted '#' replaced whole, comment kept",
        '---\nlabels: [a, "b #c"]  # labels\n---\n',
        {"labels": "z"},
        "---\nlabels: z  # labels\n---\n",
    ),
    (
        "block list at column 0 with a comment inside",
        "---\nclaimed_by:\n- a\n# inside\n- b\nstatus: ready\n---\n",
        {"claimed_by": None},
        "---\nstatus: ready\n---\n",
    ),
    ("same value: same text", "---\nstatus: ready  # ok\n---\n", READY, "---\nstatus: ready  # ok\n---\n"),
    ("nothing to do", "---\nstatus: ready\n---\n", {}, "---\nstatus: ready\n---\n"),
]


@pytest.mark.parametrize(("before", "updates", "after"), [c[1:] for c in EDITS], ids=[c[0] for c in EDITS])
def test_set_keys(tmp_path: Path, before: str, updates: dict[str, Any], after: str) -> None:
    path = tmp_path / "task.md"
    path.write_bytes(before.encode())
    result = set_keys(path.read_bytes().decode(), updates)
    path.write_bytes(result.encode())
    assert path.read_bytes() == after.encode()


# (id, text, updates, message fragment)
REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    ("no frontmatter", "# title\n", READY, "no frontmatter"),
    ("unclosed frontmatter", "---\ntitle: x\n", READY, "never closed"),
    ("invalid YAML", "---\ntitle: [x\n---\n", READY, "not valid YAML"),
    ("duplicate key", "---\nstatus: ready\nstatus: completed\n---\n", READY, "duplicate key 'status'"),
    ("not a mapping", "---\n- a\n---\n", READY, "not 'key: value' lines"),
    (
        "anchor used elsewhere",
        "---\nstatus: &s ready\nnext: *s\n---\n",
        {"status": "completed"},
        "break its YAML",
    ),
    ("flow mapping header", "---\n{status: ready}\n---\n", {"status": "completed"}, "break its YAML"),
    (
        "recursive alias",
        "---\nstatus: ready\nx: &a [*a]\n---\n",
        {"status": "completed"},
        "not valid YAML (line 3: alias *a is inside the value it names",
    ),
    (
        "a key YAML reads as true",
        "---\non: push\n---\n",
        READY,
        "(line 2: key `on` reads as true; quote it: 'on':)",
    ),
    ("a bad !!int", "---\nn: !!int x\n---\n", READY, "(line 2: `x` is not an integer"),
    ("an integer beyond 64 bits", "---\nn: 18446744073709551616\n---\n", READY, "does not fit in 64 bits"),
]


@pytest.mark.parametrize(
    ("text", "updates", "fragment"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_set_keys_refuses(text: str, updates: dict[str, Any], fragment: str) -> None:
    with pytest.raises(TaskFileError) as caught:
        set_keys(text, updates)
    assert fragment in str(caught.value)


KEY_LINES_FILE = "---\na: 1  # one\nl:\n  - x\n  # between\n  - y\n# after l\n'q k': |\n  # text\n---\n"


@pytest.mark.parametrize(
    ("key", "lines"),
    [
        ("a", ["a: 1  # one\n"]),
        ("l", ["l:\n", "  - x\n", "  # between\n", "  - y\n"]),
        ("q k", ["'q k': |\n", "  # text\n"]),
        ("missing", None),
    ],
)
def test_key_lines_are_the_key_and_its_value_without_the_comment_after(
    key: str, lines: list[str] | None
) -> None:
    split = frontmatter.split(KEY_LINES_FILE)
    found = frontmatter.key_lines(split, key)
    assert (None if found is None else split.lines[found.start : found.stop]) == lines


# (value, quote style of the old value, rendered)
SCALARS: list[tuple[object, str, str]] = [
    ("ready", "", "ready"),
    ("ready", "'", "'ready'"),
    ("ready", '"', '"ready"'),
    ("alice@example.com", "", "alice@example.com"),
    ("https://example.com/pr/1", "", "https://example.com/pr/1"),
    ("@alice", "", '"@alice"'),
    ("2026-01-02", "", '"2026-01-02"'),
    ("123", "", '"123"'),
    ("yes", "", '"yes"'),
    ("y", "", '"y"'),
    ("null", "", '"null"'),
    ("a: b", "", '"a: b"'),
    ("a #b", "", '"a #b"'),
    (" padded", "", '" padded"'),
    ("", "", '""'),
    ("line\nbreak", "'", '"line\\nbreak"'),
    ("tab\there", "'", '"tab\\there"'),
    ("x\x7fy", "", '"x\\x7fy"'),
    ("a\u2028b", "", '"a\\Lb"'),
    ("José", "", "José"),
    ("it's", "'", "'it''s'"),
    (42, "", "42"),
    (True, "", "true"),
    (1e100, "", "1.0e+100"),
    (float("inf"), "", ".inf"),
    (None, "", "null"),
]


@pytest.mark.parametrize(("value", "quote", "rendered"), SCALARS)
def test_render_scalar(value: object, quote: str, rendered: str) -> None:
    assert render_scalar(value, quote) == rendered
    assert yaml.safe_load(f"k: {rendered}") == {"k": value}


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["", "'", '"']))
def test_render_scalar_reads_back(value: str, quote: str) -> None:
    rendered = render_scalar(value, quote)
    assert "\n" not in rendered
    assert yaml.safe_load(f"k: {rendered}  # c") == {"k": value}
    assert frontmatter.load_yaml(f"k: {rendered}") == {"k": value}


# --- property: edits change only their own lines --------------------------------------

KEY_POOL = [
    "title",
    "status",
    "priority",
    "owner",
    "depends_on",
    "labels",
    "completed_by",
    "completed_at",
    "pr",
    "started_at",
    "claimed_by",
    "worker",
    "notes",
    "estimate",
    "x-ref",
]
SAFE_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("éß中😀")
LINE_TEXT = st.text(SAFE_CHARS, min_size=1, max_size=20).filter(lambda s: s.strip() != "")
# Text a double-quoted scalar may hold unescaped: no controls, no YAML line breaks, no BOM.
QUOTABLE = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="\ufeff"), max_size=20
)
COMMENT = st.one_of(st.just(""), LINE_TEXT.map(lambda s: "  # " + s))


@dataclass(frozen=True)
class Block:
    """Lines of a generated header: a key's lines (key set) or comment/blank lines."""

    key: str | None
    lines: tuple[str, ...]
    comment: str = ""  # the trailing comment on the key line
    style: str = ""  # "'" or '"' for a single-line quoted value


def _plain_word(text: str) -> bool:
    try:
        return bool(yaml.safe_load(text) == text)
    except yaml.YAMLError:
        return False


PLAIN = st.from_regex(r"[a-z][a-z0-9 _./-]{0,14}[a-z0-9]", fullmatch=True).filter(_plain_word)
FLOW_ITEM = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True).filter(_plain_word),
    LINE_TEXT.map(lambda s: json.dumps(s, ensure_ascii=False)),
)


@st.composite
def key_block(draw: st.DrawFn, key: str, nl: str) -> Block:
    comment = draw(COMMENT)
    style = draw(st.sampled_from(["plain", "single", "double", "null", "number", "flow", "list", "literal"]))
    if style == "plain":
        return Block(key, (f"{key}: {draw(PLAIN)}{comment}{nl}",), comment)
    if style == "single":
        value = draw(LINE_TEXT).replace("'", "''")
        return Block(key, (f"{key}: '{value}'{comment}{nl}",), comment, "'")
    if style == "double":
        return Block(
            key, (f"{key}: {json.dumps(draw(QUOTABLE), ensure_ascii=False)}{comment}{nl}",), comment, '"'
        )
    if style == "null":
        return Block(key, (f"{key}:{comment}{nl}",), comment)
    if style == "number":
        return Block(key, (f"{key}: {draw(st.integers(-(10**6), 10**6))}{comment}{nl}",), comment)
    if style == "flow":
        items = draw(st.lists(FLOW_ITEM, max_size=4))
        return Block(key, (f"{key}: [{', '.join(items)}]{comment}{nl}",), comment)
    if style == "list":
        return Block(key, (f"{key}:{comment}{nl}", *draw(_list_lines(nl))), comment)
    return Block(key, (f"{key}: |{comment}{nl}", *draw(_literal_lines(nl))), comment, "|")


@st.composite
def _list_lines(draw: st.DrawFn, nl: str) -> list[str]:
    indent = draw(st.sampled_from(["", "  "]))
    items = draw(st.lists(FLOW_ITEM, min_size=1, max_size=4))
    lines: list[str] = []
    for number, item in enumerate(items):
        if number and draw(st.booleans()):  # comments and blank lines between items only
            lines.append(draw(st.sampled_from([nl, f"{indent}# {draw(LINE_TEXT)}{nl}", f"# c{nl}"])))
        lines.append(f"{indent}- {item}{nl}")
    return lines


@st.composite
def _literal_lines(draw: st.DrawFn, nl: str) -> list[str]:
    texts = draw(st.lists(st.one_of(LINE_TEXT, LINE_TEXT.map(lambda s: "# " + s)), min_size=1, max_size=4))
    lines: list[str] = []
    for number, text in enumerate(texts):
        if number and draw(st.booleans()):
            lines.append(nl)
        lines.append(f"  {text.strip()}{nl}")
    return lines


@st.composite
def filler(draw: st.DrawFn, nl: str, after_literal: bool) -> Block:
    # An indented '# ...' right after a block scalar is part of its text, not a comment.
    kind = draw(st.sampled_from(["comment", "blank"] if after_literal else ["comment", "indented", "blank"]))
    if kind == "blank":
        return Block(None, (nl,))
    prefix = "  # " if kind == "indented" else "# "
    return Block(None, (f"{prefix}{draw(LINE_TEXT)}{nl}",))


@dataclass(frozen=True)
class File:
    """A generated task file and what it is made of."""

    bom: str
    nl: str
    blocks: tuple[Block, ...]
    close: str  # the closing delimiter line
    body: str

    @property
    def text(self) -> str:
        header = "".join(line for block in self.blocks for line in block.lines)
        return f"{self.bom}---{self.nl}{header}{self.close}{self.body}"


REMOVED_KEYS = ("started_at", "claimed_by", "worker")  # what the migrate edit removes


def _literal_may_reach_here(blocks: list[Block]) -> bool:
    """True when a block scalar above could take in an indented comment placed here, now or
    once the keys in between are removed. set_keys refuses that edit (an indented comment
    would join the text above) rather than delete or move the comment, so files like it
    are not generated."""
    for block in reversed(blocks):
        if block.style == "|":
            return True
        if block.key is None and block.lines[0].strip():  # a comment at column 0 ends the scalar
            return False
        if block.key is not None and block.key not in REMOVED_KEYS:
            return False
    return False


@st.composite
def task_files(draw: st.DrawFn) -> File:
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    keys = draw(st.lists(st.sampled_from(KEY_POOL), unique=True, max_size=8))
    blocks: list[Block] = []
    for key in [*keys, None]:
        after_literal = _literal_may_reach_here(blocks)
        blocks.extend(draw(st.lists(filler(nl, after_literal), max_size=2)))
        if key is not None:
            blocks.append(draw(key_block(key, nl)))
    body = draw(st.text(max_size=80) | st.sampled_from(["", "---\n", "## Plan\r\n\r\n- x", "x\n---"]))
    close = "---" if body == "" and draw(st.booleans()) else f"---{nl}"
    return File(draw(st.sampled_from(["", "\ufeff"])), nl, tuple(blocks), close, body)


EDIT_VALUES = st.one_of(st.text(max_size=30), st.sampled_from(["2026-01-02", "@bob", "yes", "007", "a: b"]))


@st.composite
def edits(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(["ready", "complete", "migrate"]))
    if kind == "ready":
        return dict(READY)
    if kind == "migrate":
        return {"status": "ready", "started_at": None, "claimed_by": None, "worker": None}
    pr = draw(st.one_of(EDIT_VALUES, st.integers(min_value=1, max_value=10**9)))
    return {
        "status": "completed",
        "completed_by": draw(EDIT_VALUES),
        "completed_at": draw(EDIT_VALUES),
        "pr": pr,
    }


def _expected_mapping(file: File) -> dict[str, Any]:
    """Each key's value, read from its own lines alone."""
    found: dict[str, Any] = {}
    for block in file.blocks:
        if block.key is not None:
            found.update(frontmatter.load_yaml("".join(block.lines)))
    return found


def _expected_lines(file: File, updates: dict[str, object]) -> list[str | tuple[str, Block | None]]:
    """The header lines after the edit: kept lines as they were, (key, old block) for edited ones."""
    expected: list[str | tuple[str, Block | None]] = []
    present = {block.key for block in file.blocks}
    for block in file.blocks:
        if block.key in updates:
            if updates[block.key] is not None:
                expected.append((block.key, block))
        else:
            expected.extend(block.lines)
    expected.extend((key, None) for key, value in updates.items() if key not in present and value is not None)
    return expected


def _check_edited_line(line: str, key: str, old: Block | None, value: object, nl: str) -> None:
    assert line.startswith(f"{key}:"), line
    assert line.endswith(nl) and not line.endswith("\r\r\n"), line
    if old is not None and old.comment:
        assert line.endswith(old.comment + nl), line
    if old is not None and old.style == '"' and isinstance(value, str):
        assert line.removeprefix(f"{key}: ").startswith('"'), line


def _header_lines(result: str, file: File) -> list[str]:
    assert result.startswith(f"{file.bom}---{file.nl}")
    assert result.endswith(file.close + file.body)
    inner = result[len(file.bom) + 3 + len(file.nl) : len(result) - len(file.close) - len(file.body)]
    return [line + "\n" for line in inner.split("\n")[:-1]]  # the header always ends with a newline


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_files(), edits())
def test_edits_change_only_their_own_lines(file: File, updates: dict[str, object]) -> None:
    before = _expected_mapping(file)
    assert (frontmatter.load_yaml(frontmatter.split(file.text).header) or {}) == before  # a sane generator

    result = set_keys(file.text, updates)

    lines = _header_lines(result, file)  # also: body and delimiters byte-identical
    expected = _expected_lines(file, updates)
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected, strict=True):
        if isinstance(want, str):
            assert line == want
        else:
            _check_edited_line(line, want[0], want[1], updates[want[0]], file.nl)
    after = {k: v for k, v in before.items() if k not in updates}
    after.update({k: v for k, v in updates.items() if v is not None})
    assert (frontmatter.load_yaml(frontmatter.split(result).header) or {}) == after
    assert {
        k: (yaml.safe_load(frontmatter.split(result).header) or {})[k] for k in after if k in updates
    } == {k: v for k, v in updates.items() if v is not None}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_files(), st.sampled_from([EDIT_VALUES]).flatmap(lambda s: s))
def test_ready_then_complete_equals_complete(file: File, by: str) -> None:
    complete = {"status": "completed", "completed_by": by, "completed_at": "2026-01-02", "pr": 9}
    assert set_keys(set_keys(file.text, READY), complete) == set_keys(file.text, complete)
