"""A deployment on `auto` serves the mode its measurement chose where that mode can run on this host, and
fp32 where it cannot: a choice measured on a GPU pod (nf4) answered every call on a CPU pod with a 503. A mode
the admin chose stays as chosen (tests/inference/test_load_failures.py: nf4 on this CPU host is a 503)."""

import pytest

from apps.inference import serving
from apps.inference.models import ModelDeployment
from tests.inference.support import deployment, embed

pytestmark = pytest.mark.django_db


def test_auto_serves_fp32_where_its_measured_mode_cannot_run(api, token, caplog):
    auto = deployment("measured-on-a-gpu", quantization="auto")
    ModelDeployment.objects.filter(pk=auto.pk).update(chosen_quantization="nf4")
    auto.refresh_from_db()
    response = embed(api, token, "measured-on-a-gpu")
    assert response.status_code == 200, response.content[:300]
    assert serving.served(auto).mode == "fp32"
    assert "its measured nf4 cannot run here" in caplog.text


def test_auto_serves_its_measured_mode_where_it_runs(api, token):
    auto = deployment("measured-int8", quantization="auto")
    ModelDeployment.objects.filter(pk=auto.pk).update(chosen_quantization="int8")
    auto.refresh_from_db()
    assert embed(api, token, "measured-int8").status_code == 200
    assert serving.served(auto).mode == "int8"
