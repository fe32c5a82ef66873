"""A deployment pointed at other weights (a new model version in another folder): the process serves the
new ones and lets the old go (each version's fp32 weights used to stay in memory for the process's life).
Real MiniLM weights, linked into two version folders."""

import gc
import threading
import time
import weakref

import pytest

from apps.inference import serving
from apps.inference.backends import LoadSpec, model_location
from apps.inference.models import ModelDeployment

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(tmp_path):
    bundled, _ = model_location(LoadSpec(ModelDeployment.Source.MINILM, "", "embedding", "cpu"))
    folders = []
    for version in ("v1", "v2"):
        folder = tmp_path / version
        folder.mkdir()
        for file in bundled.iterdir():
            if file.is_file():
                (folder / file.name).symlink_to(file)
        folders.append(folder)
    return folders


def test_a_new_weights_folder_is_served_and_the_old_weights_are_freed(versions):
    v1, v2 = versions
    deployment = ModelDeployment.objects.create(name="versioned", source="path", local_path=str(v1),
                                                task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    [first], _ = serving.embed(deployment, ["fever"])
    old_weights = weakref.ref(serving.served(deployment).runner.model)

    deployment.local_path = str(v2)
    deployment.save()
    [second], _ = serving.embed(deployment, ["fever"])
    assert serving.served(deployment).runner.model is not old_weights()
    assert sum(a * b for a, b in zip(first, second, strict=True)) > 0.9999  # the same weights, linked twice
    gc.collect()
    assert old_weights() is None


def test_an_edit_of_batching_only_keeps_the_loaded_model_and_its_queue(versions):
    """Batch size, queue delay and SLO (and a measurement, which touches the row) used to load the model again
    in the request thread that saw the edit; a row read before the edit must not take it back either."""
    deployment = ModelDeployment.objects.create(name="tuned", source="path", local_path=str(versions[0]),
                                                task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    stale = ModelDeployment.objects.get(pk=deployment.pk)
    before = serving.served(deployment)
    deployment.max_batch_size, deployment.slo_p95_ms = 4, 200
    deployment.save()
    after = serving.served(deployment)
    assert after.runner is before.runner and after.batcher is before.batcher
    assert (after.batcher.controller.max_batch_size, after.batcher.controller.slo_ms) == (4, 200)
    assert after.batcher.controller.batch_size <= 4
    assert serving.served(stale) is after and after.batcher.controller.max_batch_size == 4


def test_a_replaced_batcher_answers_its_queue_then_stops(versions):
    """Its task used to wait on its queue for ever, holding the old model until the garbage collector
    destroyed it pending ("Task was destroyed but it is pending!" in the log)."""
    deployment = ModelDeployment.objects.create(name="moved", source="path", local_path=str(versions[0]),
                                                task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    serving.embed(deployment, ["fever"])
    old = serving.served(deployment).batcher
    deployment.quantization = "bf16"
    deployment.save()
    assert serving.served(deployment).batcher is not old
    deadline = time.monotonic() + 10
    while not old.worker.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert old.worker.done() and not old.worker.cancelled()


def test_an_answer_of_the_old_weights_is_not_served_from_the_cache_after_a_model_change(versions, api, issue_token):
    """Keyed by name and mode only, the old model's embeddings came back for an hour after the move: vectors
    from two models mixed in one index, which do not compare."""
    from apps.ratelimits.models import RateLimitPolicy

    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    deployment = ModelDeployment.objects.create(name="cached-model", source="path", local_path=str(versions[0]),
                                                task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    token = issue_token("inference")

    def call() -> bool:
        response = api.post("/api/v1/inference/cached-model/embed", {"inputs": ["fever and cough"]}, format="json",
                            HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
        assert response.status_code == 200, response.content
        return response.json()["cached"]

    assert call() is False and call() is True
    deployment.local_path = str(versions[1])
    deployment.save()
    assert call() is False  # the new model's answer
    assert call() is True


def test_a_disabled_deployment_lets_its_weights_go(versions, monkeypatch, api, issue_token):
    """Nothing calls a disabled (or deleted) deployment again, so its model stayed in every worker's memory
    until the process ended; the next inference call, a minute on at most, releases it."""
    from apps.ratelimits.models import RateLimitPolicy

    RateLimitPolicy.objects.filter(scope="ai_inference").update(requests=10_000)
    v1, v2 = versions
    retired = ModelDeployment.objects.create(name="retired", source="path", local_path=str(v1), task="embedding",
                                             device="cpu", quantization="fp32")  # fmt: skip
    kept = ModelDeployment.objects.create(name="kept", source="path", local_path=str(v2), task="embedding",
                                          device="cpu", quantization="fp32")  # fmt: skip
    serving.embed(retired, ["fever"])
    serving.embed(kept, ["fever"])
    old = serving.served(retired)
    weights, batcher = weakref.ref(old.runner.model), old.batcher
    del old
    retired.enabled = False
    retired.save()

    monkeypatch.setattr(serving, "PRUNE_SECONDS", 0.0, raising=False)  # the minute has passed
    response = api.post("/api/v1/inference/kept/embed", {"inputs": ["cough"]}, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}")  # fmt: skip
    assert response.status_code == 200
    assert retired.pk not in serving._served and kept.pk in serving._served
    deadline = time.monotonic() + 10
    while not batcher.worker.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    del batcher
    gc.collect()
    assert weights() is None


class HeldLoad:
    """serving.load, held for the weights in `folder` until released: a large model's load (seconds to
    minutes) made long on cue; every other load runs for real."""

    def __init__(self, monkeypatch, folder) -> None:
        self.folder, self.real = str(folder), serving.load
        self.started, self.release, self.calls = threading.Event(), threading.Event(), []
        monkeypatch.setattr(serving, "load", self)

    def __call__(self, spec, mode):
        if spec.local_path == self.folder:
            self.calls.append(mode)
            self.started.set()
            self.release.wait(60)
        return self.real(spec, mode)


def _in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_looking_for_disabled_deployments_never_waits_on_a_model_loading(versions, monkeypatch):
    """The look runs in whichever call comes first: behind another deployment's load (about 20 s for
    SmolLM2) it would hold a call whose own model is in memory."""
    v1, v2 = versions
    deployment = ModelDeployment.objects.create(name="busy", source="path", local_path=str(v1),
                                                task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    large = ModelDeployment.objects.create(name="large", source="path", local_path=str(v2),
                                           task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    serving.embed(deployment, ["fever"])
    monkeypatch.setattr(serving, "PRUNE_SECONDS", 0.0)
    held = HeldLoad(monkeypatch, v2)
    loader = _in_thread(serving.served, large)
    try:
        assert held.started.wait(30)
        serving.served_prune_if_due()  # returns while `large` loads (a wait here would hang the test)
        assert serving.served(deployment) is serving._served[deployment.pk]
    finally:
        held.release.set()
        loader.join(60)


def test_a_model_loading_never_holds_up_the_other_deployments(versions, monkeypatch):
    """Loads shared one lock: while one model loaded (seconds for SmolLM2, minutes for a large one), an edit
    of a loaded deployment (its batch size) and another deployment's first call waited for it."""
    v1, v2 = versions
    ready = ModelDeployment.objects.create(name="ready", source="path", local_path=str(v1), task="embedding",
                                           device="cpu", quantization="fp32")  # fmt: skip
    other = ModelDeployment.objects.create(name="other", source="path", local_path=str(v1), task="embedding",
                                           device="cpu", quantization="int8")  # fmt: skip
    large = ModelDeployment.objects.create(name="large", source="path", local_path=str(v2), task="embedding",
                                           device="cpu", quantization="fp32")  # fmt: skip
    serving.embed(ready, ["fever"])
    held = HeldLoad(monkeypatch, v2)
    loader = _in_thread(serving.served, large)
    try:
        assert held.started.wait(30)
        ready.max_batch_size = 4
        ready.save()
        callers = [_in_thread(serving.embed, ready, ["cough"]), _in_thread(serving.embed, other, ["cough"])]
        for caller in callers:
            caller.join(60)
        assert not any(caller.is_alive() for caller in callers), "a call waited for another model's load"
        assert serving._served[ready.pk].batcher.controller.max_batch_size == 4
        assert serving._served[other.pk].mode == "int8"
        assert large.pk not in serving._served  # still loading: nothing was released behind its back
    finally:
        held.release.set()
        loader.join(60)
    assert serving._served[large.pk].runner is not None


def test_a_deployment_is_loaded_once_however_many_calls_wait_for_it(versions, monkeypatch):
    v1, _ = versions
    deployment = ModelDeployment.objects.create(name="wanted", source="path", local_path=str(v1),
                                                task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    held = HeldLoad(monkeypatch, v1)
    answers: list = []
    callers = [_in_thread(lambda: answers.append(serving.served(deployment))) for _ in range(3)]
    try:
        assert held.started.wait(30)
    finally:
        held.release.set()
    for caller in callers:
        caller.join(60)
    assert len(answers) == 3 and answers[0] is answers[1] is answers[2]
    assert held.calls == ["fp32"]


def test_a_second_mode_of_weights_in_memory_never_waits_for_other_weights_to_load(versions, monkeypatch):
    """The fp32 weights every mode starts from (backends._base_model) were loaded under one lock for all:
    a new mode of a model in memory waited for another model's weights to be read."""
    from apps.inference import backends

    v1, v2 = versions
    spec_v1, spec_v2 = (LoadSpec("path", str(folder), "embedding", "cpu") for folder in (v1, v2))
    backends.load(spec_v1, "fp32")  # v1's weights are in memory
    reading, release, real_location = threading.Event(), threading.Event(), backends.model_location

    def slow_location(spec):  # the read of v2's weights, held until released
        if spec.local_path == str(v2):
            reading.set()
            release.wait(60)
        return real_location(spec)

    monkeypatch.setattr(backends, "model_location", slow_location)
    reader = _in_thread(backends.load, spec_v2, "fp32")
    try:
        assert reading.wait(30)
        second_mode = _in_thread(backends.load, spec_v1, "int8")
        second_mode.join(60)
        assert not second_mode.is_alive(), "a mode of weights in memory waited for other weights to load"
    finally:
        release.set()
        reader.join(60)
    backends.base_models_release(keep=set(backends._bases) - {spec_v1.weights, spec_v2.weights})
