"""Per-task folders (``<root>/<kind>/<slug>/``): logs, prompts, worker output; and their pruning."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path


def prune(
    root: Path, kinds: Iterable[str], slugs: set[str], keep: set[str], cutoff: datetime
) -> tuple[list[str], int]:
    """Remove ``root/<kind>/<slug>`` for ``slugs``, and for slugs not in ``keep`` untouched
    since ``cutoff``; return the folders removed (relative to ``root``) and their bytes."""
    import shutil  # with bz2 and lzma, ~2 ms that every registry command would pay

    removed, size = [], 0
    for kind in kinds:
        folder = root / kind
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.name in keep or not (path.name in slugs or _older(path, cutoff)):
                continue
            size += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
            removed.append(path.relative_to(root).as_posix())
    return removed, size


def _older(path: Path, cutoff: datetime) -> bool:
    newest = max((f.stat().st_mtime for f in path.rglob("*")), default=path.stat().st_mtime)
    return datetime.fromtimestamp(newest).astimezone() < cutoff
