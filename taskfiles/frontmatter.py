"""YAML frontmatter at the level of lines: split, load, locate keys, edit minimally.

python-frontmatter (and any YAML round trip) rewrites the whole header when it
saves. Tools that edit task files must change only the lines they mean to
change, so edits here work on the raw lines and leave comments, key order,
quoting, the body and the final newline byte-identical.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import TaskFileError

DELIMITER = "---"
_KEY_LINE = re.compile(r"""^(?:"([^"]+)"|'([^']+)'|([^\s#'"\-?:][^:#]*?|-[^\s:][^:#]*?))[ \t]*:(?:[ \t]|$)""")
_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_./@+][A-Za-z0-9_ ./:@+()-]*")


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loader (libyaml when present) that keeps dates as the strings people wrote."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Split:
    """A file cut into its frontmatter lines and body."""

    lines: list[str]  # every line of the file, endings kept
    close: int  # index of the closing delimiter line
    bom: str

    @property
    def header(self) -> str:
        """The YAML between the delimiters."""
        return "".join(self.lines[1 : self.close])

    @property
    def body(self) -> str:
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


def split(text: str) -> Split:
    """Cut ``text`` into header and body, or raise SplitError naming the line."""
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    lines = text[len(bom) :].splitlines(keepends=True)
    if not lines or lines[0].rstrip() != DELIMITER:
        raise SplitError(1, "no frontmatter: a task file must start with a '---' line")
    for index in range(1, len(lines)):
        if lines[index].rstrip() in (DELIMITER, "..."):
            return Split(lines, index, bom)
    raise SplitError(1, "frontmatter opened on line 1 is never closed; add a '---' line after it")


def load_yaml(header: str) -> Any:
    """Parse the header; yaml.YAMLError propagates for the caller to place."""
    return yaml.load(header, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def key_lines(split_: Split) -> dict[str, int]:
    """Top-level key -> 1-based line number in the file."""
    found: dict[str, int] = {}
    for index in range(1, split_.close):
        key = _key_of(split_.lines[index])
        if key is not None and key not in found:
            found[key] = index + 1
    return found


def _key_of(line: str) -> str | None:
    match = _KEY_LINE.match(line)
    if not match:
        return None
    return next(g for g in match.groups() if g is not None).strip()


def _span(split_: Split, start: int) -> int:
    """Index one past the last line that belongs to the key starting at ``start``."""
    end = start + 1
    last_content = start
    while end < split_.close:
        line = split_.lines[end]
        if not line.strip():
            end += 1
            continue
        if line[0] in " \t" or line.startswith("- ") or line.rstrip() == "-":
            last_content = end
            end += 1
            continue
        break
    return last_content + 1


def _find_key(split_: Split, key: str) -> int | None:
    for index in range(1, split_.close):
        if _key_of(split_.lines[index]) == key:
            return index
    return None


def _value_and_rest(line: str) -> tuple[str, str, str]:
    """Cut ``key: value  # note\\n`` into ("key: ", "value", "  # note\\n")."""
    colon = _KEY_LINE.match(line)
    assert colon is not None
    prefix_end = colon.end()
    body = line[prefix_end:]
    ending = body[len(body.rstrip("\r\n")) :]
    body = body[: len(body) - len(ending)]
    lead = len(body) - len(body.lstrip(" \t"))
    value_start = lead
    value_end = _value_end(body, value_start)
    prefix = line[:prefix_end] + body[:value_start]
    if not prefix.endswith((" ", "\t")):
        prefix += " "
    return prefix, body[value_start:value_end], body[value_end:] + ending


def _value_end(body: str, start: int) -> int:
    if start < len(body) and body[start] in "'\"":
        quote = body[start]
        index = start + 1
        while index < len(body):
            char = body[index]
            if quote == '"' and char == "\\":
                index += 2
                continue
            if char == quote:
                if quote == "'" and body[index + 1 : index + 2] == "'":
                    index += 2
                    continue
                return index + 1
            index += 1
        return len(body)
    comment = re.search(r"[ \t]#", body[start:])
    end = start + comment.start() if comment else len(body)
    return len(body[:end].rstrip(" \t"))


def render_scalar(value: object, quote: str = "") -> str:
    """A YAML scalar for ``value``, in the quoting style ``quote`` when one was used."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if not isinstance(value, str):
        raise TypeError(f"cannot write {type(value).__name__} into frontmatter")
    if quote == "'" and "\n" not in value:
        return "'" + value.replace("'", "''") + "'"
    if quote != '"' and _is_plain_safe(value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _is_plain_safe(value: str) -> bool:
    if not _PLAIN_SAFE.fullmatch(value) or value != value.strip() or ": " in value:
        return False
    # Any YAML reader must get the same string back: no dates, numbers, booleans.
    return yaml.safe_load(value) == value


def set_keys(text: str, updates: Mapping[str, object]) -> str:
    """Set (or, with None, remove) top-level keys, changing only their own lines."""
    if not updates:
        return text
    split_ = split(text)
    lines = list(split_.lines)
    close = split_.close
    ending = _line_ending(lines[close])
    for key, value in updates.items():
        current = Split(lines, close, split_.bom)
        start = _find_key(current, key)
        if start is None:
            if value is not None:
                lines.insert(close, f"{key}: {render_scalar(value)}{ending}")
                close += 1
            continue
        end = _span(current, start)
        new = [] if value is None else [_replace_value(lines[start], value, end - start > 1)]
        lines[start:end] = new
        close += len(new) - (end - start)
    result = split_.bom + "".join(lines)
    _check_edit(text, result, updates)
    return result


def _replace_value(line: str, value: object, multi_line: bool) -> str:
    prefix, old, rest = _value_and_rest(line)
    if multi_line or not old:
        return f"{prefix}{render_scalar(value)}{_line_ending(line)}"
    quote = old[0] if old[0] in "'\"" else ""
    return f"{prefix}{render_scalar(value, quote)}{rest}"


def _line_ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :] or "\n"


def _check_edit(before: str, after: str, updates: Mapping[str, object]) -> None:
    """Refuse an edit whose YAML does not read back as intended (never write a guess)."""
    try:
        old = load_yaml(split(before).header) or {}
        new = load_yaml(split(after).header) or {}
    except yaml.YAMLError as exc:
        raise TaskFileError(f"editing the frontmatter would break its YAML: {exc}") from exc
    expected = {k: v for k, v in old.items() if k not in updates}
    expected.update({k: v for k, v in updates.items() if v is not None})
    if new != expected:
        raise TaskFileError(
            "this frontmatter is too unusual to edit safely by line "
            f"(keys {', '.join(updates)}); edit the file by hand"
        )
