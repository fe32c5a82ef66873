"""A Viewer reads the model deployments and cannot start a measurement of every quantization mode on the
inference workers."""

import pytest

from apps.accounts.roles import OPERATORS, VIEWERS
from apps.inference.services import bundled_deployments_ensure
from tests.helpers import offered_actions, staff_user

pytestmark = pytest.mark.django_db


def test_a_viewer_is_not_offered_a_quantization_measurement(client, django_user_model):
    bundled_deployments_ensure()
    client.force_login(staff_user(django_user_model, VIEWERS))
    assert "measure_modes" not in offered_actions(client, "/admin/inference/modeldeployment/")
    client.force_login(staff_user(django_user_model, OPERATORS))
    assert "measure_modes" in offered_actions(client, "/admin/inference/modeldeployment/")
