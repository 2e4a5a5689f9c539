"""What both task-file YAML readers (``fastyaml`` via ``yamlsafe``, and ``yamlevents``)
return and raise, and the bounds they keep: no import of yaml, and none of either reader.
``yamlsafe`` re-exports every name here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .scalars import TAG

MAX_DEPTH = 64
MAX_ALIAS_NODES = 4096
MAX_ALIAS_CHARS = 65536
NO_LIBYAML = (
    "PyYAML is installed without libyaml, the YAML parser task files are read with (so every "
    "machine reads them alike); reinstall it from a wheel: "
    "pip install --force-reinstall --only-binary pyyaml pyyaml"
)

# What str.splitlines() cuts at: escaped, a message stays on one line.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


@dataclass(frozen=True)
class Document:
    """What a YAML text holds, and the line of each key of its top-level mapping."""

    value: Any  # None for an empty text
    key_lines: dict[str, int] = field(default_factory=dict)


class YamlError(ValueError):
    """The text is not YAML, or not YAML a task file may hold; ``line`` says where."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def shown(text: str, limit: int = 60) -> str:
    """``text`` fit for a one-line message: line breaks escaped, cut after ``limit`` characters."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.translate(_LINE_BREAKS)


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:int`` as people write it: ``!!int``."""
    return "!!" + tag[len(TAG) :] if tag.startswith(TAG) else tag
