"""Alert rules refuse, field by field, what evaluation could not use (a window reaching before year 1, an
address mail cannot go to); and one rule that still cannot be evaluated never stops the others."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ValidationError

from apps.caching.services import cache_policy_ensure
from apps.metrics import services
from apps.metrics.models import AlertRule
from apps.metrics.recorder import Recorder

pytestmark = pytest.mark.django_db


def _errors(**fields) -> dict[str, list[str]]:
    rule = AlertRule(**{"name": "rule", "metric": "p95_ms", "threshold": 500, **fields})
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    return refused.value.message_dict


def test_a_sensible_rule_is_accepted():
    AlertRule(name="p95", metric="p95_ms", threshold=500, window_minutes=7 * 24 * 60, hysteresis_pct=0,
              email_to="oncall@example.org, lead@example.org,").full_clean()  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"window_minutes": 2_147_483_647}, "window_minutes"),
        ({"window_minutes": 0}, "window_minutes"),
        ({"hysteresis_pct": -10}, "hysteresis_pct"),
        ({"hysteresis_pct": 250}, "hysteresis_pct"),
        ({"hysteresis_pct": float("nan")}, "hysteresis_pct"),
        ({"threshold": float("nan")}, "threshold"),
        ({"for_seconds": -1}, "for_seconds"),
        ({"for_seconds": 2_147_483_647}, "for_seconds"),
        ({"email_to": "not an address,,@@"}, "email_to"),
        ({"email_to": "oncall@example.org; lead@example.org"}, "email_to"),
    ],
)
def test_values_evaluation_cannot_use_are_refused(fields, field):
    assert field in _errors(**fields)


@pytest.mark.parametrize(
    ("metric", "operator", "threshold"),
    [("cpu_pct", "gt", 150), ("memory_pct", "gt", 100), ("error_rate_pct", "gt", -1), ("cache_hit_rate_pct", "lt", 0),
     ("p95_ms", "gt", -50), ("benchmark_regressions", "lt", 0)],
)  # fmt: skip
def test_a_threshold_the_metric_cannot_cross_is_refused_by_the_model_itself(metric, operator, threshold):
    """Not only in the admin form: a rule made by any path that validates (a service, a shell's full_clean, a
    future API) is held to the same bounds."""
    assert "threshold" in _errors(metric=metric, operator=operator, threshold=threshold)


def test_a_cache_namespace_no_policy_names_is_refused_by_the_model_itself():
    [message] = _errors(metric="cache_hit_rate_pct", operator="lt", threshold=80, cache_namespace="patient-data")[
        "cache_namespace"
    ]
    assert message.startswith("No cache namespace is called 'patient-data'")
    rule = AlertRule(name="hits", metric="cache_hit_rate_pct", operator="lt", threshold=80,
                     cache_namespace=" patient_data ")  # fmt: skip
    cache_policy_ensure(namespace="patient_data")
    rule.full_clean()
    assert rule.cache_namespace == "patient_data"


def test_the_email_error_names_the_bad_addresses():
    [message] = _errors(email_to="oncall@example.org, not an address,,@@")["email_to"]
    assert "not an address" in message and "@@" in message and "oncall@" not in message


def test_admin_form_shows_field_errors_not_a_500(admin_client):
    form = {"name": "huge window", "enabled": "on", "metric": "p95_ms", "operator": "gt", "threshold": 500,
            "window_minutes": 2_147_483_647, "for_seconds": 120, "hysteresis_pct": -5, "min_requests": 20,
            "severity": "warning", "email_to": "not an address,,@@"}  # fmt: skip
    response = admin_client.post("/admin/metrics/alertrule/add/", form)
    assert response.status_code == 200
    assert {"window_minutes", "hysteresis_pct", "email_to"} <= set(response.context["adminform"].form.errors)
    assert not AlertRule.objects.filter(name="huge window").exists()


def test_a_rule_that_cannot_be_evaluated_does_not_stop_the_others(caplog):
    broken = AlertRule.objects.create(
        name="A broken window",
        metric="p95_ms",
        threshold=1,
        min_requests=1,
        for_seconds=0,
        window_minutes=2_147_483_647,
    )  # saved past validation
    working = AlertRule.objects.create(name="B p95", metric="p95_ms", threshold=1, min_requests=1, for_seconds=0)
    process = Recorder(flush_interval=3600)
    for _ in range(5):
        process.record(route="api/v1/x/", method="GET", status=200, client="app", elapsed_us=50_000)
    process.flush()

    with caplog.at_level(logging.WARNING, logger="apps.metrics.services"):
        fired = services.alerts_evaluate()

    fired_rules = [alert.rule for alert in fired]  # the migrations' seeded rules are evaluated too
    assert working in fired_rules and broken not in fired_rules
    assert any(broken.name in record.getMessage() for record in caplog.records)
    working.refresh_from_db()
    assert working.last_evaluated_at is not None
