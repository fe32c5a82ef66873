"""A bound at the calendar's first day (`since=0001-01-01`) on the hospital's clock east of UTC (Asia/Tokyo) begins
before year 1 in UTC: DRF's DateTimeField raised OverflowError converting it and the client got a 500. It is a 400
on the field, as FHIR date searches answer (apps.clinical.fhir.params.parse_date)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def tokyo(settings):
    settings.TIME_ZONE = "Asia/Tokyo"


@pytest.mark.parametrize("resource", ["vitals", "encounters"])
@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("value", ["0001-01-01", "0001-01-01T05:00:00+09:00"])
def test_a_bound_before_year_one_in_utc_is_a_field_400(tokyo, clinician, patient, resource, name, value):
    response = clinician.get(f"/api/v1/patients/{patient.pk}/{resource}/", {name: value})
    assert response.status_code == 400, response.content[:300]
    assert name in response.json()["errors"]


@pytest.mark.parametrize("resource", ["vitals", "encounters"])
def test_the_calendars_first_and_last_days_that_fit_still_answer(tokyo, clinician, patient, resource):
    url = f"/api/v1/patients/{patient.pk}/{resource}/"
    assert clinician.get(url, {"since": "0001-01-02", "until": "9999-12-31"}).status_code == 200
