"""Showing a deployment's serving mode (the dashboard's Inference page, admin) in a process that serves no model
of it does not import torch: it did, to resolve the device for the label, 1.25 s and 160 MB in a web process
that may never serve a model. The process is a fresh one, so no other test's import hides it."""

import json
import os

import pytest

from apps.inference import serving
from apps.inference.models import ModelDeployment
from tests.helpers import database_url, run_python

pytestmark = pytest.mark.django_db(transaction=True)  # the fresh process reads the rows: committed

OVERVIEW = """
import json, sys
import django
django.setup()
from apps.inference.selectors import deployment_overview
rows = {row["name"]: [row["serving_quantization"], row["serving_reason"]] for row in deployment_overview()}
print(json.dumps({"torch_loaded": "torch" in sys.modules, "rows": rows}))
"""


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_the_overview_reads_no_torch_and_still_names_the_fallback(device):
    for name, measured in (("measured-int8", "int8"), ("measured-nf4", "nf4")):
        ModelDeployment.objects.create(name=name, source=ModelDeployment.Source.MINILM, task="embedding",
                                       device=device, quantization="auto", chosen_quantization=measured)  # fmt: skip
    done = run_python(OVERVIEW, env={**os.environ, "DATABASE_URL": database_url()}, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown["torch_loaded"] is False
    if device == "cpu" or not serving.NVIDIA_GPUS.is_dir():  # no CUDA here: int8 runs on the CPU
        assert shown["rows"]["measured-int8"] == ["int8", None]
    mode, reason = shown["rows"]["measured-nf4"]
    assert mode == "fp32" and reason.startswith("its measured nf4 cannot run here (")
