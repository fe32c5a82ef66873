"""`/api/v1/audit/?since=0001-01-01` on a hospital clock east of UTC (Asia/Tokyo): that day begins before year 1
in UTC, and DRF's DateTimeField raised OverflowError converting it (a 500). It is a 400 naming the field."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["since", "until"])
def test_the_calendars_first_day_east_of_utc_is_a_field_400(settings, api, issue_token, name):
    settings.TIME_ZONE = "Asia/Tokyo"
    token = issue_token("audit:read")
    response = api.get("/api/v1/audit/", {name: "0001-01-01"}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400, response.content[:300]
    assert name in response.json()["errors"]
    assert api.get("/api/v1/audit/", {name: "0001-01-02"}, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
