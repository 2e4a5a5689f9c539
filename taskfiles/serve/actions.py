"""Operator actions from the page or the API, through the registry API and nothing else.

Each is one registry call, made with the acting person as the registry's actor,
so the event it records says who did it. No task file is ever touched.
"""

from __future__ import annotations

from ..errors import UsageError
from ..registry import Registry, RegistryEntry
from .taskview import ACTIONS

DEFAULT_PARK_REASON = "parked from the status page"


def perform(
    registry: Registry, slug: str, action: str, *, reason: str = "", fresh: bool = False
) -> RegistryEntry:
    """Run ``action`` on ``slug``; the registry's errors (ConflictError, NotFoundError) pass through."""
    text = reason.strip()[:500] or None
    if action == "retry":
        return registry.retry(slug, reason=text, fresh=fresh)
    if action == "stop":
        return registry.stop(slug, reason=text)
    if action == "park":
        return registry.park(slug, reason=text or DEFAULT_PARK_REASON)
    if action == "unpark":
        return registry.unpark(slug, reason=text)
    if action == "release":
        return registry.release(slug, reason=text)
    raise UsageError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
