"""`seed_demo`'s inference services carry the p95 SLO their bundled deployments are served to: the overview
(service SLOs) and the inference page (deployment SLOs) judge the same calls."""

from io import StringIO

import pytest
from django.core.management import call_command

from apps.inference.models import ModelDeployment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def test_each_bundled_deployments_service_has_its_p95_slo():
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    deployments = ModelDeployment.objects.select_related("service")
    assert deployments.count() == 2
    for deployment in deployments:
        assert deployment.service.slo_p95_ms == deployment.slo_p95_ms, deployment.name
        deployment.service.full_clean()  # p95 <= p99 and the average within them
