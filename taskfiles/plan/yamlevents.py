"""libyaml's events into JSON-shaped data, within bounds: how yamlsafe reads every text
the fast path (``fastyaml``) declines, and the one source of its errors and their lines.

libyaml (PyYAML's C extension) always reads the text into events: PyYAML's
pure-Python parser accepts and rejects different inputs than libyaml, and a file
must not be valid on one machine and broken on the next.

The data is built from those events here, with the plain-scalar rules of
``scalars`` (PyYAML's YAML 1.1 rules, dates and times kept as the text people wrote).
It builds only what JSON holds: mappings with text keys, lists, text, booleans, null,
floats and integers within 64 bits; never bytes, sets or a cycle. Anything else is a
YamlError naming the line and saying what to write instead.

Bounds are checked as the events arrive, before anything big is built, so an alias
bomb or a run of brackets costs milliseconds: collections nest at most MAX_DEPTH
levels (aliases counted expanded), and aliases repeat at most MAX_ALIAS_NODES
values and MAX_ALIAS_CHARS characters of text in all (what JSON output would write
out again for each alias).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from ..errors import ConfigError
from .scalars import (
    BOOL,
    BOOLS,
    FLOAT,
    INT,
    INT_MAX,
    INT_MIN,
    MAP,
    MERGE,
    NULL,
    RESOLVERS,
    SEQ,
    STR,
    TAG,
    TIMESTAMP,
    VALUE,
    float_of,
    int_of,
)
from .yamltypes import (
    MAX_ALIAS_CHARS,
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    NO_LIBYAML,
    Document,
    YamlError,
    short_tag,
    shown,
)

_libyaml: Any
try:
    import yaml._yaml as _libyaml
except ImportError:  # PyYAML built without libyaml: load() says how to fix that
    _libyaml = None

_UNSUPPORTED = frozenset(TAG + name for name in ("binary", "set", "omap", "pairs"))


def load(text: str, first_line: int = 1) -> Document:
    """Read ``text``, whose first line is numbered ``first_line`` in every line reported.

    Raises YamlError for anything a task file may not hold, ConfigError without libyaml.
    """
    if _libyaml is None:
        raise ConfigError(NO_LIBYAML)
    reader = _Reader(text, first_line)
    try:
        return reader.document()
    except yaml.YAMLError as exc:
        raise YamlError(reader.error_line(exc), reader.error_message(exc)) from exc


@dataclass(frozen=True)
class _Anchor:
    value: Any
    line: int
    nodes: int = 0  # values built under it, itself included, aliases expanded
    chars: int = 0  # characters of text under it, aliases expanded
    height: int = 0  # collection levels under it, itself included
    done: bool = True  # False while its own value is still being read


class _Reader:
    """Builds one document from libyaml's events, checking every rule as they arrive.

    Events are typed ``Any``: the stubs make each attribute optional, and the event
    classes are told apart by ``type(event) is ...`` (the hot path of a cold load).
    """

    def __init__(self, text: str, first_line: int) -> None:
        self._parser = _libyaml.CParser(text)
        self._text = text
        self._first_line = first_line
        self._counted = (0, 0)  # (index, newlines before it) of the last line lookup
        self._anchors: dict[str, _Anchor] = {}
        self._nodes = self._chars = 0  # built so far, aliases expanded
        self._alias_nodes = self._alias_chars = 0  # what aliases repeated
        self._deepest = 0  # the deepest collection level reached (reset inside anchors)
        self._key_lines: dict[str, int] = {}  # of the top-level mapping, the one mapping at depth 1

    def document(self) -> Document:
        parser = self._parser
        try:
            parser.get_event()  # stream start
            if parser.check_event(StreamEndEvent):
                return Document(None)
            parser.get_event()  # document start
            value = self._node(parser.get_event(), 1)
            parser.get_event()  # document end
            if not parser.check_event(StreamEndEvent):
                message = "a second YAML document ('---' or '...' inside the frontmatter); remove it"
                raise self._error(parser.get_event(), message)
            return Document(value, self._key_lines)
        finally:
            parser.dispose()

    # -- nodes ----------------------------------------------------------------------------------

    def _node(self, event: Any, depth: int) -> Any:
        """The value ``event`` starts; a collection there would be at level ``depth``."""
        kind = type(event)
        if kind is AliasEvent:
            return self._alias(event, depth)
        if event.anchor is not None:
            return self._anchored(event, depth)
        if kind is ScalarEvent:
            return self._scalar(event)
        return self._collection(event, depth)

    def _collection(self, event: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self._error(event, f"values nest deeper than {MAX_DEPTH} levels; flatten this value")
        self._deepest = max(self._deepest, depth)
        self._nodes += 1
        if type(event) is SequenceStartEvent:
            self._check_tag(event, SEQ, "a list")
            return self._sequence(depth)
        self._check_tag(event, MAP, "a mapping")
        return self._mapping(depth)

    def _sequence(self, depth: int) -> list[Any]:
        parser = self._parser
        items = []
        event = parser.get_event()
        while type(event) is not SequenceEndEvent:
            items.append(self._node(event, depth + 1))
            event = parser.get_event()
        return items

    def _mapping(self, depth: int) -> dict[str, Any]:
        parser = self._parser
        result: dict[str, Any] = {}
        marks: dict[str, Any] = {}  # key -> where it was written
        merged: list[dict[str, Any]] = []
        merge_mark = None
        event: Any = parser.get_event()
        while type(event) is not MappingEndEvent:
            key = self._key(event, depth)
            value = self._node(parser.get_event(), depth + 1)
            if key is None:
                merged.extend(self._merged(value, event))
                merge_mark = merge_mark or event.start_mark
            elif key in marks:
                first = self._line(marks[key].index)
                message = f"duplicate key '{shown(key)}' (first on line {first}); delete one of them"
                raise self._error(event, message)
            else:
                marks[key] = event.start_mark
                result[key] = value
            event = parser.get_event()
        if merged:
            result = _merge(merged, result)
        if depth == 1:
            self._key_lines = self._lines_of(marks, result, merge_mark)
        return result

    def _lines_of(self, marks: dict[str, Any], result: dict[str, Any], merge: Any) -> dict[str, int]:
        """Each top-level key's line, counted in file order; a merged key's is its '<<' line."""
        lines = {key: self._line(mark.index) for key, mark in marks.items()}
        if merge is not None:
            merge_line = self._line(merge.index)
            for key in result:
                lines.setdefault(key, merge_line)
        return lines

    def _key(self, event: Any, depth: int) -> str | None:
        """A key's text; None for the merge key '<<'."""
        kind = type(event)
        if kind is ScalarEvent:
            tag = event.tag
            if tag == MERGE or (tag is None and event.implicit[0] and event.value == "<<"):
                return None
            key = self._node(event, depth + 1)
            if type(key) is str:
                return key
            raise self._error(event, _key_problem(event.value, tag, key))
        if kind is AliasEvent:
            key = self._alias(event, depth + 1)
            if type(key) is str:
                return key
            raise self._error(
                event, f"key *{shown(event.anchor)} is {_kind(key)}, not text; write the key out"
            )
        what = "a list" if kind is SequenceStartEvent else "a mapping"
        raise self._error(event, f"a key is {what}; keys must be text: write a name before the ':'")

    def _merged(self, value: Any, event: Any) -> list[dict[str, Any]]:
        """What '<<: value' merges, in the order PyYAML applies it (later ones win)."""
        if type(value) is dict:
            return [value]
        if type(value) is list and all(type(item) is dict for item in value):
            return value[::-1]  # the first mapping listed wins
        message = "'<<' merges mappings: write '<<: *anchor' or '<<: [*a, *b]', or quote the key"
        raise self._error(event, message)

    # -- anchors and aliases --------------------------------------------------------------------

    def _anchored(self, event: Any, depth: int) -> Any:
        name = event.anchor
        line = self._line(event.start_mark.index)
        if name in self._anchors:
            first = self._anchors[name].line
            raise self._error(
                event, f"anchor &{shown(name)} is defined twice (first on line {first}); rename one"
            )
        self._anchors[name] = _Anchor(None, line, done=False)
        nodes, chars, deepest = self._nodes, self._chars, self._deepest
        self._deepest = depth - 1
        value = self._scalar(event) if type(event) is ScalarEvent else self._collection(event, depth)
        height = self._deepest - (depth - 1)
        self._deepest = max(deepest, self._deepest)
        self._anchors[name] = _Anchor(value, line, self._nodes - nodes, self._chars - chars, height)
        return value

    def _alias(self, event: Any, depth: int) -> Any:
        name = event.anchor
        anchor = self._anchors.get(name)
        if anchor is None:
            raise self._error(
                event, f"alias *{shown(name)} has no anchor &{shown(name)} before it; define it first"
            )
        if not anchor.done:
            message = (
                f"alias *{shown(name)} is inside the value it names (anchored on line {anchor.line}), "
                "a cycle JSON cannot hold; write the value out"
            )
            raise self._error(event, message)
        self._alias_nodes += anchor.nodes
        self._alias_chars += anchor.chars
        if self._alias_nodes > MAX_ALIAS_NODES or self._alias_chars > MAX_ALIAS_CHARS:
            message = (
                f"aliases repeat more than {MAX_ALIAS_NODES} values or {MAX_ALIAS_CHARS} characters "
                "in all (an alias bomb?); write the values out or use fewer aliases"
            )
            raise self._error(event, message)
        reached = depth - 1 + anchor.height
        if reached > MAX_DEPTH:
            raise self._error(
                event, f"alias *{shown(name)} nests values deeper than {MAX_DEPTH} levels; flatten them"
            )
        self._deepest = max(self._deepest, reached)
        self._nodes += anchor.nodes
        self._chars += anchor.chars
        return anchor.value

    # -- scalars --------------------------------------------------------------------------------

    def _scalar(self, event: Any) -> Any:
        text: str = event.value
        self._nodes += 1
        self._chars += len(text)
        tag = event.tag
        if tag is not None and tag != "!":
            return self._typed(event, tag, text)
        if event.implicit[0]:  # plain: what it reads as depends on how it looks
            for resolved, pattern in RESOLVERS.get(text[:1], ()):
                if pattern.match(text):
                    return self._typed(event, resolved, text)
        return text

    def _typed(self, event: Any, tag: str, text: str) -> Any:
        if tag in (STR, TIMESTAMP, VALUE):
            return text
        if tag == NULL:
            return None
        if tag == BOOL:
            found = BOOLS.get(text.lower())
            if found is None:
                written = shown(text) or "''"
                raise self._error(event, f"`{written}` is not a boolean; write true or false")
            return found
        if tag in (INT, FLOAT):
            return self._number(event, tag, text)
        if tag == MERGE:
            raise self._error(event, "'<<' merges mappings and can only be a key; quote it to mean the text")
        if tag in _UNSUPPORTED:
            raise self._error(event, f"tag {short_tag(tag)} is not supported in task files; write plain text")
        if tag in (SEQ, MAP):
            raise self._error(event, f"tag {short_tag(tag)} does not fit a single value; remove it")
        raise self._error(event, f"tag {shown(short_tag(tag))} is not supported in task files; remove it")

    def _number(self, event: Any, tag: str, text: str) -> int | float:
        number = int_of(text) if tag == INT else float_of(text)
        written = shown(text) or "''"
        if number is None:
            if event.tag is None:
                raise self._error(
                    event, f"`{written}` reads as a number but is not one; quote it: '{written}'"
                )
            kind = "an integer" if tag == INT else "a number"
            raise self._error(event, f"`{written}` is not {kind}; fix it or remove the {short_tag(tag)} tag")
        if isinstance(number, int) and not INT_MIN <= number <= INT_MAX:
            fix = f"quote it: '{written}'" if event.tag is None else f"remove the {short_tag(tag)} tag"
            raise self._error(event, f"`{written}` does not fit in 64 bits; to keep it as text {fix}")
        return number

    # -- tags, lines and errors -----------------------------------------------------------------

    def _check_tag(self, event: Any, expected: str, what: str) -> None:
        tag = event.tag
        if tag is None or tag == "!" or tag == expected:
            return
        if tag in _UNSUPPORTED:
            raise self._error(event, f"tag {short_tag(tag)} is not supported in task files; remove it")
        raise self._error(event, f"tag {shown(short_tag(tag))} does not fit {what}; remove it")

    def _line(self, index: int) -> int:
        """The line of a character index, counting "\\n" only (as editors and git do);
        lookups mostly go forward, so each counts on from the last one."""
        start, newlines = self._counted if index >= self._counted[0] else (0, 0)
        newlines += self._text.count("\n", start, index)
        self._counted = (index, newlines)
        return self._first_line + newlines

    def _error(self, event: Any, message: str) -> YamlError:
        return YamlError(self._line(event.start_mark.index), message)

    def error_line(self, exc: yaml.YAMLError) -> int:
        """The line of one of libyaml's own errors."""
        if isinstance(exc, yaml.reader.ReaderError):
            # libyaml reports this position in bytes; find the character instead.
            found = self._text.find(chr(exc.character)) if isinstance(exc.character, int) else -1
            return self._line(max(found, 0))
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        return self._line(mark.index) if mark is not None else self._first_line

    def error_message(self, exc: yaml.YAMLError) -> str:
        """One of libyaml's own errors on one line, saying where an unfinished construct began."""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "maximum nesting depth" in problem:  # libyaml's own limit (1000), met while reading ahead
            return f"values nest deeper than {MAX_DEPTH} levels; flatten this value"
        context = getattr(exc, "context", None)
        context_mark = getattr(exc, "context_mark", None)
        if context and context_mark is not None:
            started = self._line(context_mark.index)
            if started != self.error_line(exc):
                context = f"{context} on line {started}"
        detail = f"{context}, {problem}" if context else problem
        return f"invalid YAML ({shown(detail, 300)}); check quoting and indentation"


def _merge(merged: list[dict[str, Any]], own: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for mapping in merged:
        result.update(mapping)
    result.update(own)
    return result


def _key_problem(text: str, tag: str | None, key: object) -> str:
    written = shown(text)
    if tag is not None:
        return f"key `{written}` is tagged {short_tag(tag)}; keys must be text: remove the tag"
    if written == "":
        return "a key is empty (it reads as null); write a name before the ':'"
    return f"key `{written}` reads as {_reads_as(key)}; quote it: '{written}':"


def _reads_as(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"the number {value}"


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "null" if value is None else "a boolean" if isinstance(value, bool) else "a number"
