"""Resource samples are stamped with the database's clock; the readers of the latest sample per host (the
`/metrics` host gauges, the dashboard's live host figures) take their window on it too. A reader whose own
clock ran 30 s behind the database's found no fresh sample: every host looked gone."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics import selectors as metrics_selectors
from apps.resources import selectors, services

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader_30_s_behind(monkeypatch):
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() - timedelta(seconds=30))


def test_a_reader_behind_the_database_clock_finds_the_fresh_sample(reader_30_s_behind):
    sample = services.resources_sample(cpu_interval=0.05)
    assert selectors.latest_samples_by_host()[sample.host].pk == sample.pk
    assert metrics_selectors.live_snapshot()["host"]["memory_pct"] is not None
