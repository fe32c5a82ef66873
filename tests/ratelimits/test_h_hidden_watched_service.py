"""A rate-limit policy's page named the service it watches, and linked its admin page, to Operators and Viewers
from whom that service is hidden ("Service: FHIR R4 API"). It says "a service hidden from you" instead, as the
scaling policy's page does for a hidden alert rule; an Operator's save keeps the service (real PostgreSQL)."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import OPERATORS, VIEWERS
from apps.ratelimits.models import RateLimitPolicy
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def watched():
    fhir = service_create(name="FHIR R4 API", slug="fhir-api")
    fhir.visible_to.add(Group.objects.create(name="TeamFHIR"))
    policy = RateLimitPolicy.objects.get(scope="patient_data")
    RateLimitPolicy.objects.filter(pk=policy.pk).update(service=fhir)
    return policy, fhir


def _page(client, policy) -> str:
    response = client.get(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("role", [OPERATORS, VIEWERS])
def test_the_page_says_a_hidden_service_is_watched_without_naming_it(client, staff, watched, role):
    policy, fhir = watched
    client.force_login(staff("outsider", role))
    page = _page(client, policy)
    assert "FHIR R4 API" not in page  # was "Service: FHIR R4 API"
    assert f"/admin/services/service/{fhir.pk}/" not in page  # was its link
    assert "A service hidden from you" in page


def test_an_operators_save_keeps_the_hidden_service(client, staff, watched):
    policy, fhir = watched
    client.force_login(staff("outsider", OPERATORS))
    form = client.get(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/").context["adminform"].form
    assert "service" not in form.fields
    data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}
    data = {name: "on" if value is True else value for name, value in data.items()}
    data |= {"requests": 25, "adjustments-TOTAL_FORMS": 0, "adjustments-INITIAL_FORMS": 0}
    response = client.post(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    policy.refresh_from_db()
    assert policy.requests == 25 and policy.service_id == fhir.pk


def test_the_services_team_still_reads_its_name(client, staff, watched):
    policy, _ = watched
    client.force_login(staff("member", VIEWERS, "TeamFHIR"))
    page = _page(client, policy)
    assert "FHIR R4 API" in page and "A service hidden from you" not in page
