"""Task-file YAML: read alike on every machine, into JSON-shaped data, within bounds.

``load`` (a YAML text) and ``read_file`` (a whole task file) are how a task file's YAML
is read. The frontmatter almost every file has (``key: value`` lines of one-line scalars
and lists of them) is read by ``fastyaml`` without libyaml, and without importing yaml
at all; everything else, and every error, is libyaml's events built into data by
``yamlevents``. Both give the same result for what the fast path reads
(tests/test_fastyaml.py), so which one read a file never shows.

libyaml (PyYAML's C extension) is required either way: PyYAML's pure-Python parser
accepts and rejects different inputs than libyaml, and a file must not be valid on one
machine and broken on the next. Without it ``load`` raises ConfigError saying how to
install it (PyYAML's wheels on PyPI carry it).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES

from ..errors import ConfigError
from . import fastyaml
from .scalars import INT_MAX, INT_MIN, TIMESTAMP
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

__all__ = [
    "INT_MAX",  # re-exported from scalars and yamltypes, where they live
    "INT_MIN",
    "MAX_ALIAS_CHARS",
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "NO_LIBYAML",
    "TIMESTAMP",
    "Document",
    "YamlError",
    "has_libyaml",
    "load",
    "read_file",
    "short_tag",
    "shown",
]


def load(text: str, first_line: int = 1) -> Document:
    """Read ``text``, whose first line is numbered ``first_line`` in every line reported.

    Raises YamlError for anything a task file may not hold, ConfigError without libyaml.
    """
    _require_libyaml()
    fast = fastyaml.read(text, first_line)
    if fast is not None:
        return Document(*fast)
    from . import yamlevents  # imports yaml (~10 ms): only for what the fast path declined

    return yamlevents.load(text, first_line)


def read_file(text: str) -> fastyaml.File | None:
    """A whole task file, when the fast path reads it (nearly every file): its frontmatter
    and body without cutting the file into lines. None: frontmatter.split and ``load``
    read it. ConfigError without libyaml, as from ``load``."""
    _require_libyaml()
    return fastyaml.read_file(text)


def _require_libyaml() -> None:
    if not has_libyaml():
        raise ConfigError(NO_LIBYAML)


@functools.cache
def has_libyaml() -> bool:
    """True when PyYAML's libyaml extension is there, found without importing yaml."""
    if "yaml._yaml" in sys.modules:  # imported already, or blocked (None)
        return sys.modules["yaml._yaml"] is not None
    spec = importlib.util.find_spec("yaml")
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    return any(
        os.path.isfile(os.path.join(folder, "_yaml" + suffix))
        for folder in folders
        for suffix in EXTENSION_SUFFIXES
    )
