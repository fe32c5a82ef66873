"""Inline SVG charts for admin and reports: no scripts, numbers only in the markup."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from apps.core import svg

WIDTH, HEIGHT, PAD = 720, 220, 36


def _scale(values: list[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    return (low, high) if high > low else (low - 1, high + 1)


def forecast_svg(recent: list[dict], points: list[dict], *, unit: str = "") -> SafeString:
    """The last days as a line, then the forecast: P10-P90 band and P50 line."""
    if not points:
        return mark_safe("<p>No forecast points.</p>")
    series = [r["value"] for r in recent] + [v for p in points for v in (p["p10"], p["p90"])]
    low, high = _scale([0.0, *series])
    total = len(recent) + len(points)

    def x(i: int) -> float:
        return round(PAD + (WIDTH - 2 * PAD) * i / max(total - 1, 1), 1)

    def y(value: float) -> float:
        return round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value - low) / (high - low), 1)

    start = len(recent)
    actual = " ".join(f"{x(i)},{y(r['value'])}" for i, r in enumerate(recent))
    upper = [f"{x(start + i)},{y(p['p90'])}" for i, p in enumerate(points)]
    lower = [f"{x(start + i)},{y(p['p10'])}" for i, p in enumerate(points)][::-1]
    median = " ".join(f"{x(start + i)},{y(p['p50'])}" for i, p in enumerate(points))
    ticks = "".join(
        f'<text x="4" y="{y(v) + 4}" font-size="10">{v:,.0f}{unit}</text>' for v in (low, (low + high) / 2, high)
    )
    markup = (
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="Forecast with P10-P90 band">{ticks}'
        f'<polygon points="{" ".join(upper + lower)}" fill="#0a58ca" fill-opacity="0.18"></polygon>'
        f'<polyline points="{actual}" fill="none" stroke="#57606a" stroke-width="1.5"></polyline>'
        f'<polyline points="{median}" fill="none" stroke="#0a58ca" stroke-width="2"></polyline>'
        f'<line x1="{x(start)}" x2="{x(start)}" y1="{PAD / 2}" y2="{HEIGHT - PAD}" stroke="#cf222e" '
        f'stroke-dasharray="4 3"></line><text x="{x(start) + 4}" y="{PAD / 2 + 10}" font-size="10">now</text>'
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">grey: history · blue: P50 with the P10-P90 band</text></svg>'
    )
    return mark_safe(markup)  # noqa: S308 (built from numbers only)


def clock_label(at: datetime) -> str:
    """An hour on the hospital's clock, named so it reads once: the night the clocks go back, 01:00 happens
    twice, and `01:00 America/New_York` could be either; the zone's abbreviation (`01:00 EDT (America/New_York)`,
    then `01:00 EST (...)`) tells them apart, or the offset where the zone has none (`UTC-03`, `UTC+10:30`)."""
    at = timezone.localtime(at)
    zone = timezone.get_current_timezone_name()
    if zone[:1] in "+-":  # Django names a fixed-offset zone (Etc/GMT+5) by its offset: `UTC-05 (-05)`
        zone = getattr(timezone.get_current_timezone(), "key", zone)
    name = at.tzname() or ""
    if name[:1] in "+-":  # `+1030`, `+0545`, `-05`: written as offsets are, hours and minutes apart
        name = f"UTC{name[:3]}:{name[3:5]}" if len(name) >= 5 else f"UTC{name}"
    return f"{at:%H:%M} {name}" if name == zone else f"{at:%H:%M} {name} ({zone})"


def date_clock_label(at: datetime) -> str:
    """A moment with its date, on the hospital's clock with its zone: `2026-11-01 01:30 EST (America/New_York)`
    (a bare time reads as UTC, and the hour the clocks go back happens twice)."""
    return f"{timezone.localtime(at):%Y-%m-%d} {clock_label(at)}"


def replicas_svg(hours: list[dict]) -> SafeString:
    """Planned replicas per hour as bars, on the hospital's clock (settings.TIME_ZONE)."""
    if not hours:
        return mark_safe("<p>No hours.</p>")
    zone = timezone.get_current_timezone_name()
    times = [timezone.localtime(datetime.fromisoformat(h["at"])) for h in hours]
    bars = [
        (h["replicas"], f"{clock_label(at)}: {h['replicas']} replicas", f"{at:%H}h" if i % 3 == 0 else "")
        for i, (h, at) in enumerate(zip(hours, times, strict=True))
    ]
    return svg.columns(bars, colour="#1a7f37", label=f"planned replicas per hour ({zone})")
