"""YAML scalars that every YAML reader reads back as the value written.

Plain style only for words no reader could take for a number, date, boolean or
null (YAML 1.1 or 1.2); single quotes when the file already used them and the
value allows it; double quotes, with escapes, for everything else.
"""

from __future__ import annotations

import math
import re

import yaml

_PLAIN_SAFE = re.compile(r"(?:[^\W\d]|/)[\w ./:@+()-]*")
# Booleans in YAML 1.1 readers other than PyYAML (go-yaml v2, ruamel in 1.1 mode).
_ONE_LETTER_BOOLS = frozenset({"y", "Y", "n", "N"})
# YAML's printable set, less the characters YAML also treats as line breaks (and BOM).
_NEEDS_ESCAPE = re.compile(
    "[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_NAMED_ESCAPES = {
    "\0": "\\0",
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    "\x1b": "\\e",
    "\x85": "\\N",
    "\xa0": "\\_",
    "\u2028": "\\L",
    "\u2029": "\\P",
}


def render_scalar(value: object, quote: str = "") -> str:
    """A YAML scalar for ``value``, in the quoting style ``quote`` ("'" or '"') when one was used."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if not isinstance(value, str):
        raise TypeError(f"cannot write {type(value).__name__} into frontmatter")
    if quote == "'" and not _NEEDS_ESCAPE.search(value):
        return "'" + value.replace("'", "''") + "'"
    if quote != '"' and is_plain_safe(value):
        return value
    return double_quoted(value)


def is_plain_safe(value: str) -> bool:
    """True when ``value`` can be written unquoted and read back as the same string."""
    if not _PLAIN_SAFE.fullmatch(value) or value != value.strip() or value in _ONE_LETTER_BOOLS:
        return False
    try:
        return bool(yaml.safe_load(value) == value)
    except yaml.YAMLError:
        return False


def double_quoted(value: str) -> str:
    """``value`` as a double-quoted YAML scalar, escaping what YAML would not keep."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _NEEDS_ESCAPE.sub(_escape, escaped) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    # YAML 1.1 reads "1e+100" as a string: its floats need a '.' before the exponent.
    return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
