"""The overview's metrics card: ``taskfiles.metrics`` as the page shows it, with two small
bar charts (tasks completed and cost, a bar a day) drawn as inline SVG on the server.

No script draws them (the page's policy allows none inline) and no library is fetched:
each bar is a ``<rect>`` with a ``<title>`` saying its day and number, every label
escaped, the colours set by the stylesheet through class names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from ..metrics import Day, Metrics

HEIGHT = 60  # the tallest bar, in SVG units
BAR = 8  # a bar's width
GAP = 2  # between bars
LABELS = 14  # room below the bars for the first and last day


@dataclass(frozen=True)
class Card:
    """What the metrics section shows: the metrics (None when the registry cannot be read,
    ``error`` says why) and the two charts."""

    metrics: Metrics | None
    error: str | None = None

    @property
    def completed_chart(self) -> Markup:
        """Tasks completed a day over the window."""
        return self._chart(
            "completed", "tasks completed a day", lambda d: d.completed, lambda n: f"{n:g} completed"
        )

    @property
    def cost_chart(self) -> Markup:
        """What the runs that ended each day cost."""
        return self._chart("cost", "cost a day (USD)", lambda d: d.cost_usd, lambda n: f"${n:.2f}")

    def _chart(
        self, name: str, label: str, value: Callable[[Day], float], text: Callable[[float], str]
    ) -> Markup:
        days = self.metrics.per_day if self.metrics else ()
        return bar_chart(name, label, [(d.day, value(d)) for d in days], text)


def bar_chart(
    name: str, label: str, points: Sequence[tuple[str, float]], text: Callable[[float], str]
) -> Markup:
    """An inline SVG bar chart of ``points`` (day, value), one ``rect.bar`` each, scaled to the
    largest value; each bar's ``<title>`` is "day: text(value)"."""
    top = max((v for _, v in points), default=0.0)
    width = max(len(points) * (BAR + GAP), 2 * BAR)
    bars = []
    for index, (day, amount) in enumerate(points):
        tall = round(HEIGHT * amount / top, 1) if top > 0 else 0.0
        x = index * (BAR + GAP)
        bars.append(
            Markup(
                '<g class="day" data-day="{day}" data-value="{value}"><title>{title}</title>'
                '<rect class="bar" x="{x}" y="{y}" width="{w}" height="{h}"></rect></g>'
            ).format(
                day=day,
                value=f"{amount:g}",
                title=f"{day}: {text(amount)}",
                x=x,
                y=HEIGHT - tall,
                w=BAR,
                h=tall,
            )
        )
    axis = Markup("")
    if points:
        axis = Markup(
            '<text class="axis" x="0" y="{y}">{first}</text>'
            '<text class="axis" x="{right}" y="{y}" text-anchor="end">{last}</text>'
        ).format(y=HEIGHT + LABELS - 3, first=points[0][0][5:], last=points[-1][0][5:], right=width)
    total = text(sum(v for _, v in points))
    return Markup(
        '<figure class="chart chart-{name}"><figcaption>{label} <span class="muted">(total {total})</span>'
        "</figcaption>"
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{label}" viewBox="0 0 {w} {h}" '
        'width="{w}" height="{h}" preserveAspectRatio="none">{bars}{axis}</svg></figure>'
    ).format(
        name=name, label=label, total=total, w=width, h=HEIGHT + LABELS, bars=Markup("").join(bars), axis=axis
    )
