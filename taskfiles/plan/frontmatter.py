"""YAML frontmatter at the level of lines: split, load, locate keys, edit minimally.

python-frontmatter (and any YAML round trip) rewrites the whole header when it
saves. Tools that edit task files must change only the lines they mean to
change, so edits here work on the raw lines and leave comments, key order,
quoting, the body and the final newline byte-identical.

Lines are cut at "\\n" only (keeping "\\r\\n" whole), the way editors and git
number them; ``str.splitlines`` would also cut at form feeds and U+2028.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import TaskFileError
from . import yamlsafe
from .scalars import render_scalar

__all__ = [
    "DELIMITER",
    "HEADER_LINE",
    "Split",
    "SplitError",
    "key_lines",
    "lines_of",
    "load_header",
    "load_yaml",
    "render_scalar",  # re-exported: it lives in scalars.py
    "render_value",
    "set_keys",
    "split",
]

DELIMITER = "---"
HEADER_LINE = 2  # the file line the header starts on, after the opening delimiter
# A top-level key: quoted, or plain (not starting with an indicator), up to the ':'
# that is followed by a space or the end of the line.
_KEY_LINE = re.compile(
    r"""^(?:"(?P<dq>(?:[^"\\\n]|\\.)*)"|'(?P<sq>(?:[^'\n]|'')*)'"""
    r"""|(?P<plain>[^\s#'"?:,\[\]{}&*!|>%@`-][^#\n]*?|-[^\s#][^#\n]*?))[ \t]*:(?=[ \t\r\n]|$)"""
)
_BLOCK_SCALAR = re.compile(r"^(?:[&!]\S*[ \t]+)*[|>][0-9+-]*$")


@dataclass(frozen=True)
class Split:
    """A file cut into its frontmatter lines and body."""

    lines: list[str]  # every line of the file (BOM removed), endings kept
    close: int  # index of the closing delimiter line
    bom: str

    @property
    def header(self) -> str:
        """The YAML between the delimiters."""
        return "".join(self.lines[1 : self.close])

    @property
    def body(self) -> str:
        """Everything after the closing delimiter line, byte for byte."""
        return "".join(self.lines[self.close + 1 :])

    @property
    def body_line(self) -> int:
        """1-based line number where the body starts."""
        return self.close + 2


class SplitError(ValueError):
    """The file has no well-formed frontmatter block; ``line`` says where."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def lines_of(text: str) -> list[str]:
    """``text`` cut after each "\\n", endings kept; joining them gives ``text`` back."""
    lines = text.split("\n")
    last = lines.pop()
    result = [line + "\n" for line in lines]
    if last:
        result.append(last)
    return result


def split(text: str) -> Split:
    """Cut ``text`` into header and body, or raise SplitError naming the line."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    lines = lines_of(text[len(bom) :])
    if not lines or lines[0].rstrip() != DELIMITER:
        raise SplitError(1, "no frontmatter: a task file must start with a '---' line")
    for index in range(1, len(lines)):
        if lines[index].rstrip() in (DELIMITER, "..."):
            return Split(lines, index, bom)
    raise SplitError(1, "frontmatter opened on line 1 is never closed; add a '---' line after it")


def load_header(split_: Split) -> yamlsafe.Document:
    """The header's YAML and its keys' lines, numbered as in the file.

    Raises yamlsafe.YamlError naming the file line.
    """
    return yamlsafe.load(split_.header, HEADER_LINE)


def load_yaml(header: str) -> Any:
    """What a header holds (lines numbered as in its file); raises yamlsafe.YamlError."""
    return yamlsafe.load(header, HEADER_LINE).value


def key_lines(split_: Split, key: str) -> range | None:
    """Where top-level ``key`` is written: the indexes in ``split_.lines`` of its line and its
    value's lines after it (a comment after the value is not its own); None when absent."""
    start = _find_key(split_.lines, split_.close, key)
    return None if start is None else range(start, _span(split_.lines, split_.close, start))


def _key_of(line: str) -> str | None:
    match = _KEY_LINE.match(line)
    if not match:
        return None
    if match["sq"] is not None:
        return match["sq"].replace("''", "'")
    return match["dq"] if match["dq"] is not None else match["plain"].strip()


def _find_key(lines: list[str], close: int, key: str) -> int | None:
    for index in range(1, close):
        if _key_of(lines[index]) == key:
            return index
    return None


def _span(lines: list[str], close: int, start: int) -> int:
    """Index one past the last line that belongs to the key starting at ``start``.

    Blank and comment lines count only when more of the value follows them, so a
    comment after a value stays when the value is replaced. Inside a block scalar
    or an unclosed quoted scalar every indented line is content, even '# ...'.
    """
    literal = _opens_literal(lines[start])
    last = start
    for index in range(start + 1, close):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            continue
        indented = line[0] in " \t"
        if literal and indented:
            last = index
        elif stripped.startswith("#") and not literal:
            continue
        elif indented or stripped == "-" or line.startswith("- "):
            last = index
        else:
            break
    return last + 1


def _opens_literal(line: str) -> bool:
    _, _, value, _ = _cut(line)
    if value[:1] in ("'", '"'):
        return _quoted_end(value, 0) is None
    return bool(_BLOCK_SCALAR.match(value))


def _cut(line: str) -> tuple[str, str, str, str]:
    """Cut a key line into (key part through ':', gap, value, tail: spaces, comment, ending)."""
    match = _KEY_LINE.match(line)
    if match is None:
        raise AssertionError(f"not a key line: {line!r}")
    key_end = match.end()
    content = line.rstrip("\r\n")
    ending = line[len(content) :]
    after = content[key_end:]
    value_start = len(after) - len(after.lstrip(" \t"))
    value_end = _value_end(after, value_start)
    if value_end == value_start:  # no value, maybe a comment: keep it all as the tail
        return line[:key_end], "", "", after + ending
    gap = after[:value_start]
    return line[:key_end], gap, after[value_start:value_end], after[value_end:] + ending


def _value_end(text: str, start: int) -> int:
    """End of the value starting at ``text[start]``: before the comment and trailing blanks."""
    if start < len(text) and text[start] in "'\"":
        return _quoted_end(text, start) or len(text)
    in_flow = text[start : start + 1] in ("[", "{")
    index = start
    while index < len(text):
        char = text[index]
        if char == "#" and (index == start or text[index - 1] in " \t"):
            break
        if in_flow and char in "'\"" and _starts_token(text, index, start):
            index = _quoted_end(text, index) or len(text)
            continue
        index += 1
    return max(start, len(text[:index].rstrip(" \t")))


def _starts_token(text: str, index: int, start: int) -> bool:
    before = text[start:index].rstrip(" \t")
    return not before or before[-1] in "[{,:"


def _quoted_end(text: str, start: int) -> int | None:
    """Index just past the quoted scalar opening at ``start``; None if it is not closed."""
    quote = text[start]
    index = start + 1
    while index < len(text):
        char = text[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and text[index + 1 : index + 2] == "'":
                index += 2
                continue
            return index + 1
        index += 1
    return None


def set_keys(text: str, updates: Mapping[str, object]) -> str:
    """Set (or, with None, remove) top-level keys, changing only their own lines.

    A key that is absent is added just before the closing delimiter. A list value
    (tuple or list of strings) replacing a list keeps the lines of the items that stay:
    items dropped lose their own line (or their place in a one-line ``[a, b]``), items
    added after the others get a line (or a place) of their own. Raises TaskFileError
    when the file has no frontmatter, or when the result would not read back as exactly
    the old keys with ``updates`` applied.
    """
    if not updates:
        return text
    try:
        split_ = split(text)
    except SplitError as exc:
        raise TaskFileError(f"line {exc.line}: {exc}") from exc
    old = _mapping(text, "the frontmatter is not valid YAML ({}); fix it before editing")
    lines = list(split_.lines)
    close = split_.close
    ending = _line_ending(lines[close], lines)
    for key, value in updates.items():
        start = _find_key(lines, close, key)
        if start is None:
            if value is not None:
                lines.insert(close, f"{_render_key(key)}: {render_value(value)}{ending}")
                close += 1
            continue
        end = _span(lines, close, start)
        new = _new_lines(lines[start:end], old.get(key), value)
        lines[start:end] = new
        close += len(new) - (end - start)
    result = split_.bom + "".join(lines)
    _check_edit(old, result, updates)
    return result


def render_value(value: object, quote: str = "") -> str:
    """``render_scalar``, and a list of scalars as a one-line flow list ``[a, "b c"]``."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_scalar(item) for item in value) + "]"
    return render_scalar(value, quote)


def _new_lines(old_lines: list[str], old: object, value: object) -> list[str]:
    """What replaces a key's lines: none (removed), its list edited in place, or one line."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        edited = _list_edit(old_lines, old, list(value))
        if edited is not None:
            return edited
    return [_replace_value(old_lines[0], value, len(old_lines) > 1)]


def _list_edit(old_lines: list[str], old: object, new: list[object]) -> list[str] | None:
    """A list's lines with dropped items taken out and new ones added at its end, or None
    when the edit is not that (a reorder, an emptied list) or the list is laid out some
    other way: then the whole value is written again as one flow list."""
    if not isinstance(old, list) or not old or not new:
        return None
    kept = [item for item in old if item in new]
    if kept != new[: len(kept)]:
        return None
    dropped = [item not in new for item in old]
    added = new[len(kept) :]
    if len(old_lines) == 1:
        return _flow_edit(old_lines[0], dropped, added)
    return _block_edit(old_lines, dropped, added)


def _flow_edit(line: str, dropped: list[bool], added: list[object]) -> list[str] | None:
    """``key: [a, b]  # c`` with items dropped and added; the other items keep their text."""
    key, gap, value, tail = _cut(line)
    tokens = _flow_items(value)
    if tokens is None or len(tokens) != len(dropped):
        return None
    items = [token for token, drop in zip(tokens, dropped, strict=True) if not drop]
    items += [render_scalar(item) for item in added]
    return [f"{key}{gap}[{', '.join(items)}]{tail}"]


def _flow_items(value: str) -> list[str] | None:
    """The item texts of a one-line flow list of scalars, or None for anything else."""
    if not (value.startswith("[") and value.endswith("]")):
        return None
    inner = value[1:-1]
    items: list[str] = []
    token_start = index = 0
    while index < len(inner):
        char = inner[index]
        if char in "'\"" and not inner[token_start:index].strip():
            end = _quoted_end(inner, index)
            if end is None:
                return None
            index = end
            continue
        if char in "[]{}":
            return None  # nested collections are not a task file's lists
        if char == ",":
            items.append(inner[token_start:index].strip())
            token_start = index + 1
        index += 1
    last = inner[token_start:].strip()
    if last:
        items.append(last)
    return items if all(items) else None


def _block_edit(old_lines: list[str], dropped: list[bool], added: list[object]) -> list[str] | None:
    """``key:`` and one ``- item`` line per item (comments and blank lines between them kept),
    the dropped items' lines taken out and a line per added item after the last one."""
    result = [old_lines[0]]
    dash: str | None = None
    items = 0
    for line in old_lines[1:]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            result.append(line)
            continue
        prefix = line[: len(line) - len(line.lstrip(" "))] + "- "
        if not line.startswith(prefix) or (dash is not None and prefix != dash) or items >= len(dropped):
            return None  # an item over several lines, or uneven indents: not one line per item
        dash = prefix
        if not dropped[items]:
            result.append(line)
        items += 1
    if dash is None or items != len(dropped):
        return None
    last = old_lines[-1]
    ending = last[len(last.rstrip("\r\n")) :]
    return result + [f"{dash}{render_scalar(item)}{ending}" for item in added]


def _render_key(key: str) -> str:
    rendered = render_scalar(key)
    if _key_of(f"{rendered}: x") != key:
        raise TaskFileError(f"cannot add key {key!r} to frontmatter; use a plain name like 'due_date'")
    return rendered


def _replace_value(line: str, value: object, multi_line: bool) -> str:
    key, gap, old, tail = _cut(line)
    quote = old[0] if old[:1] in ("'", '"') and not multi_line else ""
    return f"{key}{gap or ' '}{render_value(value, quote)}{tail}"


def _line_ending(line: str, lines: list[str]) -> str:
    """The closing line's ending; if it has none (end of file), the opening line's (which has
    one: the closing line follows it)."""
    own = line[len(line.rstrip("\r\n")) :]
    return own or lines[0][len(lines[0].rstrip("\r\n")) :]


def _check_edit(old: Mapping[str, Any], after: str, updates: Mapping[str, object]) -> None:
    """Refuse an edit whose YAML does not read back as intended (never write a guess)."""
    new = _mapping(after, "editing the frontmatter would break its YAML ({}); edit the file by hand")
    expected = {k: v for k, v in old.items() if k not in updates}
    expected.update({k: _plain(v) for k, v in updates.items() if v is not None})
    if new != expected:
        raise TaskFileError(
            "this frontmatter is too unusual to edit safely by line "
            f"(keys {', '.join(updates)}); edit the file by hand"
        )


def _plain(value: object) -> object:
    """A value as YAML reads it back: a tuple is a list."""
    return list(value) if isinstance(value, tuple) else value


def _mapping(text: str, template: str) -> dict[str, Any]:
    try:
        loaded = load_yaml(split(text).header)
    except yamlsafe.YamlError as exc:
        raise TaskFileError(template.format(f"line {exc.line}: {exc.message}")) from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise TaskFileError("the frontmatter is not 'key: value' lines; fix it before editing")
    return loaded
