"""Cancelling a run while its model step measures a mode: the cancel is seen at the step's next progress
report, and the profiling loops report between measurements and right after the load, so nothing more of
that mode (or any other) is measured and nothing is kept. On the old code the mode measured to its end."""

from unittest import mock

import pytest

from apps.inference import profiling
from apps.inference import services as inference_services
from apps.inference.backends import Embedder, Generator
from apps.inference.models import QuantizationProfile
from apps.optimizer import services
from apps.optimizer.models import OptimizationRun, OptimizationStep

pytestmark = pytest.mark.django_db(transaction=True)


def _model_step(subject: str) -> tuple[OptimizationRun, OptimizationStep]:
    run = services.optimization_run_create(target="model", subject=subject)
    return run, run.steps.get()


def _assert_cancelled(run: OptimizationRun, step: OptimizationStep) -> None:
    run.refresh_from_db()
    step.refresh_from_db()
    assert (step.status, step.error) == (OptimizationStep.Status.FAILED, "Cancelled by ops.")
    assert run.status == OptimizationRun.Status.FAILED and run.error == "Cancelled by ops."
    assert not run.recommendations.exists()
    assert not QuantizationProfile.objects.exists()


def test_a_cancel_during_the_first_embedding_measurement_stops_before_the_next():
    """The bundled embedding model, really loaded: the run is cancelled during the first measurement (the
    warm-up); no further measurement of fp32, and no other mode, is made."""
    inference_services.bundled_deployments_ensure()
    run, step = _model_step("clinical-embeddings")
    calls, loads, real_embed, real_load = [], [], Embedder.embed, profiling.load

    def embed(runner, texts):
        calls.append(len(texts))
        if len(calls) == 1:
            assert services.optimization_run_cancel(run=run, by="ops")
        return real_embed(runner, texts)

    def load(spec, mode):
        loads.append(mode)
        return real_load(spec, mode)

    with mock.patch.object(Embedder, "embed", embed), mock.patch.object(profiling, "load", load):
        services.optimization_step_execute(step_id=step.pk)
    assert loads == ["fp32"]
    assert calls == [4]  # the warm-up only: batch-1 latency, throughput and fidelity were not measured
    _assert_cancelled(run, step)


class _Runner:
    """A generation model that answers at once, so the test looks only at which measurements ran."""

    model = None

    def __init__(self, run: OptimizationRun) -> None:
        self.run, self.calls = run, []

    def generate(self, prompts, max_new_tokens):
        self.calls.append(max_new_tokens)
        if len(self.calls) == 1:
            assert services.optimization_run_cancel(run=self.run, by="ops")
        return [{"output_tokens": max_new_tokens, "text": "x"} for _ in prompts]


def test_a_cancel_during_the_first_generation_measurement_stops_before_the_next():
    inference_services.bundled_deployments_ensure()
    run, step = _model_step("clinical-assistant")
    runner = _Runner(run)
    with (
        mock.patch.object(profiling, "load", return_value=runner) as load,
        mock.patch.object(Generator, "generate", side_effect=AssertionError("only the fake runner generates")),
    ):
        services.optimization_step_execute(step_id=step.pk)
    assert load.call_count == 1
    assert runner.calls == [2]  # the warm-up only: no time to first token, no 24-token streams, no fidelity
    _assert_cancelled(run, step)


def test_a_cancel_right_after_the_load_measures_nothing():
    inference_services.bundled_deployments_ensure()
    run, step = _model_step("clinical-assistant")
    runner = _Runner(run)

    def load(spec, mode):
        assert services.optimization_run_cancel(run=run, by="ops")
        return runner

    with mock.patch.object(profiling, "load", side_effect=load):
        services.optimization_step_execute(step_id=step.pk)
    assert runner.calls == []
    _assert_cancelled(run, step)
