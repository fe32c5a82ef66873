"""Profiling lets go of the fp32 base weights its modes were copied from, unless this process serves them: a long
worker kept each model it had profiled for life (MiniLM ~60 MB, SmolLM2 ~520 MB). Real MiniLM, fp32 alone."""

import pytest

from apps.inference import backends, services, serving
from tests.inference.support import deployment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_let_go_of_test_models", "_served_by_no_one")]


@pytest.fixture
def _served_by_no_one(monkeypatch):
    """This process serves nothing during the test (earlier tests' models are set aside, their bases put back
    after): whether a base is kept depends on what is served."""
    monkeypatch.setattr(serving, "_served", {})
    monkeypatch.setattr(serving, "_loading_weights", {})
    bases = dict(backends._bases)
    yield
    for weights, base in bases.items():
        backends._bases.setdefault(weights, base)


def _profiled(name: str):
    row = deployment(name, quantization="auto", slo_p95_ms=300, max_batch_size=2, max_input_tokens=64)
    services.deployment_profile(row, modes=["fp32"], workload=["fever"])
    return row


def test_profiling_releases_the_base_it_loaded():
    row = _profiled("profiled-embed")
    assert row.chosen_quantization == "fp32"  # it was measured
    weights = backends.LoadSpec.of(row).weights
    assert weights not in backends._bases
    assert set(backends._bases) <= serving._weights_in_use()


def test_profiling_keeps_the_base_this_process_serves():
    served = deployment("served-embed")
    serving.served(served)
    weights = backends.LoadSpec.of(_profiled("profiled-embed")).weights
    assert weights in backends._bases  # the served model's base: its other modes are copied from it
    serving._served.pop(served.pk).batcher.close()
    backends.base_models_release(keep=serving._weights_in_use())  # not left to the next tests
