"""The last axis label of a bar chart ends at the chart's right edge (it was drawn from the last bar's left
edge, ran past the chart's width and was clipped), in svg.columns and so in the run report's histogram."""

import re

from apps.benchmarks.report import _histogram_svg
from apps.core import svg

TEXT = re.compile(r"<text ([^>]*)>([^<]*)</text>")


def _labels(markup: str) -> dict[str, str]:
    return {body: attributes for attributes, body in TEXT.findall(str(markup))}


def _x(attributes: str) -> float:
    return float(re.search(r'x="([^"]+)"', attributes).group(1))


def test_the_last_bars_label_is_anchored_at_the_right_edge():
    labels = _labels(svg.columns([(1, "a", "first"), (2, "b", ""), (3, "c", "last")], colour="#000", label="x"))
    assert _x(labels["last"]) == svg.WIDTH - svg.PAD
    assert 'text-anchor="end"' in labels["last"]
    assert _x(labels["first"]) == svg.PAD and "text-anchor" not in labels["first"]


def test_a_single_bars_label_starts_at_its_left_edge():
    labels = _labels(svg.columns([(1, "a", "only")], colour="#000", label="x"))
    assert _x(labels["only"]) == svg.PAD and "text-anchor" not in labels["only"]


def test_the_report_histograms_highest_bound_ends_at_the_charts_right_edge():
    buckets = [[1.0, 3], [2.0, 5], [4.0, 2], [812.5, 1]]
    labels = _labels(_histogram_svg(buckets))
    assert 'text-anchor="end"' in labels["812.5 ms"]
    assert _x(labels["812.5 ms"]) == svg.WIDTH - svg.PAD
