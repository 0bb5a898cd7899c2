"""One metric over an asset's versions, drawn as an SVG on the server: a line through one point per version.

Pure layout over (version number, metrics) pairs already fetched (`selectors.version_metric_series`); no
database access and no JavaScript. The SVG is an image with a title and a description; each point is a link
to its version with the value in its accessible name (so the SVG is a named group, not an image: an image's
children are hidden from assistive technology), and the page lists the same values in a table. Every
piece of text goes through `format_html`, so metric names are escaped wherever they come from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from core.web import format_number

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 36  # room for the value labels (left) and version labels (below)
MAX_X_LABELS = 10


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def metric_names(series: list[tuple[int, dict]]) -> list[str]:
    """The numeric metrics present in any of the versions, by name."""
    return sorted(
        {name for _, metrics in series for name, value in (metrics or {}).items() if _is_number(value)}
    )


@dataclass(frozen=True)
class Point:
    number: int
    value: float
    shown: str  # the value as the page shows it (format_number)
    x: float
    y: float


@dataclass(frozen=True)
class Chart:
    metric: str
    points: list[Point]
    svg: SafeString
    skipped: int  # versions in the window without this metric


def _scale(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if low == high:  # a flat line sits in the middle, with a little room either side
        pad = abs(low) * 0.05 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.08
    return low - pad, high + pad


def render(series: list[tuple[int, dict]], metric: str, *, title: str, href: Callable[[int], str]) -> Chart:
    """The chart of `metric` over `series` (oldest first). Versions without the metric are left out."""
    present = [
        (number, metrics[metric]) for number, metrics in series if _is_number((metrics or {}).get(metric))
    ]
    skipped = len(series) - len(present)
    if not present:
        return Chart(metric=metric, points=[], svg=mark_safe(""), skipped=skipped)
    low, high = _scale([float(value) for _, value in present])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / (len(present) - 1) if len(present) > 1 else 0
    points = []
    for index, (number, value) in enumerate(present):
        x = LEFT + (index * step if len(present) > 1 else plot_w / 2)
        y = TOP + plot_h * (1 - (float(value) - low) / (high - low))
        points.append(
            Point(number=number, value=value, shown=format_number(value), x=round(x, 1), y=round(y, 1))
        )
    first, last = present[0][0], present[-1][0]
    description = (
        f"{metric} of versions {first} to {last}: "
        + ", ".join(f"v{point.number} {point.shown}" for point in points)
        + (f". {skipped} version(s) in this range have no {metric}." if skipped else ".")
    )
    line = " ".join(f"{point.x},{point.y}" for point in points)
    every = max(1, -(-len(points) // MAX_X_LABELS))  # label at most MAX_X_LABELS versions below the axis
    x_labels = format_html_join(
        "",
        '<text class="x-label" x="{}" y="{}" text-anchor="middle">v{}</text>',
        (
            (point.x, HEIGHT - BOTTOM + 20, point.number)
            for index, point in enumerate(points)
            if index % every == 0 or index == len(points) - 1
        ),
    )
    y_labels = format_html_join(
        "",
        '<text class="y-label" x="{}" y="{}" text-anchor="end">{}</text>'
        '<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}"></line>',
        (
            (LEFT - 8, round(y + 4, 1), format_number(value), LEFT, round(y, 1), WIDTH - RIGHT, round(y, 1))
            for value, y in (
                (max(p.value for p in points), min(p.y for p in points)),
                (min(p.value for p in points), max(p.y for p in points)),
            )
        ),
    )
    dots = format_html_join(
        "",
        '<a class="point" href="{}" aria-label="v{}: {} {}"><circle cx="{}" cy="{}" r="5">'
        "<title>v{}: {} {}</title></circle></a>",
        ((href(p.number), p.number, metric, p.shown, p.x, p.y, p.number, metric, p.shown) for p in points),
    )
    svg = format_html(
        '<svg class="metric-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="group" '
        'aria-labelledby="chart-title" aria-describedby="chart-desc" data-metric="{}">'
        '<title id="chart-title">{}</title><desc id="chart-desc">{}</desc>'
        '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"></line>'
        '<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"></line>'
        "{}{}"
        '<polyline class="line" points="{}"></polyline>'
        "{}</svg>",
        WIDTH,
        HEIGHT,
        metric,
        title,
        description,
        LEFT,
        TOP,
        LEFT,
        HEIGHT - BOTTOM,
        LEFT,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        y_labels,
        x_labels,
        line,
        dots,
    )
    return Chart(metric=metric, points=points, svg=svg, skipped=skipped)
