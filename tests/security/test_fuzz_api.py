"""Schemathesis against our own OpenAPI schema: every operation, generated inputs, never a 500."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from controlplane.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def token(transactional_db, issue_token) -> str:
    """Transactional: the app closes its connection after each request, as it does in production."""
    from apps.ratelimits.models import RateLimitPolicy

    RateLimitPolicy.objects.update(requests=10**9)  # the fuzzer is one client making thousands of calls
    scopes = ("patient:read", "patient:write", "clinical:read", "clinical:write", "audit:read", "inference")
    return issue_token(*scopes, name="fuzzer")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_500(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[schemathesis.checks.not_a_server_error, response_schema_conformance],
    )
