"""The slug rule, shared by both layers: a slug names a task file, a log folder and a branch.

It lives on the low floor so that the registry can check slugs without importing
the task-file layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .errors import UsageError

# A slug names a file, a log folder and a git branch (task/<slug>), so it follows the
# strictest of those rules: no "..", no trailing "." and no ".lock" suffix (git refuses them).
SLUG_RE = re.compile(r"(?!.*\.\.)(?!.*\.lock$)[a-z0-9][a-z0-9._-]*(?<!\.)", re.IGNORECASE)


# File stems a tasks folder keeps for other pages (plan/source.py's NOT_TASKS): never a slug
# `task new` picks, or the file it wrote would not be read as a task.
RESERVED = frozenset({"readme", "index"})


def is_slug(text: object) -> bool:
    """True when ``text`` can name a task (and is safe as a folder and branch name)."""
    return isinstance(text, str) and SLUG_RE.fullmatch(text) is not None


def check_slug(slug: str) -> str:
    """``slug`` itself, or UsageError when it cannot name a task."""
    if not is_slug(slug):
        raise UsageError(f"{slug!r} is not a task slug (letters, digits, '.', '_' and '-', e.g. 'fix-login')")
    return slug


def slug_of(path: str) -> str:
    """The slug of a task file is its stem."""
    return path.rsplit("/", 1)[-1].removesuffix(".md")


def slugify(title: str) -> str:
    """A file-name-safe slug from a title: lowercase words joined by '-', at most 60 chars.

    Accented letters keep their base letter ("Ünïcode" -> "unicode"): a slug is ASCII, as
    file and branch names on every platform can hold it.
    """
    import unicodedata  # only task new and migrate make slugs

    plain = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", plain.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > 60:
            break
        slug = candidate
    return slug or (words[0][:60] if words else "task")


MAX_SUFFIX = 9_999  # fix-login, fix-login-2, ... fix-login-9999


def candidates(base: str) -> Iterator[str]:
    """The slugs ``task new`` tries, in order, when ``base`` is taken: ``base``, ``base-2``, ...

    One derivation of the numbering: creating a task and explaining which slugs it passed
    over both walk it.
    """
    if base not in RESERVED:
        yield base
    for n in range(2, MAX_SUFFIX + 1):
        yield f"{base}-{n}"
