"""Emergency mode by hand "until 9999-12-31 23:59" (for good, to the admin) on a hospital clock behind UTC is
past year 9999 in UTC: the form took it, PostgreSQL stored it, and every read of the policy failed after it
(its admin page, the dashboard's API, the checker's pass over every policy) with psycopg's "timestamp too
large". An end that cannot be read back is a field error in the form."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict

from apps.scaling import selectors, services
from apps.scaling.models import ScalingPolicy
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("zone", "day", "time"),
    [("America/New_York", "9999-12-31", "23:59:59"), ("Asia/Tokyo", "0001-01-01", "00:00:00")],
)
def test_an_end_outside_the_years_a_timestamp_holds_in_utc_is_a_form_error(admin_client, settings, zone, day, time):
    settings.TIME_ZONE = zone
    service = service_ensure(slug="triage", name="Triage", base_url="http://127.0.0.1:9")[0]
    policy = ScalingPolicy.objects.create(service=service, predictive=False)
    form = {key: ("" if value is None else value) for key, value in model_to_dict(policy).items() if value is not False}
    form |= {"emergency_manual": "on", "emergency_until_0": day, "emergency_until_1": time}

    response = admin_client.post(f"/admin/scaling/scalingpolicy/{policy.pk}/change/", form)

    assert response.status_code == 200
    assert "emergency_until" in response.context["adminform"].form.errors
    policy = ScalingPolicy.objects.get(pk=policy.pk)  # still readable
    assert (policy.emergency_manual, policy.emergency_until) == (False, None)
    assert [row["id"] for row in selectors.scaling_overview()] == [policy.pk]
    services.policies_reconcile()


def test_an_end_far_ahead_but_readable_is_taken(admin_client, settings):
    settings.TIME_ZONE = "America/New_York"
    service = service_ensure(slug="triage", name="Triage", base_url="http://127.0.0.1:9")[0]
    policy = ScalingPolicy.objects.create(service=service, predictive=False)
    form = {key: ("" if value is None else value) for key, value in model_to_dict(policy).items() if value is not False}
    form |= {"emergency_manual": "on", "emergency_until_0": "9999-12-30", "emergency_until_1": "23:59:59"}

    response = admin_client.post(f"/admin/scaling/scalingpolicy/{policy.pk}/change/", form)

    assert response.status_code == 302
    policy = ScalingPolicy.objects.get(pk=policy.pk)
    assert policy.emergency_manual and policy.emergency_until.year == 9999 and policy.emergency_mode


def test_an_end_already_past_is_a_form_error_not_emergency_mode_silently_off(admin_client):
    """ "Emergency mode by hand until" a time already past (yesterday's date by mistake) saved, and the mode in
    force was computed off at once: the page said saved, the minimum was never lifted."""
    service = service_ensure(slug="triage", name="Triage", base_url="http://127.0.0.1:9")[0]
    policy = ScalingPolicy.objects.create(service=service, predictive=False)
    form = {key: ("" if value is None else value) for key, value in model_to_dict(policy).items() if value is not False}
    form |= {"emergency_manual": "on", "emergency_until_0": "2020-01-01", "emergency_until_1": "08:00:00"}

    response = admin_client.post(f"/admin/scaling/scalingpolicy/{policy.pk}/change/", form)

    assert response.status_code == 200
    assert "Already past" in str(response.context["adminform"].form.errors["emergency_until"])
    policy = ScalingPolicy.objects.get(pk=policy.pk)
    assert (policy.emergency_manual, policy.emergency_until, policy.emergency_mode) == (False, None, False)
