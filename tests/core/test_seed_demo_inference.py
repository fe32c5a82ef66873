"""`seed_demo`'s inference services own the traffic of their endpoints (route prefixes matching the route
templates the metrics middleware records), and the adaptive ai_inference limit watches one of them."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.metrics.recorder import recorder
from apps.metrics.selectors import route_latency, service_p95_ms
from apps.ratelimits.models import RateLimitPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def _seed() -> None:
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())


def _requests_of(slug: str) -> int:
    prefix = Service.objects.get(slug=slug).route_prefix
    return route_latency(route_prefixes=[prefix])["count"] if prefix else 0


def test_calls_to_each_deployment_are_its_services_traffic(client):
    _seed()
    recorder.flush()  # nothing from earlier tests in this process
    for _ in range(3):
        client.post("/api/v1/inference/clinical-assistant/generate", {"prompt": "hi"}, content_type="application/json")
    for _ in range(2):
        client.post("/api/v1/inference/clinical-embeddings/embed", {"texts": ["hi"]}, content_type="application/json")
    recorder.flush()

    assert _requests_of("clinical-assistant") == 3
    assert _requests_of("embeddings") == 2
    assert _requests_of("clinical-api") == 0
    watched = Service.objects.get(slug="embeddings")
    assert watched.pk in service_p95_ms(since=timezone.now() - timedelta(minutes=5))
    assert RateLimitPolicy.objects.get(scope="ai_inference").service == watched


def test_a_rerun_gives_services_seeded_without_a_prefix_theirs_and_keeps_an_admins_own():
    _seed()
    Service.objects.filter(slug__in=["clinical-assistant", "embeddings"]).update(route_prefix="")  # an older seed
    Service.objects.filter(slug="clinical-api").update(route_prefix="api/v1/")  # an admin's choice
    policy = RateLimitPolicy.objects.get(scope="ai_inference")
    policy.service = Service.objects.get(slug="clinical-assistant")
    policy.save()

    _seed()

    prefixes = dict(Service.objects.values_list("slug", "route_prefix"))
    assert prefixes["clinical-assistant"] == "api/v1/inference/<slug:name>/generate"
    assert prefixes["embeddings"] == "api/v1/inference/<slug:name>/embed"
    assert prefixes["clinical-api"] == "api/v1/"
    assert prefixes["workers"] == "" and prefixes["dashboard"] == ""
    assert RateLimitPolicy.objects.get(scope="ai_inference").service.slug == "clinical-assistant"
