"""OPTIONS on any route, with or without a token, is answered, never a 500: a browser sends one before a
cross-origin request, and scanners send them everywhere. The API docs page answered DRF's metadata with its
HTML renderer, which has no template for it (TemplateDoesNotExist, a 500)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.security.test_endpoint_guards import _concrete

pytestmark = pytest.mark.django_db


def _every_route() -> list[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return sorted({_concrete(route) for route in walk(get_resolver().url_patterns)})


def test_options_on_every_route_is_answered_without_a_server_error(issue_token):
    token = issue_token("patient:read", "clinical:read", "audit:read", "inference")
    anonymous, with_token = Client(raise_request_exception=False), Client(raise_request_exception=False)
    failed, routes = [], _every_route()
    for path in routes:
        for name, client, headers in (
            ("anonymous", anonymous, {}),
            ("token", with_token, {"HTTP_AUTHORIZATION": f"Bearer {token}"}),
        ):
            status = client.options(path, **headers).status_code
            if status >= 500:
                failed.append(f"OPTIONS {path} ({name}): {status}")
    assert failed == []
    assert len(routes) > 40 and "/api/docs/" in routes


def test_the_api_docs_page_answers_get_and_head_only():
    response = Client().options("/api/docs/")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
