"""Shared fixtures. The suite runs on the real PostgreSQL, Redis and RabbitMQ (see scripts/test.sh)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.accounts.services import api_client_create


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts with an empty cache (Redis db 15 under `make test`)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def issue_token(db) -> Callable[..., str]:
    """Create a machine client and return its bearer token."""
    counter = iter(range(1, 10_000))

    def issue(*scopes: str, name: str | None = None, **fields) -> str:
        return api_client_create(
            name=name or f"client-{next(counter)}", scopes=list(scopes) or ["patient:read"], **fields
        ).token

    return issue


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("operator", "operator@example.org", "pw-operator-1", is_staff=True)


@pytest.fixture
def staff_api(api, staff_user) -> APIClient:
    api.force_login(staff_user)
    return api


@pytest.fixture(autouse=True)
def _fresh_cache_stack():
    """The process's cache stack and rate-limit policies are forgotten between tests."""
    from apps.caching.stack import default_stack
    from apps.ratelimits.selectors import policy_cache

    default_stack().clear_local()
    policy_cache.forget()
    yield
    default_stack().clear_local()
    policy_cache.forget()
