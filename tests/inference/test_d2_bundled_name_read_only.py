"""A bundled deployment's name is read-only on its change page (as a cache policy's namespace): seed_demo keeps
the bundled deployments by name, so a rename moved the model's API URL and the next seed made the old name
again, a second deployment of the same model. Any other deployment can still be renamed."""

from __future__ import annotations

import pytest

from apps.inference.models import ModelDeployment
from apps.inference.services import bundled_deployments_ensure
from tests.admin_pages import page_data

pytestmark = pytest.mark.django_db


def _save_with_name(admin_client, deployment: ModelDeployment, name: str):
    url = f"/admin/inference/modeldeployment/{deployment.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    return page, admin_client.post(url, {**page_data(page.context), "name": name})


def test_a_bundled_deployment_keeps_its_name_when_saved_in_admin(admin_client):
    bundled = bundled_deployments_ensure()[0]
    page, response = _save_with_name(admin_client, bundled, "renamed-embeddings")
    assert "name" not in page.context["adminform"].form.fields
    assert response.status_code == 302
    bundled.refresh_from_db()
    assert bundled.name == "clinical-embeddings"
    bundled_deployments_ensure()  # seed_demo again
    assert ModelDeployment.objects.filter(source=bundled.source).count() == 1


def test_another_deployment_can_be_renamed(admin_client):
    bundled_deployments_ensure()
    own = ModelDeployment.objects.create(name="triage-embedder", source=ModelDeployment.Source.MINILM,
                                         task=ModelDeployment.Task.EMBEDDING)  # fmt: skip
    page, response = _save_with_name(admin_client, own, "triage-embedder-2")
    assert "name" in page.context["adminform"].form.fields
    assert response.status_code == 302
    own.refresh_from_db()
    assert own.name == "triage-embedder-2"
    page = admin_client.get("/admin/inference/modeldeployment/add/")
    assert "name" in page.context["adminform"].form.fields
