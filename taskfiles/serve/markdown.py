"""Task bodies as HTML: CommonMark with raw HTML off and only safe link schemes.

Task text is written by anyone who can open a pull request, so the body is
treated as hostile: ``<script>`` and every other tag come out escaped, and a
link or image whose URL names a scheme other than http, https or mailto is left
as plain text (``javascript:``, ``data:``, ``vbscript:``, ``file:``, ...).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
# Browsers drop ASCII tabs, newlines and control characters inside a scheme
# ("java\tscript:"), so they are removed before the scheme is read.
_IGNORED = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")


def safe_url(url: str) -> bool:
    """True for relative URLs, fragments and http/https/mailto; False for any other scheme."""
    compact = _IGNORED.sub("", url)
    match = _SCHEME.match(compact)
    if match is None:
        # Relative, unless a colon hides in the first segment: refused, to be safe.
        return ":" not in compact.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return match.group(1).lower() in SAFE_SCHEMES


def _link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    rendered: str = self.renderToken(tokens, idx, options, env)
    return rendered


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = safe_url  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    return md


_MD = _parser()


@lru_cache(maxsize=1024)
def render(text: str) -> Markup:
    """``text`` (markdown) as sanitized HTML, ready to insert into a template."""
    return Markup(_MD.render(text))  # html off and links vetted above
