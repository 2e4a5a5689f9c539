"""Command-line interface (the only package that imports typer)."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("not wired yet")
