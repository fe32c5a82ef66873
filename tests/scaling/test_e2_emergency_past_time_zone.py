"""The policy form's "Already past (...)" for an emergency-mode end already past gave the end on the hospital's
clock with no zone (`Already past (2020-07-01 08:00)`), which reads as UTC to anyone comparing it with the API's
times. It names the zone as the stale-plan line and the plan's hours do (charts.clock_label)."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict

from apps.scaling.models import ScalingPolicy
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("day", "shown"),
    [
        ("2020-07-01", "Already past (2020-07-01 08:00 EDT (America/New_York))"),
        ("2020-01-01", "Already past (2020-01-01 08:00 EST (America/New_York))"),
    ],
)
def test_an_end_already_past_is_named_with_its_zone(admin_client, settings, day, shown):
    settings.TIME_ZONE = "America/New_York"
    service = service_ensure(slug="triage", name="Triage", base_url="http://127.0.0.1:9")[0]
    policy = ScalingPolicy.objects.create(service=service, predictive=False)
    form = {key: ("" if value is None else value) for key, value in model_to_dict(policy).items() if value is not False}
    form |= {"emergency_manual": "on", "emergency_until_0": day, "emergency_until_1": "08:00:00"}

    response = admin_client.post(f"/admin/scaling/scalingpolicy/{policy.pk}/change/", form)

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["emergency_until"]
    assert error.startswith(shown), error  # old: "Already past (2020-07-01 08:00): ..."
