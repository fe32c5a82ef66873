"""A Viewer reads the model deployments and cannot start a measurement of every quantization mode on the
inference workers."""

import pytest

from apps.accounts.roles import OPERATORS, VIEWERS
from apps.inference.services import bundled_deployments_ensure
from tests.caching.test_admin_actions import _offered, _staff

pytestmark = pytest.mark.django_db


def test_a_viewer_is_not_offered_a_quantization_measurement(client, django_user_model):
    bundled_deployments_ensure()
    client.force_login(_staff(django_user_model, VIEWERS))
    assert "measure_modes" not in _offered(client, "/admin/inference/modeldeployment/")
    client.force_login(_staff(django_user_model, OPERATORS))
    assert "measure_modes" in _offered(client, "/admin/inference/modeldeployment/")
