"""A regression is acknowledged once: two admins acknowledging it at once (each having read it
unacknowledged) both wrote it, the second overwriting who acknowledged it and when, and both were told so."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def test_the_second_of_two_acknowledgements_changes_nothing():
    service, _ = service_ensure(slug="triage", name="Triage")
    plan = BenchmarkPlan.objects.create(name="triage load", service=service, requests=[])
    run = BenchmarkRun.objects.create(plan=plan)
    created = Regression.objects.create(plan=plan, run=run, baseline=10, current=15, change_pct=50, p_value=0.001,
                                        threshold_pct=10)  # fmt: skip
    first_user = get_user_model().objects.create_user("first", password="x")
    second_user = get_user_model().objects.create_user("second", password="x")
    seen_by_first, seen_by_second = Regression.objects.get(pk=created.pk), Regression.objects.get(pk=created.pk)

    assert services.regression_acknowledge(regression=seen_by_first, user=first_user) is True
    first = Regression.objects.get(pk=created.pk)
    assert services.regression_acknowledge(regression=seen_by_second, user=second_user) is False
    stored = Regression.objects.get(pk=created.pk)
    assert (stored.acknowledged_by, stored.acknowledged_at) == (first_user, first.acknowledged_at)
    assert seen_by_second.acknowledged_by == first_user  # the caller's copy says who did
