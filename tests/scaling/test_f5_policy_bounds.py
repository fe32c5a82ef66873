"""A scaling policy's ceiling below its maximum, a capacity per replica of 1e308 and a lead of 2147483647
minutes were all accepted: the ceiling then meant nothing, 1e308 overflowed the synthetic history (an invalid
divide) so that every metric read "not enough history, 0 hours", and the lead exceeded any plan. Each is now
refused field by field, and the largest values allowed still forecast."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from apps.scaling.history import hourly_history
from apps.scaling.models import ScalingPolicy
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db

MAX_REPLICA_CAPACITY_RPS = 1_000_000.0  # the bounds the help texts give
MAX_LEAD_MINUTES = 1440


@pytest.fixture
def service():
    return service_ensure(slug="triage", name="Triage", base_url="http://127.0.0.1:9")[0]


def _errors(service, **fields) -> dict[str, list[str]]:
    try:
        ScalingPolicy(service=service, **fields).full_clean()
    except ValidationError as refused:
        return refused.message_dict
    return {}


def test_a_ceiling_below_the_maximum_is_refused(service):
    assert "max_replicas_ceiling" in _errors(service, max_replicas=10, max_replicas_ceiling=2)
    assert "max_replicas_ceiling" not in _errors(service, max_replicas=10, max_replicas_ceiling=10)


@pytest.mark.parametrize("capacity", [1e308, MAX_REPLICA_CAPACITY_RPS * 1.01])
def test_a_capacity_per_replica_beyond_any_pod_is_refused(service, capacity):
    assert "replica_capacity_rps" in _errors(service, replica_capacity_rps=capacity)


@pytest.mark.parametrize("lead", [2147483647, MAX_LEAD_MINUTES + 1])
def test_a_lead_longer_than_a_day_is_refused(service, lead):
    assert "lead_minutes" in _errors(service, lead_minutes=lead)


def test_the_largest_values_allowed_are_valid_and_forecast_from_finite_history(service):
    fields = {"replica_capacity_rps": MAX_REPLICA_CAPACITY_RPS, "lead_minutes": MAX_LEAD_MINUTES}
    assert _errors(service, **fields) == {}
    policy = ScalingPolicy.objects.create(service=service, history_source="synthetic", **fields)
    series = hourly_history(policy, "request_rate", now=datetime(2026, 3, 2, 9, tzinfo=UTC), days=2)
    assert len(series) == 48 and all(math.isfinite(value) and value > 0 for value in series)
