"""A model that cannot be loaded, whatever the cause, answers 503 `deployment_unavailable` (never a 500) and
the failure is remembered for a while: each call used to load again, seconds of a request thread for the
same failure. Out of memory, a package missing from the host or a broken tensor cannot be produced on cue
here: `serving.load` is replaced by one that raises them (the real loader is used where the failure is real:
a mode this host cannot run)."""

import pytest

from apps.inference import serving
from apps.inference.backends import ModelUnavailable
from apps.inference.models import ModelDeployment
from tests.inference.support import deployment, embed

pytestmark = pytest.mark.django_db


class FailingLoad:
    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def __call__(self, spec, mode):
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        MemoryError("out of memory"),
        ImportError("No module named 'torch'"),
        RuntimeError("PytorchStreamReader failed reading zip archive"),
        ModelUnavailable("the weights cannot be loaded"),
    ],
    ids=["oom", "missing-package", "corrupt-weights", "unavailable"],
)
def test_any_load_failure_is_a_503_and_is_not_retried_on_every_call(api, token, monkeypatch, caplog, error):
    failing = FailingLoad(error)
    monkeypatch.setattr(serving, "load", failing)
    deployment(f"broken-{type(error).__name__.lower()}")
    for _ in range(3):
        response = embed(api, token, f"broken-{type(error).__name__.lower()}")
        assert response.status_code == 503, response.content
        assert response.json()["code"] == "deployment_unavailable"
        assert response["Retry-After"] == "30"
        assert str(error) not in response.content.decode()  # the reason is for the operator's log
    assert failing.calls == 1
    assert str(error) in caplog.text


def test_a_remembered_failure_is_tried_again_after_its_time_or_at_once_after_an_edit(api, token, monkeypatch):
    failing = FailingLoad(MemoryError("out of memory"))
    monkeypatch.setattr(serving, "load", failing)
    broken = deployment("broken-later")
    assert embed(api, token, "broken-later").status_code == 503
    assert serving.load_failure(broken) == "fp32 did not load: MemoryError: out of memory"

    broken.max_input_tokens = 128  # an edit: the admin may have fixed what failed
    broken.save()
    assert embed(api, token, "broken-later").status_code == 503
    assert failing.calls == 2

    monkeypatch.setattr(serving, "LOAD_FAILURE_SECONDS", 0.0)  # the failure's time is over
    assert embed(api, token, "broken-later").status_code == 503
    assert failing.calls == 3 and serving.load_failure(broken) is None


def test_a_mode_this_host_cannot_run_is_loaded_once_per_interval(api, token, monkeypatch, caplog):
    """nf4 needs CUDA and bitsandbytes (a row edited before the admin's checks, or the host changed)."""
    real_load, calls = serving.load, []

    def counting(spec, mode):
        calls.append(mode)
        return real_load(spec, mode)

    monkeypatch.setattr(serving, "load", counting)
    deployment("needs-a-gpu", quantization="nf4")
    for _ in range(3):
        response = embed(api, token, "needs-a-gpu")
        assert response.status_code == 503 and response.json()["code"] == "deployment_unavailable"
    assert calls == ["nf4"]
    assert "bitsandbytes" in caplog.text


def test_an_unknown_mode_is_refused_rather_than_served_as_fp32_under_its_name(api, token, caplog):
    """A row written around the model's choices (a queryset update, a mode an older release knew)."""
    created = deployment("odd-mode")
    ModelDeployment.objects.filter(pk=created.pk).update(quantization="int4")
    response = embed(api, token, "odd-mode")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "deployment_unavailable"
    assert "'int4' is not a quantization mode" in caplog.text
