"""The ``registry.json`` document: one entry per line, checksummed, read lazily.

The file is plain JSON, laid out so that each entry is one line::

    {"version":1,"seq":42,"updated_at":"2025-11-22T03:15:00.000000Z","crc":3735928559,
    "leases":{"fix-login":3,"add-search":1},
    "entries":{
    "fix-login":{"slug":"fix-login","state":"released","lease":3,...},
    "add-search":{"slug":"add-search","state":"running","lease":1,...}
    }}

Every write rewrites the whole file (so a crash leaves the old or the new one),
but parsing and rendering 1,000 entries on every write would cost more than the
write itself. So ``crc`` (CRC-32 of everything after the first line) proves the
file is exactly as a writer rendered it; then only the entries a transaction
touches are found and parsed, and a write splices the changed lines into the
old bytes. A file whose checksum is missing or wrong (say, edited by hand) is
read whole by ``json.loads``: if it is valid JSON it is used and rewritten in
this layout, and if not it is reported, never overwritten.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .journal import Transaction, changes_entry, patch
from .records import STATES
from .transaction import Applied

VERSION = 2  # 2: the head names the journal bytes it covers (1 had no journal; still read)
_OPEN = b',\n"entries":{'
_CLOSE = b"\n}}\n"
_LINE = re.compile(rb'\n"([A-Za-z0-9][A-Za-z0-9._-]*)":\{')  # slugs are check_slug-valid
_Row = dict[str, Any]
_RELEASED = b',"state":"released",'  # how the writer renders a released entry's state


class DocumentError(ValueError):
    """The bytes are not a registry document (the message says why)."""


class Rows(Mapping[str, _Row]):
    """Entry rows: lines of a checksummed file parsed on first use, under changes made since.

    Rows are shared with the codec's cache: never mutate one.
    """

    def __init__(
        self,
        changes: Mapping[str, _Row | None] | None = None,
        raw: bytes = b"",
        body: tuple[int, int] = (0, 0),
        cache: dict[bytes, _Row] | None = None,
    ) -> None:
        self.changes = dict(changes or {})  # slug -> row; None: removed
        self.raw, self.body = raw, body  # body: the entry lines' region of raw
        self._cache = cache if cache is not None else {}
        self._spans: dict[str, tuple[int, int] | None] = {}
        self._indexed = not raw

    def overlaid(self, changes: Mapping[str, _Row | None]) -> Rows:
        """These rows with ``changes`` on top (same file bytes)."""
        rows = Rows({**self.changes, **changes}, self.raw, self.body, self._cache)
        rows._spans, rows._indexed = self._spans, self._indexed  # the bytes did not change
        return rows

    def span(self, slug: str) -> tuple[int, int] | None:
        """Where ``slug``'s line is in the file bytes (None: not there)."""
        if slug not in self._spans and not self._indexed:
            if len(self._spans) >= 4:
                self._index()  # many lookups (claim_first): one scan beats many finds
            else:
                self._spans[slug] = self._find(slug)
        return self._spans.get(slug)

    def _find(self, slug: str) -> tuple[int, int] | None:
        at = self.raw.find(b'\n"' + slug.encode() + b'":{', self.body[0], self.body[1])
        if at < 0:
            return None
        end = self.raw.find(b"\n", at + 1, self.body[1] + 1)
        end = end - 1 if self.raw[end - 1] == ord(",") else end
        return at + 1, end

    def _index(self) -> None:
        starts = [(m.group(1).decode(), m.start() + 1) for m in _LINE.finditer(self.raw, *self.body)]
        ends = [start - 2 for _, start in starts[1:]] + [self.body[1]] * bool(starts)
        self._spans = {slug: (start, end) for (slug, start), end in zip(starts, ends, strict=True)}
        self._indexed = True

    def line(self, slug: str) -> bytes | None:
        """The line of ``slug`` in the file bytes, if it is there unchanged."""
        span = None if slug in self.changes else self.span(slug)
        return self.raw[span[0] : span[1]] if span else None

    def __getitem__(self, slug: str) -> _Row:
        if slug in self.changes:
            row = self.changes[slug]
            if row is None:
                raise KeyError(slug)
            return row
        line = self.line(slug)
        if line is None:
            raise KeyError(slug)
        row = self._cache.get(line)
        if row is None:
            row = self._cache[line] = _parse_line(slug, line)
        return row

    def released(self, slug: str) -> bool:
        """Whether ``slug``'s entry is released, read from its line without parsing it when the
        file is in the checksummed layout (the writer renders ``"state":"released"`` as is)."""
        if slug in self.changes:
            row = self.changes[slug]
            return row is not None and row.get("state") == "released"
        line = self.line(slug)
        if line is not None:
            return _RELEASED in line
        return self[slug].get("state") == "released"

    def unreleased(self) -> Iterator[str]:
        """The slugs of the entries that are not released, in ``iter`` order: ``released`` for
        each, in one pass over the lines (a registry keeps thousands of released entries)."""
        if not self._indexed:
            self._index()
        raw, changes = self.raw, self.changes
        for slug, span in self._spans.items():
            if slug not in changes and span is not None:
                if raw.find(_RELEASED, *span) < 0:  # released(), without copying the line
                    yield slug
            elif slug in self and not self.released(slug):
                yield slug
        for slug in changes:
            if slug not in self._spans and slug in self and not self.released(slug):
                yield slug

    def __contains__(self, slug: object) -> bool:
        if not isinstance(slug, str):
            return False
        if slug in self.changes:
            return self.changes[slug] is not None
        return self.span(slug) is not None

    def __iter__(self) -> Iterator[str]:
        if not self._indexed:
            self._index()
        for slug in self._spans:
            if self.changes.get(slug, True) is not None:
                yield slug
        yield from (s for s, row in self.changes.items() if row is not None and s not in self._spans)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class Document:
    """A parsed registry."""

    seq: int = 0
    updated_at: str | None = None
    leases: dict[str, int] = field(default_factory=dict)
    rows: Rows = field(default_factory=Rows)
    leases_line: bytes | None = None  # the leases as they are in the file, while unchanged
    journal: int | None = None  # the bytes of events.jsonl this snapshot covers (None: unknown)

    def applied(self, change: Applied, seq: int, stamp: str) -> Document:
        """A new document with ``change`` written in, at transaction ``seq``."""
        return self._with(change.rows, change.leases, seq, stamp)

    def replayed(self, transactions: Sequence[Transaction]) -> Document:
        """A new document with journal ``transactions`` (those after ``seq``, in order) replayed."""
        rows: dict[str, _Row | None] = {}
        leases: dict[str, int] = {}
        seq, stamp = self.seq, self.updated_at
        for txn in transactions:
            if txn.seq <= seq:
                continue
            seq, stamp = txn.seq, txn.time or stamp
            for change in txn.changes:
                slug = change.get("slug")
                if not isinstance(slug, str) or not changes_entry(change):
                    continue  # registry-wide events (repair) and event-only changes change no entry
                if change.get("removed"):
                    rows[slug] = None
                else:
                    old = rows[slug] if slug in rows else self.rows.get(slug)
                    rows[slug] = patch(old, change)
                lease = (rows[slug] or change).get("lease")
                if isinstance(lease, int):
                    leases[slug] = max(leases.get(slug, self.leases.get(slug, 0)), lease)
        if seq == self.seq:
            return self
        return self._with(rows, leases, seq, stamp)

    def _with(
        self, rows: Mapping[str, _Row | None], leases: Mapping[str, int], seq: int, stamp: str | None
    ) -> Document:
        raised = {slug: lease for slug, lease in leases.items() if self.leases.get(slug) != lease}
        merged = {**self.leases, **raised} if raised else self.leases  # most writes raise none
        kept = None if raised else self.leases_line
        overlaid = self.rows.overlaid(rows)
        return replace(self, seq=seq, updated_at=stamp, rows=overlaid, leases=merged, leases_line=kept)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Codec:
    """Parses and renders documents, remembering rows and the last file it saw."""

    def __init__(self) -> None:
        self._cache: dict[bytes, _Row] = {}  # entry line -> row
        self._leases: tuple[bytes, dict[str, int]] = (b"", {})
        self._last: tuple[bytes, Document] = (b"", Document())

    def parse(self, data: bytes) -> Document:
        """The document in ``data``; DocumentError when it is not one."""
        last, doc = self._last
        if data == last:
            return doc
        if len(self._cache) > 4096:
            self._cache = {}
        doc = self._parse_checked(data) or _parse_whole(data)
        self._last = (data, doc)
        return doc

    def _parse_checked(self, data: bytes) -> Document | None:
        first = data.find(b"\n")
        try:
            head = json.loads(data[: first - 1] + b"}") if first > 0 else None
        except ValueError:
            return None
        crc = head.get("crc") if isinstance(head, dict) else None
        if not isinstance(crc, int) or zlib.crc32(memoryview(data)[first + 1 :]) != crc:
            return None
        assert isinstance(head, dict)
        opening = data.find(_OPEN, first)
        leases = self._parse_leases(data[first + 1 : opening])
        rows = Rows(None, data, (opening + len(_OPEN), len(data) - len(_CLOSE)), self._cache)
        return _document(head, leases, rows, data[first + 1 : opening])

    def _parse_leases(self, line: bytes) -> dict[str, int]:
        if line != self._leases[0]:
            obj = json.loads(b"{" + line + b"}")
            self._leases = (line, _checked_leases(obj.get("leases")))
        return self._leases[1]

    def render(self, doc: Document) -> bytes:
        """The bytes of ``doc`` in the checksummed one-entry-per-line layout."""
        if len(self._cache) > 4 * 4096:  # rendered lines are remembered too: keep it bounded
            self._cache = {}
        rows = doc.rows
        leases = doc.leases_line or b'"leases":' + _dumps(doc.leases)
        removed = any(row is None for row in rows.changes.values())
        lines = self._splice(rows) if rows.raw and not removed else self._lines(rows)
        rest = [leases, _OPEN, *lines, _CLOSE]
        crc = 0
        for piece in rest:
            crc = zlib.crc32(piece, crc)
        head = _dumps(
            {"version": VERSION, "seq": doc.seq, "updated_at": doc.updated_at}
            | {"journal": doc.journal, "crc": crc}
        )
        data = b"".join([head[:-1], b",\n", *rest])
        self._leases = (leases, doc.leases)
        # Remember the new bytes as a fresh document (not an overlay on the old bytes,
        # which would grow with every write this process makes).
        body = (len(head) + 1 + len(leases) + len(_OPEN), len(data) - len(_CLOSE))
        fresh = Rows(None, data, body, self._cache)
        self._last = (data, replace(doc, rows=fresh, leases_line=leases))
        return data

    def _line(self, slug: str, row: _Row) -> bytes:
        line = _dumps(slug) + b":" + _dumps(row)
        self._cache[line] = row
        return line

    def _splice(self, rows: Rows) -> list[bytes | memoryview]:
        """The old entry lines with changed ones replaced and new ones appended (no removals)."""
        raw, (pos, end) = memoryview(rows.raw), rows.body
        spans = {slug: rows.span(slug) for slug in rows.changes}
        replaced = sorted((span, slug) for slug, span in spans.items() if span is not None)
        pieces: list[bytes | memoryview] = []
        for (start, stop), slug in replaced:
            pieces += [raw[pos:start], self._line(slug, rows[slug])]
            pos = stop
        pieces.append(raw[pos:end])
        filled = end > rows.body[0]
        for slug in (s for s, span in spans.items() if span is None):
            pieces += [b",\n" if filled else b"\n", self._line(slug, rows[slug])]
            filled = True
        return pieces

    def _lines(self, rows: Rows) -> list[bytes | memoryview]:
        """Every entry line, rendering only the changed ones."""
        pieces: list[bytes | memoryview] = []
        for slug in rows:
            line = rows.line(slug)
            pieces += [
                b",\n" if pieces else b"\n",
                line if line is not None else self._line(slug, rows[slug]),
            ]
        return pieces


def _parse_line(slug: str, line: bytes) -> _Row:
    obj = json.loads(b"{" + line + b"}")
    row = obj.get(slug) if len(obj) == 1 else None
    _check_row(slug, row)
    return row  # type: ignore[return-value]


def _parse_whole(data: bytes) -> Document:
    try:
        obj = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise DocumentError(f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("entries"), dict):
        raise DocumentError("not a registry document (no 'entries' object)")
    rows = obj["entries"]
    for slug, row in rows.items():
        _check_row(slug, row)
    return _document(obj, _checked_leases(obj.get("leases", {})), Rows(rows), None)


def _document(
    head: dict[str, Any], leases: dict[str, int], rows: Rows, leases_line: bytes | None
) -> Document:
    if head.get("version") not in (1, VERSION):
        raise DocumentError(f"version {head.get('version')!r} is not {VERSION}; a newer taskfiles wrote it")
    seq = head.get("seq", 0)
    if not _is_int(seq):
        raise DocumentError("'seq' must be a whole number")
    journal = head.get("journal")
    covered = journal if isinstance(journal, int) and _is_int(journal) and journal >= 0 else None
    return Document(seq, head.get("updated_at"), leases, rows, leases_line, covered)


def _checked_leases(leases: Any) -> dict[str, int]:
    if not isinstance(leases, dict) or not all(_is_int(v) for v in leases.values()):
        raise DocumentError("'leases' must map slugs to whole numbers")
    return leases


def _check_row(slug: str, row: Any) -> None:
    # Cheap checks only: a row is fully read (RegistryEntry.from_dict) when it is used.
    if not isinstance(row, dict) or row.get("slug") != slug:
        raise DocumentError(f"entry {slug!r} is not an entry object for that slug")
    if row.get("state") not in STATES or not _is_int(row.get("lease")):
        raise DocumentError(f"entry {slug!r} has no valid state and lease")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
