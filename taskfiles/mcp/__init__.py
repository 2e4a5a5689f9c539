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

EXTRA_HINT = (
    "install the MCP extra where taskfiles is installed: pipx install --force 'taskfiles[mcp]', "
    "uv tool install 'taskfiles[mcp]', or pip install 'taskfiles[mcp]'"
)


SDK_MODULES = ("mcp", "mcp_types")


def require_sdk() -> None:
    """ConfigError naming the extra when the ``mcp`` SDK 2.x is not what is installed: absent,
    or the 1.x many other tools pin, which has ``mcp.server.lowlevel`` but not the rest. The
    server's own imports are the test, so every SDK module it uses is checked."""
    try:
        from . import http, server  # noqa: F401
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in SDK_MODULES:
            raise  # one of ours or a core dependency: a bug, not a missing extra
        found = _installed("mcp")
        have = f" (mcp {found} is installed)" if found else ""
        raise ConfigError(f"task mcp needs the MCP Python SDK 2.x{have}: {EXTRA_HINT}") from None


def _installed(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
