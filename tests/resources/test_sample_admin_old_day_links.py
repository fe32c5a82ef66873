"""The samples' admin list lost its date hierarchy (its year/month/day links were a SELECT DISTINCT over every
sample), and with it the lookups its links used: old links and bookmarks (`?at__year=2026&at__month=12&at__day=7`)
answered 400. They are now sent to the date filter's range for the same day, month or year."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.resources.models import ResourceSample

pytestmark = pytest.mark.django_db
URL = "/admin/resources/resourcesample/"


def _sample(host: str, at: datetime) -> None:
    sample = ResourceSample.objects.create(host=host, cpu_pct=1, memory_pct=1, disk_pct=1)
    ResourceSample.objects.filter(pk=sample.pk).update(at=at)


@pytest.mark.parametrize(
    ("query", "hosts"),
    [
        ("at__year=2026&at__month=3&at__day=7", ["that-day"]),
        ("at__year=2026&at__month=3", ["that-day", "that-month"]),
        ("at__year=2026", ["that-day", "that-month", "that-year"]),
    ],
)
def test_an_old_date_hierarchy_link_shows_the_same_days(admin_client, query, hosts):
    day = timezone.make_aware(datetime(2026, 3, 7, 12))
    _sample("that-day", day)
    _sample("that-month", day + timedelta(days=3))
    _sample("that-year", day + timedelta(days=60))
    _sample("next-year", day + timedelta(days=365))
    response = admin_client.get(f"{URL}?{query}", follow=True)
    assert response.status_code == 200, response.content[:300]
    assert sorted(row.host for row in response.context["cl"].result_list) == sorted(hosts)


def test_a_date_hierarchy_part_that_is_no_date_is_still_refused(admin_client):
    assert admin_client.get(f"{URL}?at__year=abc").status_code == 400
    assert admin_client.get(f"{URL}?at__year=2026&at__month=13").status_code == 400
