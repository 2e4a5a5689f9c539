"""taskfiles: run a team's work queue out of the git repository.

The library API a program needs, and nothing more::

    import taskfiles

    config = taskfiles.load_config()                     # the repository around the cwd
    tasks = taskfiles.load_tasks(config, "main")         # task files at a ref (None: working tree)
    registry = taskfiles.open_registry(config)           # the runtime registry
    seen = taskfiles.observe(config, registry, now=..., source=taskfiles.planning_source(config))
    for row in seen.attention: ...                       # what needs a human, and why

Names are imported on first use, so ``import taskfiles`` (and the ``task`` command,
which imports this package) pays for none of them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = [
    "Classification",
    "Config",
    "ConfigError",
    "ConflictError",
    "GitError",
    "NotFoundError",
    "Observation",
    "Registry",
    "RegistryEntry",
    "RegistryError",
    "StaleLeaseError",
    "Task",
    "TaskFileError",
    "TaskSet",
    "TaskfilesError",
    "UsageError",
    "ValidationFailed",
    "load_config",
    "load_tasks",
    "observe",
    "open_registry",
    "planning_source",
]

# name -> (module, attribute)
_WHERE = {
    "Classification": ("taskfiles.state", "Classification"),
    "Config": ("taskfiles.config", "Config"),
    "load_config": ("taskfiles.config", "load"),
    "Task": ("taskfiles.plan.taskfile", "Task"),
    "TaskSet": ("taskfiles.plan.source", "TaskSet"),
    "load_tasks": ("taskfiles.plan.source", "load"),
    "Registry": ("taskfiles.registry", "Registry"),
    "RegistryEntry": ("taskfiles.registry", "RegistryEntry"),
    "open_registry": ("taskfiles.registry", "open_registry"),
    "Observation": ("taskfiles.status", "Observation"),
    "observe": ("taskfiles.status", "observe"),
    "planning_source": ("taskfiles.status", "planning_source"),
    **{
        name: ("taskfiles.errors", name)
        for name in (
            "TaskfilesError",
            "UsageError",
            "NotFoundError",
            "ConflictError",
            "StaleLeaseError",
            "TaskFileError",
            "ConfigError",
            "GitError",
            "RegistryError",
            "ValidationFailed",
        )
    },
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module 'taskfiles' has no attribute {name!r}")
    module, attribute = _WHERE[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from .config import Config
    from .config import load as load_config
    from .errors import (
        ConfigError,
        ConflictError,
        GitError,
        NotFoundError,
        RegistryError,
        StaleLeaseError,
        TaskFileError,
        TaskfilesError,
        UsageError,
        ValidationFailed,
    )
    from .plan.source import TaskSet
    from .plan.source import load as load_tasks
    from .plan.taskfile import Task
    from .registry import Registry, RegistryEntry, open_registry
    from .state import Classification
    from .status import Observation, observe, planning_source
