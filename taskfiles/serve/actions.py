"""Operator actions from the page or the API, through the registry API and nothing else.

Each is one registry call, made with the acting person as the registry's actor,
so the event it records says who did it. No task file is ever touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from ..registry import Registry, RegistryEntry
from .taskview import ACTIONS

DEFAULT_PARK_REASON = "parked from the status page"


def text_field(fields: Mapping[str, Any], name: str) -> str:
    """A text field of a form or JSON body ("" when absent); UsageError when it is not text."""
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{name} must be text, not {type(value).__name__}")
    return value


_TRUE, _FALSE = ("1", "on", "true"), ("", "0", "off", "false")


def flag_field(fields: Mapping[str, Any], name: str) -> bool:
    """A yes/no field: a JSON boolean, or a form's ``1``/``on``/``true`` (``0``/``off``/``false``
    or absent: no); UsageError for anything else, so ``"false"`` never reads as yes."""
    value = fields.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise UsageError(f"{name} must be true or false, not {str(value)[:40]!r}")


def perform(
    registry: Registry,
    slug: str,
    action: str,
    *,
    reason: str = "",
    fresh: bool = False,
    instructions: str = "",
) -> RegistryEntry:
    """Run ``action`` on ``slug``; the registry's errors (ConflictError, NotFoundError, and
    UsageError for instructions that are empty where they are needed, or too long) pass through.

    ``instructions`` go to the next attempt's prompt: optional for ``retry``, what to change
    for ``request_changes`` (a task in review).
    """
    text = reason.strip()[:500] or None
    if action == "retry":
        return registry.retry(slug, reason=text, fresh=fresh, instructions=instructions.strip() or None)
    if action == "request_changes":
        return registry.request_changes(slug, instructions=instructions)
    if action == "stop":
        return registry.stop(slug, reason=text)
    if action == "park":
        return registry.park(slug, reason=text or DEFAULT_PARK_REASON)
    if action == "unpark":
        return registry.unpark(slug, reason=text)
    if action == "release":
        return registry.release(slug, reason=text)
    raise UsageError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
