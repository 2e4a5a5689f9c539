"""``task serve``: the live status page, its JSON API and the operator's actions.

Reads the one observation (``status.observe``) through a cached ``Board``,
renders it with Jinja2 (autoescaped), and pushes changes seen by one watcher per
process to every browser over server-sent events.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
