"""A deployment's local path that this host cannot even look up (a name longer than the filesystem takes, a
folder the server may not enter) is a field error on `local_path`: its lookup raised OSError out of the
model's validation, a 500 on the admin's add and change pages."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.inference.models import ModelDeployment
from tests.admin_pages import page_data

pytestmark = pytest.mark.django_db
TOO_LONG = "/tmp/" + "a" * 300  # in a folder that exists, a name past the 255 bytes Linux takes


def test_a_path_too_long_to_look_up_is_a_field_error_of_the_model():
    deployment = ModelDeployment(name="local-embedder", source="path", task="embedding", local_path=TOO_LONG)
    with pytest.raises(ValidationError) as refused:
        deployment.full_clean()
    assert "File name too long" in refused.value.message_dict["local_path"][0]


def test_a_path_too_long_to_look_up_is_a_field_error_on_the_admin_page(admin_client):
    admin_client.raise_request_exception = False
    url = "/admin/inference/modeldeployment/add/"
    data = {**page_data(admin_client.get(url).context), "name": "local-embedder", "source": "path",
            "task": "embedding", "local_path": TOO_LONG}  # fmt: skip
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "File name too long" in response.context["adminform"].form.errors["local_path"][0]
    assert not ModelDeployment.objects.filter(name="local-embedder").exists()
