"""format_html() called with no arguments is deprecated (RemovedInDjango60Warning, an error in Django 6.0): the
empty charts answered it on every admin page of a plan without hours. Nothing in apps/ may call it so."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

from apps.scaling import charts

APPS = Path(__file__).resolve().parents[2] / "apps"


def test_empty_charts_warn_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert charts.forecast_svg([], []) == "<p>No forecast points.</p>"
        assert charts.replicas_svg([]) == "<p>No hours.</p>"


def _format_html_calls_without_args(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name == "format_html" and len(node.args) + len(node.keywords) <= 1:
            found.append(f"{path.relative_to(APPS.parent)}:{node.lineno}")
    return found


def test_no_format_html_without_args_in_apps():
    found = [where for path in sorted(APPS.rglob("*.py")) for where in _format_html_calls_without_args(path)]
    assert found == []
