"""The API docs, where developers paste their tokens, run under the site's Content Security Policy: the Swagger
UI page was exempt from it because its start-up script was inline. In Debian's Chromium (a real browser), the
page renders the schema with no CSP violation."""

import pytest

from tests.e2e.stack import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_api_docs_carry_the_csp_and_render_under_it(client, live_server):
    policy = client.get("/api/docs/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src", 1)[1].split(";")[0]

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{live_server.url}/api/docs/")
            page.wait_for_selector(".swagger-ui .information-container .title", timeout=30_000)
            assert "Medical AI performance control plane" in page.inner_text(".swagger-ui .information-container")
            page.wait_for_selector(".opblock-tag", timeout=30_000)  # the operations, from /api/schema/
            assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
        finally:
            browser.close()
