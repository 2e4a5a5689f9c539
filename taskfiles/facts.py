"""Runtime facts (note, progress, blocker, evidence, artifact) on any known task.

A fact about a task that was never claimed, or whose entry gc removed, is still worth
keeping: the registry records it as an event alone (``transaction.EventOnly``), since
an entry needs a lease and only a claim issues one. The registry does not read task
files, so whether a slug names a task at all is asked here, of the plan: a task file
with that slug in the working tree or at the base ref.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .errors import NotFoundError

if TYPE_CHECKING:
    from .config import Config
    from .registry import Registry, RegistryEntry

T = TypeVar("T", bound="RegistryEntry | None")
E = TypeVar("E")


def record(
    config: Config, registry: Registry, slug: str, lease: int | None, fact: Callable[[Registry], T]
) -> T:
    """Run ``fact`` (one of the registry's fact writes) for ``slug``.

    A task with an entry needs no task file (an orphaned entry still takes remarks), and a
    write with a lease is fenced by the registry (a lease for a slug with no entry is
    NotFoundError there). A write with neither is accepted only for a known task;
    NotFoundError with the closest slug otherwise.
    """
    if lease is None and registry.find(slug) is None:
        from .plan import query  # the plan (~5 ms of imports) only for a slug without an entry

        query.locate(config, slug)
    return fact(registry)


def on_entry(config: Config, registry: Registry, slug: str, write: Callable[[Registry], E]) -> E:
    """Run an operator's ``write`` (retry, review, stop, park, unpark, release) on ``slug``'s
    entry. Without one, the NotFoundError says which of two things it is: no task by that
    name (with the closest slug), or a task that was never claimed, which has no attempt
    to act on."""
    try:
        return write(registry)
    except NotFoundError:
        if registry.find(slug) is not None:
            raise
        from .plan import query

        query.locate(config, slug)
        raise NotFoundError(
            f"'{slug}' was never claimed (or gc removed its entry), so there is no attempt to act on; "
            f"the heartbeat dispatches it once it is ready (task ready {slug})"
        ) from None
