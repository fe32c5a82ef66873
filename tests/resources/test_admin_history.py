"""Resource samples and recommendations are the monitor's record: an Administrator could delete them (the
delete page and the list's 'Delete selected'), erasing what a host went through before an incident. Only the
monitor's pruning removes them."""

import pytest

from apps.resources.models import ResourceRecommendation, ResourceSample

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", [ResourceSample, ResourceRecommendation])
def test_an_administrator_deletes_no_sample_or_recommendation(admin_client, model):
    if model is ResourceSample:
        row = ResourceSample.objects.create(host="api-1", cpu_pct=97, memory_pct=10, disk_pct=10)
    else:
        row = ResourceRecommendation.objects.create(kind="cpu", host="api-1", metric="cpu_pct", value=97,
                                                    threshold=70, message="CPU at 97%")  # fmt: skip
    base = f"/admin/resources/{model._meta.model_name}/"
    assert admin_client.get(f"{base}{row.pk}/delete/").status_code == 403
    assert admin_client.post(f"{base}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    listed = admin_client.get(base)
    assert listed.status_code == 200 and "delete_selected" not in listed.content.decode()
    admin_client.post(base, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert model.objects.filter(pk=row.pk).exists()
