"""Small inline SVG charts for admin pages and self-contained reports: no scripts, nothing to load.
Text is escaped; everything else in the markup is a number."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD = 720, 200, 40


def columns(bars: list[tuple[float, str, str]], *, colour: str, label: str) -> SafeString:
    """Vertical bars: (value, tooltip, axis label or "") each, scaled to the tallest.

    A bar's axis label starts at its left edge, but the last bar's ends at the chart's right edge: started
    at the last bar's left edge, it ran past the chart's width and was clipped, and a label of where the
    axis ends (a histogram's highest bucket bound) stood a bar's width short of it."""
    if not bars:
        return mark_safe("")
    peak = max(value for value, _, _ in bars) or 1
    step = (WIDTH - 2 * PAD) / len(bars)
    last = len(bars) - 1
    parts = []
    for index, (value, tooltip, axis) in enumerate(bars):
        x, height = round(PAD + index * step, 1), round((HEIGHT - 2 * PAD) * value / peak, 1)
        parts.append(
            f'<rect x="{x}" y="{round(HEIGHT - PAD - height, 1)}" width="{round(max(step - 1, 0.5), 1)}" '
            f'height="{height}" fill="{colour}"><title>{escape(tooltip)}</title></rect>'
        )
        if axis and index == last and last:
            parts.append(
                f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 14}" font-size="10" text-anchor="end">'
                f"{escape(axis)}</text>"
            )
        elif axis:
            parts.append(f'<text x="{x}" y="{HEIGHT - PAD + 14}" font-size="10">{escape(axis)}</text>')
    return mark_safe(  # noqa: S308 (numbers and escaped text)
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<text x="4" y="{PAD - 8}" font-size="10">{peak:,g}</text>{"".join(parts)}'
        f'<text x="{PAD}" y="{HEIGHT - 4}" font-size="10">{escape(label)}</text></svg>'
    )


def line(points: list[tuple[float, float]], *, colour: str, label: str, marker: float | None = None) -> SafeString:
    """A line from (x, y) points, from zero up; `marker` draws a dashed horizontal line (a gate)."""
    if len(points) < 2:
        return mark_safe("")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_low, x_span = min(xs), (max(xs) - min(xs)) or 1
    y_high = max([*ys, marker or 0]) or 1

    def x(value: float) -> float:
        return round(PAD + (WIDTH - 2 * PAD) * (value - x_low) / x_span, 1)

    def y(value: float) -> float:
        return round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / y_high, 1)

    path = " ".join(f"{x(a)},{y(b)}" for a, b in points)
    gate = (
        f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(marker)}" y2="{y(marker)}" stroke="#cf222e" '
        'stroke-dasharray="4 3"></line>'
        if marker
        else ""
    )
    return mark_safe(  # noqa: S308 (numbers and escaped text)
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<text x="4" y="{PAD - 8}" font-size="10">{y_high:,.1f}</text>'
        f'<text x="4" y="{HEIGHT - PAD}" font-size="10">0</text>{gate}'
        f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"></polyline>'
        f'<text x="{PAD}" y="{HEIGHT - 10}" font-size="10">{escape(label)}</text></svg>'
    )
