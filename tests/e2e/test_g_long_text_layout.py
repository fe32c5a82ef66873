"""The dashboard's stylesheet with text no one wrote for it: a long unbroken error (a path, a URL, a stack line),
a service or patient name without spaces. In Debian's Chromium (never a downloaded browser), on a ward PC's
narrow screen; the page itself must not scroll sideways (wide tables scroll inside their own box)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.stack import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT

pytestmark = pytest.mark.e2e

LONG = "https://cluster.example.org/apis/autoscaling/v2/namespaces/clinical/horizontalpodautoscalers/" + "x" * 200

# The shapes the pages render (App.tsx, ServicePage, ScalingPage, BenchmarkRunPage, LivePanel, Status.tsx).
BODY = f"""
<main class="main" id="main">
  <section>
    <h1>{LONG}</h1>
    <div role="alert" class="error"><p>Could not load the service: {LONG}.</p><ul><li>Name: {LONG}</li></ul></div>
    <p role="alert" class="error">Applying to the cluster failed: {LONG}</p>
    <article class="panel"><h2>{LONG}</h2><p class="muted">{LONG}</p></article>
    <ul role="list"><li role="alert"><strong>critical</strong> rule: {LONG}</li></ul>
    <div class="stale-banner"><strong role="status">Not live.</strong> {LONG}</div>
  </section>
</main>
"""


def test_long_unbroken_text_does_not_make_the_page_scroll_sideways():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), "Debian's chromium is not installed"
    css = (REPO_ROOT / "frontend" / "src" / "app" / "styles.css").read_text()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.set_content(f"<!doctype html><html><head><style>{css}</style></head><body>{BODY}</body></html>")
            widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        finally:
            browser.close()
    scroll_width, client_width = widths
    # An error with a long URL in it widened the whole page to some 2,000 px: the header, the navigation
    # and the rest of the message were off screen on a 1024 px ward PC.
    assert scroll_width <= client_width, widths
