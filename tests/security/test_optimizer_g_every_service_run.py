"""A run of no service (`manage.py optimize scaling`) reports on every service: its p95 verdicts, forecasts,
replica plans and recommendations name each of them, hidden ones included. Its report, admin pages and the
admin overview are only for who sees every service; a run of a service the user sees stays theirs."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ADMINISTRATORS, OPERATORS, VIEWERS
from apps.optimizer.models import OptimizationRun
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs():
    team = Group.objects.create(name="FHIR team")
    hidden, _ = service_ensure(slug="fhir-api", name="FHIR API")
    hidden.visible_to.add(team)
    shown, _ = service_ensure(slug="open-svc", name="Open service")
    every = OptimizationRun.objects.create(
        target="scaling",
        status="succeeded",
        report_html="<h1>scaling</h1><p>fhir-api p95 target 200 ms, forecast 40 req/s, 3 replicas at 09:00</p>",
        verdicts=[
            {"target": "p95_ms", "subject": "fhir-api p95 over 60 min", "measured": 90, "goal": 200, "met": True}
        ],
    )
    every.recommendations.create(step="scaling", kind="max_replicas", subject="fhir-api",
                                 title="Raise fhir-api's maximum replicas from 4 to 6", reason="forecast")  # fmt: skip
    own = OptimizationRun.objects.create(target="caching", service=shown, status="succeeded",
                                         report_html="<h1>open-svc caching</h1>")  # fmt: skip
    own.recommendations.create(step="caching", kind="ttl", subject="open cache", title="Raise open-svc TTL",
                               reason="hit rate")  # fmt: skip
    return hidden, every, own


def test_a_run_over_every_service_is_hidden_from_who_does_not_see_every_service(client, staff, runs):
    _, every, own = runs
    users = {
        "viewer": (staff("viewer", VIEWERS), False),
        "operator": (staff("op", OPERATORS), False),
        "member": (staff("member", OPERATORS, "FHIR team"), True),  # sees both services: every service
        "admin": (staff("adm", ADMINISTRATORS), True),
    }
    for label, (user, sees_every) in users.items():
        client.force_login(user)
        report = client.get(f"/optimizer/runs/{every.pk}/report/")
        assert report.status_code == (200 if sees_every else 404), label
        assert (b"fhir-api" in report.content) is sees_every, label
        assert client.get(f"/optimizer/runs/{own.pk}/report/").status_code == 200, label  # its own service's
        change = client.get(f"/admin/optimizer/optimizationrun/{every.pk}/change/")
        assert change.status_code == (200 if sees_every else 302), label  # admin: "does not exist"
        assert client.get(f"/admin/optimizer/optimizationrun/{own.pk}/change/").status_code == 200, label
        run_list = client.get("/admin/optimizer/optimizationrun/").content.decode()
        assert (f"/admin/optimizer/optimizationrun/{every.pk}/change/" in run_list) is sees_every, label
        recommendations = client.get("/admin/optimizer/recommendation/").content.decode()
        assert ("Raise fhir-api" in recommendations) is sees_every, label
        assert "Raise open-svc TTL" in recommendations, label
        overview = client.get("/admin/overview/").content.decode()
        assert ("Raise fhir-api" in overview) is sees_every, label  # pending recommendations
        assert "Raise open-svc TTL" in overview, label


def test_an_operator_cannot_apply_a_recommendation_of_a_run_over_every_service(client, staff, runs):
    _, every, _ = runs
    recommendation = every.recommendations.get()
    client.force_login(staff("op", OPERATORS))
    client.post("/admin/optimizer/recommendation/",
                {"action": "dismiss_selected", "_selected_action": [recommendation.pk]})  # fmt: skip
    recommendation.refresh_from_db()
    assert recommendation.status == "pending"


def test_once_no_service_is_hidden_the_run_over_every_service_is_everyones(client, staff, runs):
    hidden, every, _ = runs
    hidden.visible_to.clear()
    client.force_login(staff("viewer", VIEWERS))
    assert client.get(f"/optimizer/runs/{every.pk}/report/").status_code == 200
    assert "Raise fhir-api" in client.get("/admin/overview/").content.decode()
