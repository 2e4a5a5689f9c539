"""``task mcp``: the task manager for AI agents over the Model Context Protocol.

A few tools are the contract (``tasks``, ``task``, ``next``, ``report``, ``finish``,
``create``, ``status``; ``--tools all`` adds the rest of the CLI's runtime and durable
commands), and resources mirror them (``task://{slug}``, ``task://status``,
``task://ready``) with change notifications from the registry's change feed, for the
clients that use them. Every tool calls the library function its CLI command calls:
no rule lives here.

Owns: the workspace a request acts in (``workspace``: the folder the server runs in, or
the client's root), the JSON each tool and resource returns (``views``), the agent's
claim-to-finish flow (``work``), the tool table (``tools``), the change feed
(``feed``), the MCP server itself (``server``) and its HTTP transport (``http``).

May import: the low floor, ``plan``, ``registry``, ``state``, ``status``, ``claims``,
``dispatch`` (worktrees and prompts, as the cycle makes them) and ``serve.security``
(the token and host rules of ``task serve``). The ``mcp`` SDK (the ``mcp`` extra) is
imported only by this package's modules, never at ``import taskfiles.mcp``, so a
missing SDK is one clear error (``require_sdk``) and other commands never pay for it.
"""

from __future__ import annotations

from ..errors import ConfigError

EXTRA_HINT = "install the MCP extra: pip install 'taskfiles[mcp]'"


def require_sdk() -> None:
    """ConfigError naming the extra when the ``mcp`` SDK (2.x) is not installed."""
    try:
        from mcp.server.lowlevel import Server  # noqa: F401
    except ImportError:
        raise ConfigError(f"task mcp needs the MCP Python SDK 2.x: {EXTRA_HINT}") from None
