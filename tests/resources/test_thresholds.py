"""The thresholds are edited in admin (the issue's "edited live from admin") and read by the next sample;
what admin refuses is said on the field (real PostgreSQL, Django's admin)."""

import pytest

from apps.resources import services
from apps.resources.models import ResourceRecommendation, ResourceSample, ResourceThreshold

pytestmark = pytest.mark.django_db


def _sample(cpu: float) -> list[ResourceRecommendation]:
    sample = ResourceSample.objects.create(host="worker-a", cpu_pct=cpu, memory_pct=10, disk_pct=10)
    return services.recommendations_update(sample=sample)


def test_the_brief_thresholds_are_seeded_and_an_admin_edit_applies_to_the_next_sample(admin_client):
    assert dict(ResourceThreshold.objects.values_list("kind", "pct")) == {
        "cpu": 70.0, "memory": 80.0, "disk": 90.0, "pool": 90.0, "redis_memory": 90.0,
    }  # fmt: skip
    assert [r.kind for r in _sample(cpu=75)] == ["cpu"]
    cpu = ResourceThreshold.objects.get(kind="cpu")
    response = admin_client.post(f"/admin/resources/resourcethreshold/{cpu.pk}/change/", {"pct": "85"})
    assert response.status_code == 302
    ResourceRecommendation.objects.all().delete()
    assert _sample(cpu=80) == []  # night shift batch jobs: 80% is fine now


@pytest.mark.parametrize("value", ["150", "0", "nan", "-5", "lots"])
def test_a_threshold_that_could_never_or_always_be_crossed_is_refused_on_its_field(admin_client, value):
    cpu = ResourceThreshold.objects.get(kind="cpu")
    response = admin_client.post(f"/admin/resources/resourcethreshold/{cpu.pk}/change/", {"pct": value})
    assert response.status_code == 200 and response.context["adminform"].form.errors.get("pct")
    cpu.refresh_from_db()
    assert cpu.pct == 70.0


def test_thresholds_are_neither_added_nor_deleted_in_admin(admin_client):
    assert admin_client.get("/admin/resources/resourcethreshold/add/").status_code == 403
    cpu = ResourceThreshold.objects.get(kind="cpu")
    assert admin_client.get(f"/admin/resources/resourcethreshold/{cpu.pk}/delete/").status_code == 403


def test_a_threshold_of_100_is_reached_by_a_full_pool(admin_client):
    """Admin takes 100% ("only when it is full"), but every figure stops at 100 (a full pool with requests
    waiting, a CPU quota all used, memory at its limit) and the monitor wanted one above it: never crossed,
    the recommendation never opened however full the pool."""
    pool = ResourceThreshold.objects.get(kind="pool")
    response = admin_client.post(f"/admin/resources/resourcethreshold/{pool.pk}/change/", {"pct": "100"})
    assert response.status_code == 302
    sample = ResourceSample.objects.create(host="api-1", cpu_pct=10, memory_pct=10, disk_pct=10, pool_pct=100.0)
    assert [r.kind for r in services.recommendations_update(sample=sample)] == ["pool"]
