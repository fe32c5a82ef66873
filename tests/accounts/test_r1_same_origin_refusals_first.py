"""SameOriginJSONSessionAuthentication refuses first, then weighs evidence: `Sec-Fetch-Site: same-origin` was
read before the Origin, so `Origin: http://evil.example` beside it ran the search (200), and this site's own
Origin beside `Sec-Fetch-Site: cross-site` did too."""

from __future__ import annotations

import pytest

from tests.accounts.test_same_origin_session import SEARCH, WINDOW, browser, patients  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.same_origin_urls")]


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_ORIGIN": "http://evil.example"},
        {"HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_ORIGIN": "null"},
        {"HTTP_SEC_FETCH_SITE": "cross-site", "HTTP_ORIGIN": "http://testserver"},
        {"HTTP_SEC_FETCH_SITE": "same-site", "HTTP_ORIGIN": "http://testserver"},
        {"HTTP_SEC_FETCH_SITE": "Cross-Site", "HTTP_ORIGIN": "http://testserver"},
        {"HTTP_SEC_FETCH_SITE": "cross-site", "HTTP_REFERER": "https://testserver/dashboard/", "secure": True},
    ],
)
def test_a_foreign_origin_or_fetch_site_is_refused_whatever_comes_with_it(browser, patients, headers):  # noqa: F811
    headers = dict(headers)
    secure = headers.pop("secure", False)
    response = browser.post(WINDOW, SEARCH, format="json", secure=secure, **headers)
    assert response.status_code == 403, response.content[:300]
    assert "CSRF" in response.json()["detail"]


def test_a_foreign_fetch_site_is_refused_even_with_the_csrf_token(browser, patients):  # noqa: F811
    token = browser.get("/api/v1/whoami/").json()["csrf_token"]
    response = browser.post(WINDOW, SEARCH, format="json", HTTP_X_CSRFTOKEN=token, HTTP_SEC_FETCH_SITE="cross-site")
    assert response.status_code == 403, response.content[:300]


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_SEC_FETCH_SITE": "same-origin"},
        {"HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_ORIGIN": "http://testserver"},
        {"HTTP_ORIGIN": "http://testserver"},
    ],
)
def test_this_sites_evidence_still_lets_the_post_through(browser, patients, headers):  # noqa: F811
    assert browser.post(WINDOW, SEARCH, format="json", **headers).status_code == 200


def test_a_trusted_sibling_origin_marked_same_site_still_passes(browser, patients, settings):  # noqa: F811
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.org"]
    response = browser.post(
        WINDOW, SEARCH, format="json", HTTP_ORIGIN="https://ward.example.org", HTTP_SEC_FETCH_SITE="same-site"
    )
    assert response.status_code == 200, response.content[:300]
