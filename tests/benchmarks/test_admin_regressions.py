"""Regressions and runs in admin: the actions say what they did (acknowledging said nothing; cancelling a run
long over said "cancellation requested")."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def test_acknowledging_says_how_many_and_leaves_earlier_acknowledgements(admin_client, admin_user):
    service, _ = service_ensure(slug="triage", name="Triage")
    plan = BenchmarkPlan.objects.create(name="triage load", service=service, requests=[])
    regressions = []
    for _ in range(3):
        run = BenchmarkRun.objects.create(plan=plan)
        regressions.append(Regression.objects.create(plan=plan, run=run, baseline=10, current=15, change_pct=50,
                                                     p_value=0.001, threshold_pct=10))  # fmt: skip
    yesterday = timezone.now() - timedelta(days=1)
    Regression.objects.filter(pk=regressions[0].pk).update(acknowledged_by=admin_user, acknowledged_at=yesterday)
    response = admin_client.post(
        "/admin/benchmarks/regression/",
        {"action": "acknowledge", "_selected_action": [r.pk for r in regressions]},
        follow=True,
    )
    page = response.content.decode()
    assert "Acknowledged 2 regression(s)." in page
    assert "1 were already acknowledged; left as they were." in page
    assert Regression.objects.get(pk=regressions[0].pk).acknowledged_at == yesterday
    assert Regression.objects.filter(acknowledged_at__gt=yesterday).count() == 2


def test_cancelling_says_which_runs_were_stopped_and_which_were_over(admin_client):
    service, _ = service_ensure(slug="triage", name="Triage")
    plan = BenchmarkPlan.objects.create(name="triage load", service=service, requests=[])
    pending = BenchmarkRun.objects.create(plan=plan)
    running = BenchmarkRun.objects.create(plan=plan, status=BenchmarkRun.Status.RUNNING)
    done = BenchmarkRun.objects.create(plan=plan, status=BenchmarkRun.Status.SUCCEEDED, passed=True)
    response = admin_client.post(
        "/admin/benchmarks/benchmarkrun/",
        {"action": "cancel", "_selected_action": [pending.pk, running.pk, done.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert f"Run #{pending.pk} cancelled before it started." in page
    assert f"Run #{running.pk}: cancellation requested" in page
    assert f"Already finished, left as they were: #{done.pk} (succeeded)." in page
    done.refresh_from_db()
    assert done.status == BenchmarkRun.Status.SUCCEEDED and not done.cancel_requested
