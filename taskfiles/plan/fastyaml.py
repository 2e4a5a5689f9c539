"""The frontmatter almost every task file has, read without libyaml or importing yaml.

What it reads: top-level ``key: value`` lines, each key a plain name at the start of
its line, each value a one-line scalar (plain; single-quoted; double-quoted without a
backslash), a one-line flow list of such scalars (``[a, 'b c']``) or a block list of
them (``- a`` lines, all at one indent), and comment and blank lines anywhere. Plain
scalars mean what PyYAML makes of them (``scalars.plain_tag``). ``read_file`` reads a
whole task file whose frontmatter is that, between two lines that are exactly ``---``.

Everything else is declined, never guessed: ``read`` returns None and yamlsafe has
libyaml read the text (``yamlevents``), which also reports every error with its line,
so anything that would be an error (a duplicate key, a key that reads as a boolean, an
integer past 64 bits, ``a: b: c``) is declined too. So are tabs, carriage returns and
every character libyaml refuses or treats as a line break, anchors, aliases, tags,
block scalars, multi-line scalars and flow lists, nested collections and empty
documents. tests/test_fastyaml.py generates documents from this grammar and near misses
of it and checks that whatever this reads, libyaml reads the same, types included (and
that read_file cuts a file where frontmatter.split does).
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

from .scalars import BOOL, BOOLS, FLOAT, INT, INT_MAX, INT_MIN, NULL, STR, VALUE, float_of, int_of, plain_tag

# Only "\n" breaks lines, the only blank is " ": anything outside YAML's printable set, or
# that libyaml takes for a break (\r, \x85, \u2028, \u2029), a tab, or a BOM is declined
# (the set is written out: its complement takes ~3 ms to compile at every start).
_UNUSUAL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
# A plain scalar in block context, on one line: it starts with no indicator ('-' only
# before a non-blank), holds no ': ' and no ' #', and ends before any trailing blanks.
# Quantifiers are possessive: the longest match is the only one that can fit, and none
# backtracks, so a line that is not in the grammar fails in linear time.
_PLAIN = r"(?:[^ \n\-?:,\[\]{}#&*!|>'\"%@`]|-(?=[^ \n]))(?:[^ \n:]++|:(?=[^ \n])|[ ]++(?=[^ \n#]))*+"
# The same inside a flow list, where ',[]{}' end it; ':' is declined there altogether.
_FLOW_PLAIN = (
    r"(?:[^ \n\-?:,\[\]{}#&*!|>'\"%@`]|-(?=[^ \n,\[\]{}]))(?:[^ \n:,\[\]{}]++|[ ]++(?=[^ \n#,\[\]{}:]))*+"
)


def _scalar_pattern(plain: str, group: str = "(") -> str:
    """A plain, single-quoted or double-quoted scalar, each in its own group (quotes kept,
    so an empty quoted scalar is told from none: findall gives '' for a group not matched);
    ``group="(?:"`` for no groups."""
    return rf"""(?:{group}{plain})|{group}'(?:[^'\n]++|'')*+')|{group}"[^"\\\n]*+"))"""


_FLOW_ITEM = _scalar_pattern(_FLOW_PLAIN)
_ANY_FLOW_ITEM = _scalar_pattern(_FLOW_PLAIN, "(?:")
_FLOW = rf"\[[ ]*(?:{_ANY_FLOW_ITEM}(?:[ ]*,[ ]*{_ANY_FLOW_ITEM})*[ ]*)?\]"
# One line of the grammar, its groups (key, dash, plain, single, double, flow): a key line
# (``key:``, maybe a value), a list item (``- value``), a blank or comment line (neither,
# and no value), or more of a multi-line value (a value alone: declined). A key longer
# than 1024 characters is an error in libyaml: names stay far below that.
_LINE = re.compile(
    rf"(?:([A-Za-z_][A-Za-z0-9_.-]{{0,127}})[ ]*:|([ ]*-))?"
    rf"(?:[ ]+(?:{_scalar_pattern(_PLAIN)}|({_FLOW})))?(?:(?:^|[ ]+)\#.*|[ ]*)"
)
_FLOW_ITEMS = re.compile(_FLOW_ITEM)
_DECLINED = object()  # a scalar the fast path does not read (an error, or a merge key)
_OPENING, _CLOSING = "---\n", "\n---\n"  # a file's first line; its header's last '\n' and closing line
_KEY, _OPEN, _ITEM, _BLANK = "key", "open", "item", "blank"  # what a line is


class File(NamedTuple):
    """A task file read by the fast path: its frontmatter, and its body."""

    meta: dict[str, Any]
    key_lines: dict[str, int]  # numbered as in the file
    body: str
    body_line: int


def read_file(text: str) -> File | None:
    """A whole task file whose frontmatter is in the grammar and between two lines that are
    exactly ``---``; None for anything else (a BOM, '...', a delimiter with trailing blanks),
    which frontmatter.split and yamlsafe.load read as before.

    No line of the grammar is a delimiter line, so when every line up to the first exact
    ``---`` line is in the grammar, that line is where frontmatter.split closes too; the
    file is never cut into lines beyond it (tests/test_fastyaml.py checks both agree).
    """
    if not text.startswith(_OPENING):
        return None
    close = text.find(_CLOSING, len(_OPENING) - 1)  # the '\n' ending the '---' line after the header
    if close == -1:
        if not text.endswith(_CLOSING[:-1]):
            return None
        close = len(text) - len(_CLOSING) + 1  # the closing line is the last, with no '\n'
    header = text[len(_OPENING) : close + 1]
    found = read(header, 2)
    if found is None:
        return None
    return File(found[0], found[1], text[close + len(_CLOSING) :], header.count("\n") + 3)


def read(text: str, first_line: int = 1) -> tuple[dict[str, Any], dict[str, int]] | None:
    """The top-level mapping of ``text`` and each key's line (its first line numbered
    ``first_line``), or None when ``text`` is not in the fast path's grammar."""
    result: dict[str, Any] = {}
    lines: dict[str, int] = {}
    open_key = ""  # the last key when written with no value: a list may follow it
    items: list[Any] = []
    indent = ""  # the dash of its first item: the others are indented alike
    for number, line in enumerate(text.split("\n"), first_line):
        parsed = _line(line)
        if parsed is None:
            return None
        kind, name, value = parsed
        if kind == _ITEM:
            if not open_key or (indent and name != indent):
                return None
            if not indent:
                indent, result[open_key] = name, items
            items.append(value)
        elif kind != _BLANK:
            if name in result:  # a duplicate key: an error for libyaml to report
                return None
            result[name], lines[name] = list(value) if type(value) is tuple else value, number
            open_key, items, indent = (name, [], "") if kind == _OPEN else ("", items, indent)
    return (result, lines) if result else None


@functools.lru_cache(maxsize=4096)  # lines repeat across files: 'status: ready', '  - bug'
def _line(line: str) -> tuple[str, str, Any] | None:
    """What one line is: (KEY, key, value), (OPEN, key, None), (ITEM, its indent and
    dash, value) or (BLANK, "", None); None when it is not in the grammar. A flow list
    is a tuple here, so that what is cached cannot be changed."""
    match = _LINE.fullmatch(line)
    if match is None or _UNUSUAL.search(line):
        return None
    key, dash, plain, single, double, flow = match.groups()
    if key is not None and plain_tag(key) != STR:  # 'on:', 'null:': for libyaml to report
        return None
    if flow is not None:
        value: Any = tuple(_scalar(*item) for item in _FLOW_ITEMS.findall(flow))
        if _DECLINED in value or dash is not None:  # a list in a list
            return None
    elif plain is not None or single is not None or double is not None:
        value = _scalar(plain or "", single or "", double or "")
    elif key is not None:
        return _OPEN, key, None
    else:  # nothing, or a '-' with nothing: a null item
        return None if dash is not None else (_BLANK, "", None)
    if value is _DECLINED:
        return None
    if key is not None:
        return _KEY, key, value
    return None if dash is None else (_ITEM, dash, value)  # a value alone: a multi-line scalar


def _scalar(plain: str, single: str, double: str) -> Any:
    """The value of a scalar as written: plain ones resolved as PyYAML does."""
    if not plain:
        return double[1:-1] if double else single[1:-1].replace("''", "'")
    tag = plain_tag(plain)
    if tag in (STR, VALUE):
        return plain
    if tag == NULL:
        return None
    if tag == BOOL:
        return BOOLS[plain.lower()]
    if tag == INT:
        number = int_of(plain)
        return number if number is not None and INT_MIN <= number <= INT_MAX else _DECLINED
    if tag == FLOAT:
        real = float_of(plain)
        return _DECLINED if real is None else real
    return _DECLINED  # '<<', the merge key, as a value
