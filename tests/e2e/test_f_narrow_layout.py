"""The dashboard's stylesheet on a phone's width (390 px), in Debian's Chromium: the page itself never scrolls
sideways; wide tables and the audit list scroll inside their own box; a long name is cut with an ellipsis, its
whole text in a title tooltip. The markup is the shapes the components render (App.tsx's header,
TableScroll, Truncated, VirtualList); no server, so nothing here waits on data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.stack import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT

pytestmark = pytest.mark.e2e

NAME = "clinical-decision-support-sepsis-early-warning-" * 3
LABELS = ["Overview", "Cache", "Rate limits", "Benchmarks", "Inference", "Scaling", "Patients", "Audit"]
NAV = "".join(f'<a href="#">{label}</a>' for label in LABELS)
HEADER = f"""
<header class="header">
  <a class="skip-link" href="#main">Skip to content</a>
  <a class="brand" href="/dashboard/">Control plane</a>
  <nav aria-label="Main">{NAV}</nav>
  <div class="header-end">
    <span class="badge"><span class="dot"></span>Reconnecting…</span>
    <button type="button" class="link-button">Dark theme</button>
    <a href="/admin/">Admin</a><span class="muted">ward-nurse-on-call</span>
    <button type="button" class="link-button">Sign out</button>
  </div>
</header>"""
CELLS = "".join(f'<td class="num">{n:,} ms</td>' for n in range(100_000, 100_007))
TABLE = f"""
<div class="table-scroll" role="region" aria-label="Services" tabindex="0" id="services">
  <table class="table"><tbody><tr>
    <th scope="row"><a href="#"><span class="truncate" title="{NAME}" id="name">{NAME}</span></a></th>{CELLS}
  </tr></tbody></table>
</div>"""
AUDIT_ROW = "".join(f'<span class="cell" role="cell" title="{NAME}">{NAME}</span>' for _ in range(8))
AUDIT = f"""
<div class="vlist vlist-wide" role="table" aria-label="Audit events" id="audit">
  <div role="rowgroup"><div role="row" class="vlist-row vlist-head audit-row">{AUDIT_ROW}</div></div>
  <div class="vlist-scroller" style="height: 200px" tabindex="0">
    <div role="rowgroup" style="height: 360px; position: relative">
      <div role="row" class="vlist-row" style="height: 36px"><div class="audit-row">{AUDIT_ROW}</div></div>
    </div>
  </div>
</div>"""
BODY = f'{HEADER}<main class="main" id="main"><section><h1>Overview</h1>{TABLE}{AUDIT}</section></main>'

MEASURE = """() => {
  const box = (id) => { const e = document.getElementById(id); return [e.scrollWidth, e.clientWidth]; };
  const header = document.querySelector(".header-end").getBoundingClientRect();
  return {
    page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    services: box("services"),
    audit: box("audit"),
    name: box("name"),
    headerRight: header.right,
  };
}"""


def test_a_phone_width_scrolls_tables_in_their_own_box_never_the_page():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), "Debian's chromium is not installed"
    css = (REPO_ROOT / "frontend" / "src" / "app" / "styles.css").read_text()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.set_content(f"<!doctype html><html><head><style>{css}</style></head><body>{BODY}</body></html>")
            sizes = page.evaluate(MEASURE)
        finally:
            browser.close()
    scroll_width, client_width = sizes["page"]
    # The header's end (connection, theme, admin, user, sign out) kept to one line and pushed the page wider.
    assert scroll_width <= client_width, sizes
    assert sizes["headerRight"] <= client_width, sizes
    # The table and the audit list scroll sideways inside their own boxes.
    assert sizes["services"][0] > sizes["services"][1], sizes
    assert sizes["audit"][0] > sizes["audit"][1], sizes
    # The long name is cut (its whole text is the title tooltip, checked by the components' tests).
    assert sizes["name"][0] > sizes["name"][1], sizes
