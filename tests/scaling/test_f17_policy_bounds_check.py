"""Scaling 0011 added bounds (ceiling not below the maximum, capacity per replica at most 1,000,000 req/s, lead
at most 1440 min) but policies stored before keep their values: nothing named them until someone opened one in
admin, and a capacity of 1e308 made every forecast read "not enough history, 0 hours". A `manage.py check`
warning now names each such policy by its service's slug, and the forecasts say the policy is out of bounds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.checks import Warning, run_checks

from apps.scaling.models import ScalingPolicy
from apps.scaling.services import forecasts_refresh
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def _policy(slug: str, **stored) -> ScalingPolicy:
    """A policy whose values were written around the model's validation (as before 0011: one UPDATE)."""
    service = service_ensure(slug=slug, name=slug.title(), base_url="http://127.0.0.1:9")[0]
    policy = ScalingPolicy.objects.create(service=service, history_source="synthetic", max_replicas=10)
    ScalingPolicy.objects.filter(pk=policy.pk).update(**stored)
    return ScalingPolicy.objects.select_related("service").get(pk=policy.pk)


def _warnings() -> list[Warning]:
    return [message for message in run_checks(tags=["scaling"]) if message.id == "scaling.W001"]


def test_each_policy_out_of_bounds_is_named_with_a_hint():
    _policy("low-ceiling", max_replicas_ceiling=2)
    _policy("huge-capacity", replica_capacity_rps=1e308)
    _policy("long-lead", lead_minutes=2147483647)
    _policy("fine")
    warnings = _warnings()
    assert len(warnings) == 3, [str(w) for w in warnings]
    by_slug = {slug: w for w in warnings for slug in ("low-ceiling", "huge-capacity", "long-lead") if slug in w.msg}
    assert set(by_slug) == {"low-ceiling", "huge-capacity", "long-lead"}
    assert all(isinstance(w, Warning) and w.hint for w in warnings)  # a warning: the deploy goes on
    assert "max_replicas_ceiling" in by_slug["low-ceiling"].hint and "below the maximum" in by_slug["low-ceiling"].msg
    assert "1e+308" in by_slug["huge-capacity"].msg and "replica_capacity_rps" in by_slug["huge-capacity"].hint
    assert "2147483647" in by_slug["long-lead"].msg and "lead_minutes" in by_slug["long-lead"].hint
    assert not any("fine" in w.msg for w in warnings)


def test_policies_within_bounds_give_no_warning():
    _policy("fine")
    _policy("at-the-bounds", replica_capacity_rps=1_000_000.0, lead_minutes=1440, max_replicas_ceiling=10)
    assert _warnings() == []


def test_a_forecast_of_a_policy_out_of_bounds_says_why_not_not_enough_history():
    _policy("huge-capacity", replica_capacity_rps=1e308)
    report = forecasts_refresh(now=datetime(2026, 3, 2, 9, tzinfo=UTC))
    skipped = [line for line in report["skipped"] if line.startswith("huge-capacity")]
    assert len(skipped) == 4, report
    assert all("out of bounds" in line or "capacity per replica" in line for line in skipped), skipped
    assert not any("not enough history" in line for line in skipped), skipped
    assert report["recommendations"] == []
    stored = ScalingPolicy.objects.get(service__slug="huge-capacity").forecast_skipped
    assert "capacity per replica" in stored["request_rate"]
