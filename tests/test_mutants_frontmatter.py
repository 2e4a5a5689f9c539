"""frontmatter.py's line editor at the edges mutation testing found untested (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest

from taskfiles.errors import TaskFileError
from taskfiles.plan.frontmatter import set_keys

# Each test takes milliseconds; a scanning loop that no longer advances (a mutant of
# _quoted_end, _value_end or _flow_items) fails here in seconds, not at the suite's limit.
pytestmark = [pytest.mark.planning, pytest.mark.timeout(10)]

HEADER = "---\ntitle: x\n---\n"
READY = {"status": "ready"}


@pytest.mark.parametrize(
    "key", [5, 1.5, True, "a\tb", "a\\b"], ids=["int", "float", "bool", "tab", "backslash"]
)
def test_a_key_the_locator_cannot_find_again_is_refused(key: object) -> None:
    # Written, it would read back right once, but the next edit of it could not find
    # its line and would add a second one.
    with pytest.raises(TaskFileError, match=r"cannot add key .*use a plain name"):
        set_keys(HEADER, {key: "v"})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("key", "line"),
    [("due date", "due date: v"), ("it's", '"it\'s": v'), ("a: b", '"a: b": v'), ("#a", '"#a": v')],
)
def test_an_added_key_is_found_again_by_the_next_edit(key: str, line: str) -> None:
    added = set_keys(HEADER, {key: "v"})
    assert added == f"---\ntitle: x\n{line}\n---\n"
    assert set_keys(added, {key: "w"}) == f"---\ntitle: x\n{line[:-1]}w\n---\n"
    assert set_keys(added, {key: None}) == HEADER


# (id, text before, updates, text after)
EDITS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "single-quoted value with an escaped quote",
        "---\ntitle: 'it''s'  # c\n---\n",
        {"title": "new"},
        "---\ntitle: 'new'  # c\n---\n",
    ),
    (
        "single-quoted value with an escaped quote, new value with one",
        "---\ntitle: 'it''s'  # c\nstatus: ready\n---\n",
        {"title": "it's new"},
        "---\ntitle: 'it''s new'  # c\nstatus: ready\n---\n",
    ),
    (
        "apostrophe in a flow list, value replaced",
        "---\ntags: [it's, b]  # note\n---\n",
        {"tags": "c"},
        "---\ntags: c  # note\n---\n",
    ),
    (
        "apostrophe in a flow list, items dropped and added",
        "---\ntags: [it's, b]  # note\n---\n",
        {"tags": ["c"]},
        "---\ntags: [c]  # note\n---\n",
    ),
    (
        "apostrophe in a flow list, item kept",
        "---\ntags: [it's, b]  # note\n---\n",
        {"tags": ["it's", "c"]},
        "---\ntags: [it's, c]  # note\n---\n",
    ),
    (
        "apostrophe in a flow mapping",
        "---\ntags: {a: it's}  # note\n---\n",
        {"tags": "c"},
        "---\ntags: c  # note\n---\n",
    ),
    (
        "escaped quote in a flow list item",
        "---\ntags: [b, 'it''s']  # note\n---\n",
        {"tags": ["b"]},
        "---\ntags: [b]  # note\n---\n",
    ),
    (
        "a single-quoted key with an escaped quote is found",
        "---\n'it''s': a\n---\n",
        {"it's": "b"},
        "---\n'it''s': b\n---\n",
    ),
    (
        "the next key starts with a capital letter",
        "---\nstatus: a\nXray: 1\n---\n",
        {"status": "ready"},
        "---\nstatus: ready\nXray: 1\n---\n",
    ),
    (
        "an empty item of a block list at the margin",
        "---\nlabels:\n-\n- a\nstatus: x\n---\n",
        {"labels": "b"},
        "---\nlabels: b\nstatus: x\n---\n",
    ),
    (
        "a single-quoted value over two lines, the last one starting with '#'",
        "---\ntitle: 'a\n  # b'\nstatus: x\n---\n",
        {"title": "new"},
        "---\ntitle: new\nstatus: x\n---\n",
    ),
    (
        "a double-quoted value over two lines, the last one starting with '#'",
        '---\ntitle: "a\n  # b"\nstatus: x\n---\n',
        {"title": "new"},
        "---\ntitle: new\nstatus: x\n---\n",
    ),
    (
        "a value ending in a no-break space (not a YAML blank)",
        "---\nstatus: a\xa0\n---\n",
        {"status": "ready"},
        "---\nstatus: ready\n---\n",
    ),
    ("a value ending in capitals", "---\nowner: MAX\n---\n", {"owner": "bob"}, "---\nowner: bob\n---\n"),
    (
        "a value starting with a capital, then a comment",
        "---\nowner: Xavier  # who\n---\n",
        {"owner": "bob"},
        "---\nowner: bob  # who\n---\n",
    ),
    (
        "'#' in a quoted item of a flow mapping",
        "---\ntags: {a: 'x # y'}  # note\n---\n",
        {"tags": "c"},
        "---\ntags: c  # note\n---\n",
    ),
    (
        "a comment with no blank after its '#'",
        "---\nstatus: a #c\n---\n",
        {"status": "ready"},
        "---\nstatus: ready #c\n---\n",
    ),
    ("'#' inside a plain value", "---\nowner: a# b\n---\n", {"owner": "bob"}, "---\nowner: bob\n---\n"),
    (
        "'#' after a capital inside a plain value",
        "---\nowner: X#1\n---\n",
        {"owner": "bob"},
        "---\nowner: bob\n---\n",
    ),
    (
        "a flow list whose first item starts with a capital, value replaced",
        "---\ntags: [Xa, b]  # note\n---\n",
        {"tags": "c"},
        "---\ntags: c  # note\n---\n",
    ),
    (
        "an apostrophe after a capital in a flow item",
        "---\ntags: [X'a, b]  # note\n---\n",
        {"tags": "d"},
        "---\ntags: d  # note\n---\n",
    ),
    (
        "an apostrophe after a no-break space in a flow item (not a YAML blank)",
        "---\ntags: [a,\xa0'b, c]  # note\n---\n",
        {"tags": "d"},
        "---\ntags: d  # note\n---\n",
    ),
    (
        "a backslash ends a single-quoted value (no escapes there)",
        "---\nowner: 'a\\'  # c\n---\n",
        {"owner": "bob"},
        "---\nowner: 'bob'  # c\n---\n",
    ),
    (
        "an escaped quote ends a double-quoted value",
        '---\nowner: "a\\""  # c\n---\n',
        {"owner": "bob"},
        '---\nowner: "bob"  # c\n---\n',
    ),
    (
        "an escaped backslash ends a double-quoted value",
        '---\nowner: "a\\\\"  # c\n---\n',
        {"owner": "bob"},
        '---\nowner: "bob"  # c\n---\n',
    ),
    (
        "a single-quoted value ending in an escaped quote",
        "---\nowner: 'a'''  # c\n---\n",
        {"owner": "bob"},
        "---\nowner: 'bob'  # c\n---\n",
    ),
    (
        "a list added as a new key",
        "---\ntitle: x\n---\n",
        {"labels": ["a", "b c"]},
        "---\ntitle: x\nlabels: [a, b c]\n---\n",
    ),
    (
        "a flow list reordered",
        "---\nlabels: [a, b]  # n\n---\n",
        {"labels": ["b", "a"]},
        "---\nlabels: [b, a]  # n\n---\n",
    ),
    ("a flow list emptied", "---\nlabels: [a, b]  # n\n---\n", {"labels": []}, "---\nlabels: []  # n\n---\n"),
    (
        "a block list reordered becomes a flow list",
        "---\nlabels:\n  - a\n  - b\nstatus: x\n---\n",
        {"labels": ("b", "a")},
        "---\nlabels: [b, a]\nstatus: x\n---\n",
    ),
    (
        "a flow list keeps the quoting of the first item",
        "---\ntags: ['a', b]  # n\n---\n",
        {"tags": ["a"]},
        "---\ntags: ['a']  # n\n---\n",
    ),
    (
        "a flow list keeps the quoting of the last item",
        "---\ntags: ['a', 'b']  # n\n---\n",
        {"tags": ["b"]},
        "---\ntags: ['b']  # n\n---\n",
    ),
    (
        "a flow item with a comma inside quotes",
        "---\ntags: ['a, b', c]  # n\n---\n",
        {"tags": ["a, b"]},
        "---\ntags: ['a, b']  # n\n---\n",
    ),
    (
        "a flow list without blanks",
        "---\ntags: [a,bc]  # n\n---\n",
        {"tags": ["bc"]},
        "---\ntags: [bc]  # n\n---\n",
    ),
    (
        "a plain flow item that would be written quoted",
        "---\ntags: [X#y, b]  # n\n---\n",
        {"tags": ["X#y"]},
        "---\ntags: [X#y]  # n\n---\n",
    ),
    (
        "an item added to a block list takes the ending of its last line",
        "---\nlabels:\n  - a\r\n  - b\n---\n",
        {"labels": ["a", "b", "c"]},
        "---\nlabels:\n  - a\r\n  - b\n  - c\n---\n",
    ),
    (
        "a key added before a closing line with no ending takes the opening line's",
        "---\r\ntitle: x\n---",
        READY,
        "---\r\ntitle: x\nstatus: ready\r\n---",
    ),
    ("a number replaced by a list", "---\nn: 5\n---\n", {"n": ["a"]}, "---\nn: [a]\n---\n"),
    (
        "a block list with an empty item is written again as a flow list",
        "---\nlabels:\n  -\n  - b\n---\n",
        {"labels": ["b"]},
        "---\nlabels: [b]\n---\n",
    ),
    (
        "a quoted item over two '- ' lines: the list is written again, an item dropped",
        "---\nlabels:\n  - 'a\n  - b'\n  - c\n---\n",
        {"labels": ["a - b"]},
        "---\nlabels: [a - b]\n---\n",
    ),
    (
        "a quoted item over two '- ' lines: the list is written again, an item added",
        "---\nlabels:\n  - 'a\n  - b'\n---\n",
        {"labels": ["a - b", "c"]},
        "---\nlabels: [a - b, c]\n---\n",
    ),
    (
        "an empty quoted value",
        '---\nowner: ""  # c\n---\n',
        {"owner": "bob"},
        '---\nowner: "bob"  # c\n---\n',
    ),
    (
        "a key added takes the closing line's ending, not the opening line's",
        "---\ntitle: x\r\n---\r\nbody\r\n",
        READY,
        "---\ntitle: x\r\nstatus: ready\r\n---\r\nbody\r\n",
    ),
    (
        "an indented comment after a closed quoted value is not part of it",
        "---\ntitle: 'ab'\n  # note\nstatus: x\n---\n",
        {"title": "new"},
        "---\ntitle: 'new'\n  # note\nstatus: x\n---\n",
    ),
]


@pytest.mark.parametrize(("before", "updates", "after"), [c[1:] for c in EDITS], ids=[c[0] for c in EDITS])
def test_set_keys(before: str, updates: dict[str, Any], after: str) -> None:
    assert set_keys(before, updates) == after


# (id, text, updates, the whole message)
REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    ("no frontmatter", "# t\n", READY, "line 1: no frontmatter: a task file must start with a '---' line"),
    (
        "unclosed frontmatter",
        "---\ntitle: x\n",
        READY,
        "line 1: frontmatter opened on line 1 is never closed; add a '---' line after it",
    ),
    (
        "invalid YAML",
        "---\ntitle: [x\n---\n",
        READY,
        "the frontmatter is not valid YAML (line 3: invalid YAML (while parsing a flow sequence on line 2, "
        "did not find expected ',' or ']'); check quoting and indentation); fix it before editing",
    ),
    (
        "not a mapping",
        "---\n- a\n---\n",
        READY,
        "the frontmatter is not 'key: value' lines; fix it before editing",
    ),
    (
        "an anchor used elsewhere",
        "---\nstatus: &s ready\nnext: *s\n---\n",
        {"status": "completed"},
        "editing the frontmatter would break its YAML (line 3: alias *s has no anchor &s before it; "
        "define it first); edit the file by hand",
    ),
    (
        "a key a merge key sets",
        "---\n<<: {status: ready}\ntitle: x\n---\n",
        {"status": None, "owner": None},
        "this frontmatter is too unusual to edit safely by line (keys status, owner); edit the file by hand",
    ),
]


@pytest.mark.parametrize(
    ("text", "updates", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_set_keys_refuses_saying_why(text: str, updates: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskFileError) as caught:
        set_keys(text, updates)
    assert str(caught.value) == message
