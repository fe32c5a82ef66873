"""The dashboard against WCAG 2.1 AA (Section 508 / EN 301 549), in Debian's Chromium: axe-core (the
frontend's pinned devDependency, loaded into each page by the DevTools protocol, so the page's CSP stays as
served) on every route, in its loading, data, empty and error states, with the disclosures open, in both
themes and at a phone's width; then the keyboard alone: a skip link to the main content, every control
reached with Tab in reading order, each with a visible focus ring, and Tab leading out of the page again
(no trap); every chart with a text alternative; the Overview's per-second figures read out by a polite live
region, at most once a minute. The dashboard has no dialog or menu that floats over the page (nothing for
Escape to close).

Only the failures are made up: the API answers 503 (or never answers, for the loading state) through
Playwright's request routing, as a server down or slow would; everything else is the real stack."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.stack import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, log_in

AXE = REPO_ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
AA_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
ROUTES = {  # path under /dashboard/ -> something only the loaded page shows
    "": "[data-testid=live-state]",
    "services/clinical-api": ".chart [role=img]",
    "cache": "[data-testid=cache-table]",
    "ratelimits": "[data-testid=limits-table]",
    "benchmarks": "text=No runs yet",
    "scaling": ".chart [role=img]",
    "inference": "[data-testid=modes-clinical-embeddings]",
    "patients": ".row-button",
    "audit": "[data-testid=vlist-scroller] [role=row]",
    "no-such-page": "h1",
}
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
  return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} -> ` +
    v.nodes.slice(0, 5).map((n) => n.target.join(" ")).join(", "));
}"""
# Charts (canvas) with no text alternative: uPlot draws on a canvas, which a screen reader cannot read.
UNDESCRIBED_CHARTS = """() => [...document.querySelectorAll("canvas")]
  .filter((canvas) => !canvas.closest("[role=img]")?.getAttribute("aria-label")?.trim())
  .map((canvas) => canvas.closest("figure")?.querySelector("figcaption")?.textContent || "a canvas")"""
# Every change of a live region's text (what a screen reader reads out), per region, from now on.
WATCH_LIVE_REGIONS = """() => {
  window.__liveChanges = [];
  const live = "[aria-live]:not([aria-live=off]), [role=status], [role=alert], [role=log]";
  const regions = document.querySelectorAll(live);
  regions.forEach((region, index) => {
    let last = region.textContent;
    new MutationObserver(() => {
      if (region.textContent !== last) window.__liveChanges.push([index, region.textContent]);
      last = region.textContent;
    }).observe(region, { subtree: true, childList: true, characterData: true });
  });
  return regions.length;
}"""
# The focused element: what it is, whether a focus ring shows (an outline or a box shadow) and where it sits.
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) return null;
  if (e.dataset.a11ySentinel) return { sentinel: e.dataset.a11ySentinel };
  const style = getComputedStyle(e);
  const box = e.getBoundingClientRect();
  return {
    name: `${e.tagName.toLowerCase()} "${(e.getAttribute("aria-label") || e.textContent || "").trim().slice(0, 40)}"`,
    ring: (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== "none",
    shown: box.width > 0 && box.height > 0 && style.visibility !== "hidden",
    tabindex: e.tabIndex,
    inMain: Boolean(e.closest("main")),
    isMain: e.id === "main",
    path: (() => {
      const path = [];
      for (let n = e; n.parentElement; n = n.parentElement) path.unshift([...n.parentElement.children].indexOf(n));
      return path;
    })(),
  };
}"""

pytestmark = pytest.mark.e2e


# A few hundred patients are enough to fill every list: the session's stack (conftest.py) loads them, or the
# browser test's 100k where it runs too (one stack, one database, for both).
E2E_PATIENTS = 300


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert AXE.is_file(), "axe-core is missing: `make frontend` installs the frontend's devDependencies"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, stack, *, width: int = 1400, theme: str = "light"):
    """A signed-in page in `theme`, with axe injected into every document it loads."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.add_init_script(script=f"localStorage.setItem('controlplane-theme', {json.dumps(theme)});")
    context.add_init_script(path=str(AXE))
    page = context.new_page()
    log_in(page, stack)
    return page


def audit(page, label: str) -> list[str]:
    return [f"{label}: {violation}" for violation in page.evaluate(RUN_AXE, AA_TAGS)]


def visit(page, stack, path: str) -> None:
    page.goto(f"{stack.base}/dashboard/{path}")
    page.wait_for_selector("main h1", timeout=20_000)
    # Attached, not visible: a chart with no data yet (a fresh database: no latency recorded) is rendered hidden,
    # described "no data", once its data has loaded; that is the state to audit then.
    page.wait_for_selector(ROUTES[path], state="attached", timeout=30_000)


@pytest.mark.parametrize(("width", "theme"), [(1400, "light"), (1400, "dark"), (390, "light")])
def test_every_route_with_its_data_has_no_aa_violation(stack, browser, width, theme):
    page = open_page(browser, stack, width=width, theme=theme)
    found = []
    for path in ROUTES:
        visit(page, stack, path)
        found += audit(page, f"/{path} ({theme}, {width} px)")
        found += [f"/{path}: a chart with no text alternative: {chart}" for chart in page.evaluate(UNDESCRIBED_CHARTS)]
        if path == "patients":  # a patient's vital signs open beside the list
            page.locator("[data-testid=vlist-grid]").focus()
            page.keyboard.press("Enter")
            page.wait_for_selector("#vitals-title")
            page.wait_for_selector(".panel .chart [role=img], .panel .chart p", timeout=20_000)
            found += audit(page, f"/patients, vitals open ({theme}, {width} px)")
        if path == "scaling":  # a policy's manifests disclosed
            page.get_by_role("button", name="Preview manifests").first.click()
            page.wait_for_selector("[data-testid=manifest]", timeout=20_000)
            found += audit(page, f"/scaling, manifests open ({theme}, {width} px)")
    page.context.close()
    assert not found, "WCAG 2.1 AA violations:\n" + "\n".join(found)


def test_empty_loading_and_error_states_have_no_aa_violation(stack, browser):
    page = open_page(browser, stack)
    found = []
    # Empty: a search no patient matches, an audit filter nothing matches.
    visit(page, stack, "patients")
    page.get_by_role("searchbox").fill("Zzyzxqwv")
    page.wait_for_selector("[data-testid=patient-count]:text-is('0 patients')", timeout=20_000)
    found += audit(page, "/patients, no match")
    visit(page, stack, "audit")
    page.get_by_label("Resource").select_option(index=page.get_by_label("Resource").locator("option").count() - 1)
    page.get_by_label("Action").select_option("delete")
    page.wait_for_selector("[data-testid=audit-count]:text-is('0 events loaded')", timeout=20_000)
    found += audit(page, "/audit, nothing matches")

    # Loading: the page's API never answers (whoami and the keep-alive do, so the header is the real one).
    def own_api(url: str) -> bool:
        return "/api/v1/" in url and not re.search(r"/api/v1/(whoami/)?(\?.*)?$", url)

    pending = []
    page.route(own_api, lambda route: pending.append(route))  # left unanswered: the page stays in its loading state
    for path in ("cache", "ratelimits", "scaling", "inference", "patients", "audit", "services/clinical-api"):
        page.goto(f"{stack.base}/dashboard/{path}")
        page.wait_for_selector("main h1", timeout=20_000)
        page.wait_for_selector("main :text-matches('Loading|Counting', 'i')", timeout=20_000)
        found += audit(page, f"/{path}, loading")
        while pending:
            pending.pop().abort()
    page.unroute(own_api)

    # Error: the API answers 503, as a server that is down would.
    body = json.dumps({"detail": "Service unavailable."})
    page.route(own_api, lambda route: route.fulfill(status=503, body=body, content_type="application/json"))
    for path in ("cache", "ratelimits", "benchmarks", "scaling", "inference", "patients", "audit"):
        page.goto(f"{stack.base}/dashboard/{path}")
        page.wait_for_selector("main [role=alert]", timeout=30_000)
        found += audit(page, f"/{path}, error")
    page.unroute(own_api)
    page.context.close()
    assert not found, "WCAG 2.1 AA violations:\n" + "\n".join(found)


# Two buttons of the test's own, before and after the whole page (outside the app's root): Tab from the first
# and Shift+Tab from the last walk the page's stops from either end, and reaching the other is leaving the page.
SENTINELS = """() => {
  for (const [name, first] of [["start", true], ["end", false]]) {
    if (document.querySelector(`[data-a11y-sentinel=${name}]`)) continue;
    const button = document.createElement("button");
    button.dataset.a11ySentinel = name;
    button.textContent = name;
    if (first) document.body.prepend(button); else document.body.append(button);
  }
}"""


def start_from(page, end: str) -> None:
    page.evaluate(SENTINELS)
    page.focus(f"[data-a11y-sentinel={end}]")


def tab_through(page, key: str = "Tab", limit: int = 150) -> list[dict]:
    """The focus stops `key` reaches from the page's start (Tab) or end (Shift+Tab) until it leaves the page;
    one that never leaves is a keyboard trap."""
    start_from(page, "start" if key == "Tab" else "end")
    stops = []
    for _ in range(limit):
        page.keyboard.press(key)
        stop = page.evaluate(FOCUSED)
        if stop is None or "sentinel" in stop:
            return stops
        stops.append(stop)
    raise AssertionError(f"{key} never left the page after {limit} presses (a keyboard trap?): {stops[-5:]}")


@pytest.mark.parametrize("path", [p for p in ROUTES if p != "no-such-page"])
def test_keyboard_alone_reaches_every_control_in_order_with_a_visible_focus_ring(stack, browser, path):
    page = open_page(browser, stack)
    visit(page, stack, path)
    if path == "":  # the live table is refreshed each second: wait for whoami's links, not for a moment
        page.wait_for_function("document.querySelectorAll('nav[aria-label=Main] a').length === 8", timeout=30_000)
    stops = tab_through(page)
    problems = []
    assert stops and stops[0]["name"] == 'a "Skip to content"', stops[:1]
    for stop in stops:
        if not stop["ring"]:
            problems.append(f"no visible focus ring on {stop['name']}")
        if not stop["shown"]:
            problems.append(f"focus on something not shown: {stop['name']}")
        if stop["tabindex"] > 0:
            problems.append(f"a positive tabindex reorders {stop['name']}")
    # Reading order: the header's stops, then the main content's, each in document order.
    paths = [stop["path"] for stop in stops]
    if paths != sorted(paths):
        problems.append("Tab order is not the document's order: " + ", ".join(s["name"] for s in stops))
    in_main = [stop["inMain"] for stop in stops]
    if in_main != sorted(in_main):
        problems.append("the header's controls and the page's are interleaved")
    # Shift+Tab goes back over the same stops in reverse: focus is held nowhere, either way.
    back = [stop["path"] for stop in tab_through(page, "Shift+Tab")]
    if back != paths[::-1]:
        problems.append(f"Shift+Tab went over {len(back)} stops, not the {len(stops)} Tab reached, in reverse")
    # The skip link: shown when focused, and it moves the focus to the main content.
    start_from(page, "start")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.hash === '#main'")
    landed = page.evaluate(FOCUSED)
    if not (landed and landed["isMain"]):
        problems.append(f"the skip link left the focus on {landed}")
    page.keyboard.press("Tab")
    after = page.evaluate(FOCUSED)
    if any(in_main) and not (after and after["inMain"]):
        problems.append(f"Tab after the skip link went to {after['name']}, outside the main content")
    page.context.close()
    assert not problems, f"/{path}:\n" + "\n".join(problems)


def test_live_figures_are_announced_politely_without_flooding_a_screen_reader(stack, browser):
    """The Overview's figures change every second: they are read out in a polite live region, at most once a
    minute (a region that followed them would talk without end), and the per-second table is in none."""
    page = open_page(browser, stack)
    visit(page, stack, "")
    page.wait_for_selector("[data-testid=live-state]:text-is('open')", timeout=30_000)
    page.wait_for_selector("[data-testid=live-as-of]", timeout=30_000)
    regions = page.evaluate(WATCH_LIVE_REGIONS)
    spoken = page.evaluate(
        """() => [...document.querySelectorAll("[aria-live=polite], [role=status]")]
            .map((region) => region.textContent).filter((text) => text.includes("requests per second"))"""
    )
    assert spoken, "no polite live region says the live figures: a screen reader hears nothing of them"
    assert re.search(r"All routes: [\d.]+ requests per second", spoken[0]), spoken
    table_region = "document.querySelector('main table').closest('[aria-live], [role=status], [role=log]')"
    assert page.evaluate(table_region) is None
    first_as_of = page.inner_text("[data-testid=live-as-of]")
    page.wait_for_function(  # several snapshots later (one a second), by the page's own clock
        "(before) => document.querySelector('[data-testid=live-as-of]')?.textContent !== before", arg=first_as_of
    )
    page.wait_for_timeout(5_000)
    changes = page.evaluate("window.__liveChanges")
    page.context.close()
    assert regions and len(changes) <= 1, f"live regions read out {len(changes)} times in a few seconds: {changes}"
