"""Alert rules in admin: a threshold the metric can never cross is a field error, a row's mistake in the list is
a message on the row (never a 500), and the list costs the same queries however many rules there are."""

from __future__ import annotations

import pytest

from apps.metrics.models import AlertRule
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db

URL = "/admin/metrics/alertrule/"
FORM = {"name": "rule", "enabled": "on", "metric": "cpu_pct", "operator": "gt", "threshold": 90, "window_minutes": 5,
        "for_seconds": 120, "hysteresis_pct": 10, "min_requests": 20, "severity": "warning"}  # fmt: skip


@pytest.fixture
def root_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123"))
    client.raise_request_exception = False
    return client


def _list_post(client, threshold_of) -> object:
    rules = list(AlertRule.objects.all())
    data = {"form-TOTAL_FORMS": len(rules), "form-INITIAL_FORMS": len(rules), "form-MIN_NUM_FORMS": 0,
            "form-MAX_NUM_FORMS": 1000, "_save": "Save"}  # fmt: skip
    for i, rule in enumerate(rules):
        data |= {f"form-{i}-id": rule.pk, f"form-{i}-threshold": threshold_of(rule)}
        if rule.enabled:
            data[f"form-{i}-enabled"] = "on"
    return client.post(URL, data)


@pytest.mark.parametrize(
    ("metric", "operator", "threshold"),
    [
        ("cpu_pct", "gt", 150),  # never fires
        ("cpu_pct", "gt", 100),  # never fires
        ("error_rate_pct", "gt", -1),  # always fires
        ("cache_hit_rate_pct", "lt", 0),  # never fires
        ("cache_hit_rate_pct", "lt", 120),  # always fires
        ("p95_ms", "gt", -50),  # always fires
        ("benchmark_regressions", "lt", 0),  # never fires
    ],
)
def test_a_threshold_the_metric_cannot_cross_is_a_field_error(root_client, metric, operator, threshold):
    response = root_client.post(f"{URL}add/", {**FORM, "metric": metric, "operator": operator, "threshold": threshold})
    assert response.status_code == 200
    assert "threshold" in response.context["adminform"].form.errors
    assert not AlertRule.objects.filter(name="rule").exists()


@pytest.mark.parametrize(
    ("metric", "operator", "threshold"),
    [("cpu_pct", "gt", 70), ("error_rate_pct", "gt", 0), ("cache_hit_rate_pct", "lt", 100), ("p95_ms", "gt", 2000),
     ("benchmark_regressions", "gt", 0)],
)  # fmt: skip
def test_sensible_thresholds_are_kept(root_client, metric, operator, threshold):
    response = root_client.post(f"{URL}add/", {**FORM, "metric": metric, "operator": operator, "threshold": threshold})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert AlertRule.objects.get(name="rule").threshold == threshold


def test_the_list_refuses_a_percentage_above_100_on_its_row(root_client):
    rule = AlertRule.objects.create(name="cpu high", metric="cpu_pct", threshold=80)
    response = _list_post(root_client, lambda r: 500 if r.pk == rule.pk else r.threshold)
    assert response.status_code == 200 and "a percentage, 0 to 100" in response.content.decode()
    rule.refresh_from_db()
    assert rule.threshold == 80


def test_a_rule_set_wrong_outside_admin_neither_500s_the_list_nor_blocks_the_others(root_client):
    """An address set by a shell or SQL: the model names `email_to`, which the row lacks (Django raised
    ValueError on every save of the list)."""
    broken = AlertRule.objects.create(name="broken", metric="cpu_pct", threshold=80, email_to="not an address")
    AlertRule.objects.filter(pk=broken.pk).update(email_to="not an address")
    rule = AlertRule.objects.create(name="p95", metric="p95_ms", threshold=2000)
    response = _list_post(root_client, lambda r: 1500 if r.pk == rule.pk else r.threshold)
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 1500

    # The broken row itself, edited: its problem is named on the row.
    response = _list_post(root_client, lambda r: 85 if r.pk == broken.pk else r.threshold)
    assert response.status_code == 200 and "Email to: Not an email address" in response.content.decode()


def test_the_list_reads_each_rule_s_service_in_the_same_query(root_client, django_assert_max_num_queries):
    def add(count: int) -> None:
        for i in range(count):
            service, _ = service_ensure(
                slug=f"svc-{AlertRule.objects.count()}-{i}", name=f"Service {AlertRule.objects.count()}-{i}"
            )
            AlertRule.objects.create(name=f"rule {service.slug}", metric="p95_ms", threshold=2000, service=service)

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.metrics.recorder import recorder

    add(2)
    root_client.get(URL)  # sessions and content types read once
    # Each measured request starts with the request timings flushed: a flush falling due inside the second one
    # (every METRICS_FLUSH_SECONDS, from a request's thread) made this test fail now and then.
    recorder.flush()
    with CaptureQueriesContext(connection) as few:
        assert root_client.get(URL).status_code == 200
    add(10)
    recorder.flush()
    with django_assert_max_num_queries(len(few)):
        assert root_client.get(URL).status_code == 200


def test_a_cache_namespace_no_policy_names_is_a_field_error(root_client):
    """A typo ("patient-data") had no reads at all: the rule said "no data" forever and never fired."""
    form = {**FORM, "metric": "cache_hit_rate_pct", "operator": "lt", "threshold": 80}
    response = root_client.post(f"{URL}add/", {**form, "cache_namespace": "patient-data"})
    assert response.status_code == 200
    [message] = response.context["adminform"].form.errors["cache_namespace"]
    assert message.startswith("No cache namespace is called 'patient-data'")
    assert root_client.post(f"{URL}add/", {**form, "cache_namespace": "patient_data"}).status_code == 302
    assert AlertRule.objects.get(name="rule").cache_namespace == "patient_data"


def test_an_alert_is_history_no_one_deletes_in_admin(root_client):
    """A superuser (and so an Administrator) could delete a fired alert and its deliveries: the record of what
    paged whom and when."""
    from apps.metrics.models import Alert

    rule = AlertRule.objects.create(**{**FORM, "enabled": True})
    alert = Alert.objects.create(rule=rule, state="firing", value=95.0, last_value=95.0, message="CPU 95%")
    assert root_client.post(f"/admin/metrics/alert/{alert.pk}/delete/", {"post": "yes"}).status_code == 403
    root_client.post("/admin/metrics/alert/", {"action": "delete_selected", "_selected_action": [alert.pk],
                                               "post": "yes"})  # fmt: skip
    assert Alert.objects.filter(pk=alert.pk).exists()


def test_a_rule_that_fired_is_still_deleted_in_admin_with_its_alerts(root_client):
    """Alerts not deletable on their own made a rule that had ever fired (and its service) undeletable: the
    rule's delete page listed alerts among what the user may not delete, and the POST was a 403."""
    from apps.metrics.models import Alert

    rule = AlertRule.objects.create(**{**FORM, "enabled": True})
    Alert.objects.create(rule=rule, state="resolved", value=95.0, last_value=95.0, message="CPU 95%")
    assert root_client.post(f"/admin/metrics/alertrule/{rule.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not AlertRule.objects.filter(pk=rule.pk).exists()
    assert list(Alert.objects.values_list("rule", "rule_name")) == [(None, rule.name)]  # its history is kept
