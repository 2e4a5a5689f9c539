"""YAML scalars: what a plain one reads as, and how to write one every reader reads back.

Reading: PyYAML's YAML 1.1 rules for plain scalars (``yes``/``on`` are booleans, ``012``
is octal, ``1:30`` is 90), except that dates and times stay the text people wrote. Both
task-file readers (``fastyaml`` and ``yamlevents``) resolve plain scalars here, without
importing yaml; tests/test_fastyaml.py checks the rules against PyYAML's own.

Writing: plain style only for words no reader could take for a number, date, boolean
or null (YAML 1.1 or 1.2); single quotes when the file already used them and the value
allows it; double quotes, with escapes, for everything else.
"""

from __future__ import annotations

import math
import re

TAG = "tag:yaml.org,2002:"  # what '!!' stands for
STR, INT, FLOAT, BOOL, NULL = (TAG + name for name in ("str", "int", "float", "bool", "null"))
SEQ, MAP, MERGE, VALUE, TIMESTAMP = (TAG + name for name in ("seq", "map", "merge", "value", "timestamp"))
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
# PyYAML's implicit resolvers (yaml/resolver.py), patterns copied verbatim and in its
# order, less timestamps (dates stay text): (tag, pattern, the first characters it applies to).
# The patterns written over several lines are verbose (re.X) as there; the others are not.
_PLAIN_RULES = (
    (
        BOOL,
        r"""^(?:yes|Yes|YES|no|No|NO
                    |true|True|TRUE|false|False|FALSE
                    |on|On|ON|off|Off|OFF)$""",
        "yYnNtTfFoO",
    ),
    (
        FLOAT,
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""",
        "-+0123456789.",
    ),
    (
        INT,
        r"""^(?:[-+]?0b[0-1_]+
                    |[-+]?0[0-7_]+
                    |[-+]?(?:0|[1-9][0-9_]*)
                    |[-+]?0x[0-9a-fA-F_]+
                    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
        "-+0123456789",
    ),
    (MERGE, r"^(?:<<)$", "<"),
    (
        NULL,
        r"""^(?: ~
                    |null|Null|NULL
                    | )$""",
        "~nN",  # and the empty text
    ),
    (VALUE, r"^(?:=)$", "="),
)


def _by_first_character() -> dict[str, tuple[tuple[str, re.Pattern[str]], ...]]:
    table: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {}
    for tag, pattern, firsts in _PLAIN_RULES:
        rule = (tag, re.compile(pattern, re.X if "\n" in pattern else 0))
        for first in [*firsts, ""] if tag == NULL else firsts:
            table[first] = (*table.get(first, ()), rule)
    return table


# First character ("" for the empty text) -> the rules that may match, in PyYAML's order.
RESOLVERS = _by_first_character()


def plain_tag(text: str) -> str:
    """The tag a plain (unquoted, untagged) scalar reads as: STR when no rule matches."""
    for tag, pattern in RESOLVERS.get(text[:1], ()):
        if pattern.match(text):
            return tag
    return STR


def int_of(text: str) -> int | None:
    """PyYAML's YAML 1.1 integer rules (0b, 0x, leading-0 octal, base 60); None if not one."""
    text = text.replace("_", "")
    sign = -1 if text[:1] == "-" else 1
    text = text[1:] if text[:1] in ("-", "+") else text
    if ":" in text:
        base, digits = 60, text
    elif text[:2] in ("0b", "0x"):
        base, digits = (2 if text[1] == "b" else 16), text[2:]
    else:
        base, digits = (8 if text[:1] == "0" and text != "0" else 10), text
    if base != 60 and len(digits.lstrip("0")) > 64:  # more digits than 64 bits take in any base
        return INT_MAX + 1 if digits.isascii() and digits.isalnum() else None
    try:
        return _base60(digits, sign) if base == 60 else sign * int(digits, base)
    except ValueError:
        return None


def _base60(text: str, sign: int) -> int:
    value = 0
    for part in text.split(":"):
        value = value * 60 + int(part)
        if value > INT_MAX + 1:  # out of range already: stop before the number grows huge
            return value
    return sign * value


def float_of(text: str) -> float | None:
    """PyYAML's YAML 1.1 float rules (.inf, .nan, base 60); None if not one."""
    text = text.replace("_", "").lower()
    sign = -1.0 if text[:1] == "-" else 1.0
    text = text[1:] if text[:1] in ("-", "+") else text
    if text in (".inf", ".nan"):
        return sign * math.inf if text == ".inf" else math.nan
    try:
        if ":" not in text:
            return sign * float(text)
        value = 0.0
        for part in text.split(":"):
            value = value * 60 + float(part)
        return sign * value
    except ValueError:
        return None


_PLAIN_SAFE = re.compile(r"(?:[^\W\d]|/)[\w ./:@+()-]*")
# Booleans in YAML 1.1 readers other than PyYAML (go-yaml v2, ruamel in 1.1 mode).
_ONE_LETTER_BOOLS = frozenset({"y", "Y", "n", "N"})
# What is outside YAML's printable set, or YAML also treats as a line break (and BOM):
# C0 and C1 controls, DEL, U+2028/9, surrogates, U+FEFF, U+FFFE/F. Written as the set
# itself: its complement, a class up to U+10FFFF, takes ~3 ms to compile at every start.
_NEEDS_ESCAPE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
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
    import yaml  # only writers pay for it

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
