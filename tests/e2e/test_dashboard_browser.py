"""The dashboard end to end, in Debian's Chromium driven by Playwright (never a downloaded browser):
log in through the admin, watch API traffic reach the live feed, open every page, open a patient's vital
signs, scroll 100,000 patients, and see the views in the audit trail. The whole product runs as
`make run` starts it, on PostgreSQL and Redis. Screenshots and the scroll's frame figures are kept in
test-artifacts/e2e/ (frame times are reported there, not asserted: this machine is shared and noisy)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.browser import SCROLL_FRAMES_JS, frame_figures
from tests.e2e.stack import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO_ROOT,
    _manage,
    api_traffic,
    log_in,
    start_live,
    stop_live,
)

PATIENTS = 100_000
E2E_PATIENTS = PATIENTS  # the session's stack (conftest.py) loads them
PAGES = {  # path under /dashboard/ -> its heading and something only real data puts on it
    "": ("Overview", "[data-testid=live-state]"),
    "services/clinical-api": ("Clinical data API", ".chart canvas"),
    "cache": ("Cache", "[data-testid=cache-table]"),
    "ratelimits": ("Rate limits", "[data-testid=limits-table]"),
    "benchmarks": ("Benchmarks", "text=No runs yet"),
    "scaling": ("Scaling", ".chart canvas"),
    "inference": ("Inference", "[data-testid=modes-clinical-embeddings]"),
    "patients": ("Patients", "text=100,000 patients"),
    "audit": ("Audit trail", "[data-testid=vlist-scroller] [role=row]"),
}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("E2E_ARTIFACTS", REPO_ROOT / "test-artifacts" / "e2e"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.console_errors = []
        page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
        yield page
        browser.close()


def overall_rps(page) -> float:
    cells = page.locator("tr:has(th:text-is('All routes')) td").all_inner_texts()
    return float(cells[0]) if cells else 0.0


def test_live_numbers_every_page_and_the_patient_list(stack, page, artifacts):
    log_in(page, stack)
    page.wait_for_selector("[data-testid=live-state]:text-is('open')", timeout=30_000)

    # API traffic from a clinical app (the demo token) moves the live numbers within a few seconds.
    before = overall_rps(page)
    assert api_traffic(stack, requests=40) == 40
    deadline = time.monotonic() + 60  # a generous bound, not a measurement: the machine is shared
    while overall_rps(page) <= before and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert overall_rps(page) > before, "the live feed never showed the new traffic"
    page.screenshot(path=artifacts / "overview.png", full_page=True)

    # Every page, reached through the navigation where it has a link, renders real data.
    for path, (heading, evidence) in PAGES.items():
        page.goto(f"{stack.base}/dashboard/{path}")
        page.wait_for_selector(f"h1:text-is('{heading}')", timeout=20_000)
        page.wait_for_selector(evidence, timeout=30_000)
        page.screenshot(path=artifacts / f"{path.replace('/', '-') or 'overview'}-page.png", full_page=True)
    # Patients and Audit are linked once whoami answers (they are scoped): wait for them, not for a moment.
    page.wait_for_function("document.querySelectorAll('nav[aria-label=Main] a').length === 8", timeout=30_000)

    # Patients: open one, see the vital-signs chart, then scroll all 100,000 rows.
    page.goto(f"{stack.base}/dashboard/patients")
    page.wait_for_selector("text=100,000 patients", timeout=60_000)
    page.locator(".row-button").first.click()
    page.wait_for_selector("#vitals-title")
    page.wait_for_selector(".panel .chart canvas", timeout=20_000)
    assert re.search(r"Heart rate \((1 reading|\d+ readings)\)", page.inner_text(".panel"))
    page.screenshot(path=artifacts / "patient-vitals.png", full_page=True)

    result = page.evaluate(SCROLL_FRAMES_JS, {"ms": 4000, "selector": "[data-testid=vlist-scroller]"})
    figures = frame_figures(result)
    (artifacts / "scroll-frames.json").write_text(json.dumps(figures, indent=2))
    assert figures["max_rows_in_dom"] < 80, "the list rendered far more rows than fit on screen"
    last_row = page.locator("[data-testid=vlist-scroller] [aria-rowindex='100001']")  # row 1 is the header
    last_row.wait_for(timeout=20_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=vlist-scroller] [aria-rowindex=\"100001\"]')"
        ".textContent.includes('Loading')",
        timeout=30_000,
    )  # the block at the end was fetched once the scroll settled
    page.screenshot(path=artifacts / "patients-scrolled-to-end.png", full_page=True)

    # A search by name: posted with the staff session (JSON from this origin, no CSRF token on the page), the
    # name in the body and in no URL, so in no access log.
    page.locator("[data-testid=vlist-scroller]").evaluate("element => { element.scrollTop = 0; }")
    family = page.locator(".row-button").first.inner_text().split(",")[0]
    fragment = family[:3]
    sent = []
    page.on("request", lambda request: sent.append((request.method, request.url, request.post_data or "")))
    page.get_by_role("searchbox").fill(fragment)
    page.wait_for_function(
        """([prefix]) => {
            const plain = (text) => text.normalize("NFKD").replace(/\\p{M}/gu, "").toLowerCase();
            const first = document.querySelector(".row-button");
            const count = document.querySelector("[data-testid=patient-count]").textContent;
            return first && !count.startsWith("100,000") && /^[0-9,]+ patients$/.test(count)
                && first.textContent.split(", ").some((part) => plain(part).startsWith(plain(prefix)));
        }""",
        arg=[fragment],
        timeout=20_000,
    )
    posted = [body for method, url, body in sent if method == "POST" and url.endswith("/api/v1/patients/window/")]
    assert posted and all(json.loads(body)["name"] == fragment for body in posted)
    queries = [urlsplit(url).query.lower() for _, url, _ in sent]
    assert not [query for query in queries if "name=" in query or fragment.lower() in query]
    page.screenshot(path=artifacts / "patients-searched-by-name.png", full_page=True)

    # The views were audited: the list's windows and the vitals read, by the signed-in admin.
    page.goto(f"{stack.base}/dashboard/audit")
    page.locator("select").first.select_option("search")
    page.wait_for_selector("[data-testid=vlist-scroller] [role=row]:has-text('admin')", timeout=20_000)
    page.screenshot(path=artifacts / "audit-page.png", full_page=True)
    assert page.console_errors == []


def test_keyboard_and_dark_theme(stack, page, artifacts):
    log_in(page, stack)
    page.wait_for_selector("h1:text-is('Overview')")
    page.keyboard.press("Tab")
    page.wait_for_function("() => document.activeElement?.classList.contains('skip-link')")
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.hash === '#main'")
    before = page.evaluate("document.documentElement.dataset.theme")
    page.get_by_role("button", name=re.compile("Switch to the (dark|light) theme")).click()
    # The new theme, once applied: read at once, it could still be the old one (and a toggle that did
    # nothing would then pass as remembered).
    page.wait_for_function("(before) => document.documentElement.dataset.theme !== before", arg=before)
    theme = page.evaluate("document.documentElement.dataset.theme")
    page.goto(f"{stack.base}/dashboard/cache")
    page.wait_for_selector("[data-testid=cache-table]")
    assert page.evaluate("document.documentElement.dataset.theme") == theme  # remembered across pages
    page.screenshot(path=artifacts / f"cache-{theme}.png", full_page=True)
    assert page.console_errors == []


def test_the_overview_says_its_figures_are_not_live_while_the_live_process_restarts(stack, page, artifacts):
    """The live process stops (a deploy, a crash): the Overview must not go on showing its last figures
    and "No alert is firing." as if live; once a new one listens, the feed reconnects by itself."""
    log_in(page, stack)
    page.wait_for_selector("[data-testid=live-state]:text-is('open')", timeout=30_000)
    page.wait_for_selector("[data-testid=live-as-of]", timeout=30_000)
    stop_live(stack)
    try:
        page.wait_for_selector("[data-testid=live-stale]", timeout=15_000)
        assert page.inner_text("[data-testid=live-state]") == "reconnecting"
        assert page.inner_text("[data-testid=live-stale]").startswith("Not live: the live feed is reconnecting.")
        if page.locator("[data-testid=no-alerts]").count():  # the demo may have an alert firing
            assert page.inner_text("[data-testid=no-alerts]").startswith("No alert was firing at")
        page.screenshot(path=artifacts / "overview-live-down.png", full_page=True)
        page.wait_for_timeout(4_000)  # a few failed tries: the backoff grows meanwhile
    finally:
        start_live(stack)
    # The longest wait after a handful of failures is a few seconds (capped at 15 s).
    page.wait_for_selector("[data-testid=live-state]:text-is('open')", timeout=30_000)
    page.wait_for_selector("[data-testid=live-as-of]", timeout=15_000)
    assert page.locator("[data-testid=live-stale]").count() == 0
    if page.locator("[data-testid=no-alerts]").count():
        assert page.inner_text("[data-testid=no-alerts]") == "No alert is firing."
    # The browser logs each refused connection as a console error; nothing else may have failed.
    assert [e for e in page.console_errors if "WebSocket connection" not in e] == []


def test_an_idle_dashboard_does_not_keep_its_session_and_its_end_takes_the_patients_off_screen(stack, page):
    """The pages poll whether anyone is there: each API request says how long its user has been idle (the
    server counts it as activity at that time only), and when the session goes idle the live feed's recheck
    closes with 4401 and the Patients page drops its rows (it polls nothing, so they stayed on screen)."""
    log_in(page, stack)
    idle: list[tuple[float, str | None]] = []
    page.on(
        "request", lambda r: "/api/" in r.url and idle.append((time.monotonic(), r.headers.get("x-user-idle-seconds")))
    )
    page.goto(f"{stack.base}/dashboard/cache")  # polls every 10 s
    page.wait_for_selector("[data-testid=cache-table]")
    opened = time.monotonic()
    page.wait_for_timeout(12_500)  # nobody touches the page
    assert idle and all(value is not None and value.isdigit() for _, value in idle)
    polls = [int(value) for at, value in idle if at - opened > 5]  # the polls, not the first loads
    assert polls and min(polls) >= 5, f"a poll of an untouched tab reported {polls} s idle"

    page.goto(f"{stack.base}/dashboard/patients")
    page.wait_for_selector("text=100,000 patients", timeout=60_000)
    page.wait_for_selector(".row-button")
    page.wait_for_selector(".badge-open", timeout=30_000)  # the live feed, whose recheck will notice
    session_key = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    _manage("shell", "-c", (  # the session's last activity two hours ago, as the idle logoff sees it
        "import time; from django.contrib.sessions.backends.db import SessionStore; "
        "from apps.core.middleware import LAST_SEEN_KEY; "
        f"s = SessionStore({session_key!r}); s[LAST_SEEN_KEY] = time.time() - 7200; s.save()"
    ), env=stack.env)  # fmt: skip
    page.wait_for_selector("[data-testid=session-ended]", timeout=25_000)  # the feed's recheck: every 10 s
    assert page.locator(".row-button").count() == 0
    assert page.locator("[data-testid=patient-count]").count() == 0
    assert page.get_by_role("link", name="Sign in again").count() == 1
    assert page.locator(".badge-signed-out").count() == 1
