"""``task serve``: the live status page, its JSON API and operator actions."""

from __future__ import annotations

from typing import Annotated

import click

from .app import RefOption, config, echo, load_repo_config
from .params import App, Option


def register(app: App) -> None:
    """Add ``serve`` to ``app``."""
    app.command("serve")(serve)


def serve(
    ctx: click.Context,
    host: Annotated[str, Option(help="Address to listen on (loopback unless --allow-remote).")] = "127.0.0.1",
    port: Annotated[int, Option(help="Port to listen on, 0..65535 (0: any free port).")] = 8005,
    repo: Annotated[
        str | None,
        Option(
            "--repo",
            metavar="PATH",
            help="The repository to show (default: the root --repo/-C, else the cwd).",
        ),
    ] = None,
    open_browser: Annotated[bool, Option("--open", help="Open the page in a browser once serving.")] = False,
    token: Annotated[
        str | None,
        Option(
            envvar="TASKFILES_SERVE_TOKEN",
            help="Access token every request must carry (Bearer header or login cookie); "
            "prefer $TASKFILES_SERVE_TOKEN, which ps does not show.",
        ),
    ] = None,
    token_name: Annotated[
        str, Option(help="Who the token stands for in the event log (web:<name>@<address>).")
    ] = "token",
    allow_remote: Annotated[
        bool, Option("--allow-remote", help="Allow a non-loopback --host; requires --token.")
    ] = False,
    ref: RefOption = None,
    working_tree: Annotated[
        bool, Option("--working-tree", help="Read task files from the working tree, not the base ref.")
    ] = False,
) -> None:
    """Serve the live status page, the JSON API (/api/...) and operator actions.

    Reads task files like 'task status' (the base ref unless --ref or --working-tree)
    and the same classification; pages update live over server-sent events. Binds to
    127.0.0.1:8005; Ctrl-C stops it. Never writes a task file.
    """
    from ..serve.server import Options, run

    cfg = load_repo_config(repo, "--repo") if repo is not None else config(ctx)
    options = Options(host, port, token, token_name, allow_remote, ref, working_tree)

    def started(url: str) -> None:
        echo(f"serving {cfg.root.as_posix()} at {url} (Ctrl-C to stop)")
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    run(cfg, options, on_started=started)
