"""Generated tokens per second are recorded per deployment, and the series shows a viewer only the deployments
of the services they see: with the only text-generating deployment's service hidden from a Viewer, the Inference
page's tokens/s chart plotted that service's traffic (one series of every deployment together). Points of the
bare series, recorded before it named its deployment, are read only by those who see every service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from apps.accounts.roles import VIEWERS
from apps.inference import serving
from apps.inference.models import ModelDeployment
from apps.metrics import selectors
from apps.metrics.models import MetricPoint
from apps.services.services import service_create

HOUR = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _point(series: str, at: datetime, value: float) -> MetricPoint:
    return MetricPoint(series=series, at=at, sum=value, count=1, min=value, max=value)


@pytest.fixture
def world(django_user_model):
    """A viewer from whom the clinical service (and its generating deployment) is hidden; a visible service
    with one generating deployment, and a deployment of no service (every staff user's)."""
    clinical = service_create(name="Clinical assistant", slug="clinical", route_prefix="api/v1/clinical/")
    clinical.visible_to.add(Group.objects.create(name="Clinical AI"))
    triage = service_create(name="Triage", slug="triage", route_prefix="api/v1/triage/")
    for name, service in (("clinical-assistant", clinical), ("triage-writer", triage), ("shared-writer", None)):
        ModelDeployment.objects.create(name=name, source=ModelDeployment.Source.MINILM, task="generation",
                                       service=service)  # fmt: skip
    viewer = django_user_model.objects.create_user("viewer", "viewer@example.org", "pw-viewer-1", is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEWERS))
    api = APIClient()
    api.force_login(viewer)
    return {"viewer": api, "visible": frozenset({triage.pk}), "clinical": clinical}


def _values(api, start: datetime, end: datetime, step: int) -> list:
    response = api.get("/api/v1/metrics/series/", {"metric": "inference_tokens_per_s", "step": step,
                                                   "start": start.isoformat(), "end": end.isoformat()})  # fmt: skip
    assert response.status_code == 200, response.content
    return [value for _, value in response.json()["points"]]


@pytest.mark.django_db
def test_a_bare_point_recorded_before_is_read_only_by_those_who_see_every_service(world, admin_client):
    """The reviewer's case: the server's point, as recorded before the series named its deployment."""
    from apps.metrics.services import metric_points_record

    metric_points_record(values={"inference.tokens_per_s": 42.5}, at=HOUR + timedelta(minutes=5))
    assert _values(world["viewer"], HOUR, HOUR + timedelta(hours=1), 900) == [None] * 4  # old: 42.5 in the first
    assert _values(admin_client, HOUR, HOUR + timedelta(hours=1), 900) == [42.5, None, None, None]
    world["clinical"].visible_to.clear()  # open to every role: the viewer now sees all traffic
    assert _values(world["viewer"], HOUR, HOUR + timedelta(hours=1), 900) == [42.5, None, None, None]


@pytest.mark.django_db
def test_a_hidden_services_deployment_is_left_out_and_the_visible_ones_are_summed(world, admin_client):
    MetricPoint.objects.bulk_create([
        _point("inference.tokens_per_s.clinical-assistant", HOUR + timedelta(minutes=1), 100.0),
        _point("inference.tokens_per_s.triage-writer", HOUR + timedelta(minutes=2), 40.0),
        _point("inference.tokens_per_s.triage-writer", HOUR + timedelta(minutes=7), 20.0),  # its mean: 30
        _point("inference.tokens_per_s.shared-writer", HOUR + timedelta(minutes=3), 10.0),
        _point("inference.tokens_per_s.clinical-assistant", HOUR + timedelta(minutes=20), 7.0),  # hidden only
    ])  # fmt: skip
    end = HOUR + timedelta(minutes=30)
    assert _values(world["viewer"], HOUR, end, 900) == [40.0, None]  # old: the mean of every point, 35.0 and 7.0
    assert _values(admin_client, HOUR, end, 900) == [140.0, 7.0]


@pytest.mark.django_db
def test_the_series_of_a_viewer_is_still_one_query(world, django_assert_max_num_queries):
    MetricPoint.objects.bulk_create([_point("inference.tokens_per_s.triage-writer", HOUR, 40.0),
                                     _point("inference.tokens_per_s.clinical-assistant", HOUR, 9.0),
                                     _point("inference.tokens_per_s", HOUR, 5.0)])  # fmt: skip
    for visible, expected in ((world["visible"], 40.0), (None, 54.0)):
        with django_assert_max_num_queries(1):
            series = selectors.time_series(metric="inference_tokens_per_s", since=HOUR,
                                           until=HOUR + timedelta(minutes=5), step_seconds=300,
                                           visible_services=visible)  # fmt: skip
        assert series == [(HOUR, expected)]


def test_the_server_records_the_generating_deployments_own_series(monkeypatch):
    """As serving does: each deployment's batches feed its own `inference.tokens_per_s.<deployment>`."""
    from apps.metrics import services

    recorded = []
    monkeypatch.setattr(services, "metric_points_record", lambda *, values: recorded.append(values))
    monkeypatch.setattr(serving, "token_meter", serving.TokenMeter(interval=0))

    class Generator:
        def generate(self, prompts, limits, **options):
            return [{"text": p, "output_tokens": limit} for p, limit in zip(prompts, limits, strict=True)]

    serving._generate_batch(Generator(), "clinical-assistant")([("fever", 3)])
    serving._generate_batch(Generator(), "triage-writer")([("cough", 2)])
    assert [list(values) for values in recorded] == [
        ["inference.tokens_per_s.clinical-assistant"], ["inference.tokens_per_s.triage-writer"]
    ]  # fmt: skip
