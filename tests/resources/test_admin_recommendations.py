"""Resource recommendations open and resolve with the monitor's samples: admin shows them and changes none.
An Administrator could set one back to open beside the open one of the same kind and host (a 500: the unique
constraint) or mark one resolved with no resolution time (kept forever by the pruning, reopened by the next
sample)."""

import pytest

from apps.resources.models import ResourceRecommendation

pytestmark = pytest.mark.django_db


def test_recommendations_are_read_only_in_admin(admin_client):
    resolved = ResourceRecommendation.Status.RESOLVED
    old = ResourceRecommendation.objects.create(kind="cpu", host="api-1", metric="cpu_pct", value=95, threshold=70,
                                                message="CPU high", status=resolved)  # fmt: skip
    ResourceRecommendation.objects.create(kind="cpu", host="api-1", metric="cpu_pct", value=96, threshold=70,
                                          message="CPU high again")  # fmt: skip
    admin_client.raise_request_exception = False
    url = f"/admin/resources/resourcerecommendation/{old.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200 and 'name="status"' not in page.content.decode()
    response = admin_client.post(url, {"status": "open"})
    assert response.status_code == 403
    old.refresh_from_db()
    assert old.status == ResourceRecommendation.Status.RESOLVED
