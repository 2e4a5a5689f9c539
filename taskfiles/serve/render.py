"""The Jinja2 environment: autoescape always on, filters for times, ages and queries.

Only ``markdown.render`` output is marked safe; everything else a template shows
(titles, notes, log lines, errors) is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..registry.records import parse_time
from ..registry.runtimeview import age_seconds
from .overview import staleness

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
FRAGMENT_HEADER = "x-fragment"


def human_age(seconds: float | None) -> str:
    """12 s, 4 min, 3 h, 2 d."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def short_time(stamp: str | None) -> str:
    """``2025-11-22T03:15:00.123456Z`` as ``2025-11-22 03:15:00Z``."""
    if not stamp:
        return "-"
    try:
        return parse_time(stamp).strftime("%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return stamp


def _asset_version() -> str:
    stamps = [int(p.stat().st_mtime) for p in STATIC.iterdir() if p.is_file()]
    return str(max(stamps, default=0))


class Renderer:
    """Renders pages and their live fragments."""

    def __init__(self) -> None:
        env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(time=short_time, human_age=human_age, urlpart=lambda s: quote(str(s), safe=""))
        env.globals.update(age_seconds=age_seconds, staleness=staleness, urlencode=urlencode)
        env.globals["asset_version"] = _asset_version()
        self.env = env

    def page(
        self, request: Request, name: str, context: Mapping[str, Any], *, status: int = 200
    ) -> HTMLResponse:
        """The whole page ``name``, or only its live part ``_name`` when the page asks for it."""
        if request.headers.get(FRAGMENT_HEADER) == "live":
            name = "_" + name
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)

    def text(self, name: str, context: Mapping[str, Any]) -> str:
        """Render ``name`` to a string."""
        return self.env.get_template(name).render(**context)
