"""The seeded adaptive policies shed load down to a floor a hospital can work at: a host busy with its own model
loads (CPU over the threshold for good) took the audit trail to 3/min, and the dashboard's Audit page was refused
on its third request in a minute; inference fell to 5/min."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.db.models import F
from django.utils import timezone

from apps.ratelimits import services
from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db
BUSY_HOST = services.LoadSignals(cpu_pct=100.0, p95_ms_by_service={})


def _shed_for_good() -> None:
    """The CPU over its threshold run after run, a signal window apart, until nothing more moves."""
    for _ in range(30):
        if not services.ratelimits_adapt(signals=BUSY_HOST):
            RateLimitPolicy.objects.update(last_step_at=F("last_step_at") - services.STEP_DWELL)
            if not services.ratelimits_adapt(signals=BUSY_HOST):
                return
        RateLimitPolicy.objects.update(last_step_at=F("last_step_at") - services.STEP_DWELL)


def test_a_busy_host_never_takes_the_seeded_limits_below_their_floors():
    _shed_for_good()
    in_force = {p.scope: p.effective_requests for p in RateLimitPolicy.objects.all()}
    assert in_force["audit_logs"] == 15  # of 30: a staff session still pages through the audit trail
    assert in_force["ai_inference"] == 20  # of 50
    assert in_force["patient_data"] == 100 and in_force["clinical_data"] == 200  # priority 1: never shed
    # Still the adaptive contract: tightened by the factor, every step recorded.
    audit = RateLimitPolicy.objects.get(scope="audit_logs")
    steps = [(a.direction, a.old_factor, a.new_factor) for a in audit.adjustments.order_by("at", "id")]
    assert steps == [("tighten", 1.0, 0.5)]


def test_an_install_seeded_before_the_floors_gets_them_and_an_operators_own_floor_stays():
    RateLimitPolicy.objects.filter(scope="audit_logs").update(
        min_factor=0.1, current_factor=0.1, signal_read_at=timezone.now()
    )
    RateLimitPolicy.objects.filter(scope="ai_inference").update(min_factor=0.2)  # an operator's choice
    migration = importlib.import_module("apps.ratelimits.migrations.0010_seeded_floors")
    migration.raise_seeded_floors(django_apps, None)
    floors = dict(RateLimitPolicy.objects.values_list("scope", "min_factor"))
    assert floors["audit_logs"] == 0.5 and floors["ai_inference"] == 0.2
    # The controller's next run lifts a factor below the new floor, and records why.
    changes = services.ratelimits_adapt(signals=BUSY_HOST)
    lifted = [c for c in changes if c.policy.scope == "audit_logs"]
    assert [(c.old_factor, c.new_factor, c.reason) for c in lifted] == [(0.1, 0.5, "min_factor raised to 0.5")]
    assert RateLimitPolicy.objects.get(scope="audit_logs").effective_requests == 15
