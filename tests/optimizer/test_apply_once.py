"""A recommendation is applied once: two applies at the same moment (two admins, a double click, the admin
beside `optimize --apply`) each found it pending, because the row lock was let go before the change was
made, and both made the change and were audited and recorded as applied. The apply now claims it (applying,
committed) first; a claim whose process was lost is failed by the stuck checker."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.optimizer import services
from apps.optimizer.models import OptimizationRun, Recommendation
from apps.optimizer.steps import STEPS
from tests.helpers import at_once

pytestmark = pytest.mark.django_db(transaction=True)


def recommendation() -> Recommendation:
    run = services.optimization_run_create(target="caching", requested_by="test")
    return Recommendation.objects.create(
        run=run, step="caching", kind="cache_ttl", subject="clinical", title="Raise the TTL", reason="hits",
        change={"ttl": 600},
    )  # fmt: skip


def test_two_applies_at_once_make_the_change_once(monkeypatch):
    proposal = recommendation()
    changes, finished = [], []
    turn = threading.Condition()

    def change(change: dict, subject: str, evidence: dict | None = None) -> dict:
        with turn:
            changes.append(subject)
            turn.notify_all()
            # Held until the other apply has made its change too or has given up: an apply that did not see
            # this one's claim gets here while this one is still changing.
            assert turn.wait_for(lambda: len(changes) == 2 or finished, timeout=30)
        return {"changed": subject}

    monkeypatch.setattr(STEPS["caching"], "apply", change)

    def apply() -> str:
        try:
            return services.recommendation_apply(recommendation=proposal, via="admin").status
        except ValueError as exc:
            return str(exc)
        finally:
            with turn:
                finished.append(1)
                turn.notify_all()

    results = at_once(apply)
    assert changes == ["clinical"]
    assert sorted(results) == sorted(["applied", f"Recommendation {proposal.pk} is applying."])
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLIED and proposal.outcome == {"changed": "clinical"}
    audited = AuditEvent.objects.filter(resource_type="OptimizationRecommendation")
    assert list(audited.values_list("resource_id", flat=True)) == [f"{proposal.pk}:applied"]


def test_a_claim_whose_apply_was_lost_is_failed_by_the_stuck_checker():
    proposal = recommendation()
    Recommendation.objects.filter(pk=proposal.pk).update(status=Recommendation.Status.APPLYING,
                                                          decided_at=timezone.now())  # fmt: skip
    OptimizationRun.objects.update(status=OptimizationRun.Status.SUCCEEDED)
    services.optimization_runs_fail_stuck()
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLYING  # within the deadline it may still be applying

    later = timezone.now() + timedelta(seconds=settings.OPTIMIZER_RUN_DEADLINE_SECONDS + 1)
    services.optimization_runs_fail_stuck(now=later)
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.FAILED
    assert proposal.outcome["lost"] is True and "process was lost" in proposal.outcome["error"]
    with pytest.raises(ValueError, match="failed to apply"):
        services.recommendation_apply(recommendation=proposal)


def test_an_apply_that_outlived_the_checker_records_what_it_did(monkeypatch):
    proposal = recommendation()
    later = timezone.now() + timedelta(seconds=settings.OPTIMIZER_RUN_DEADLINE_SECONDS + 1)

    def slow_change(change: dict, subject: str, evidence: dict | None = None) -> dict:
        services.recommendations_fail_stuck(now=later)  # the checker's pass while the change went on
        assert Recommendation.objects.get(pk=proposal.pk).status == Recommendation.Status.FAILED
        return {"changed": subject}

    monkeypatch.setattr(STEPS["caching"], "apply", slow_change)
    assert services.recommendation_apply(recommendation=proposal).status == Recommendation.Status.APPLIED
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLIED and proposal.outcome == {"changed": "clinical"}
