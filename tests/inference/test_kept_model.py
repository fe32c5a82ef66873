"""A deployment edited to a mode that fails to load in this process keeps answering with the model it served
before the edit, under that model's mode: every call used to be a 503 `deployment_unavailable` for 30 s at a
time, for as long as the new mode failed. The failure is in the log and on the row (admin, dashboard), and the
edit is tried again after the failure's time. Real MiniLM; nf4 fails for real on this CPU host, out of memory
cannot be produced on cue, so `serving.load` is wrapped to raise it for one mode (as test_load_failures does)."""

import threading

import pytest
from django.db import connection

from apps.inference import serving
from apps.inference.models import ModelDeployment
from tests.inference.support import LoadFailingIn, deployment, edit, embed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_let_go_of_test_models")]


def test_a_mode_that_cannot_run_here_keeps_the_model_served_before_the_edit(api, token, monkeypatch, caplog):
    counting = LoadFailingIn("none", RuntimeError)  # fails nothing itself: nf4 fails in the real loader
    monkeypatch.setattr(serving, "load", counting)
    row = deployment("edited-to-nf4")
    first = embed(api, token, "edited-to-nf4")
    assert first.status_code == 200 and first.json()["quantization"] == "fp32"

    row = edit(row, quantization="nf4")
    for _ in range(3):
        response = embed(api, token, "edited-to-nf4")
        assert response.status_code == 200, response.content[:300]
        assert response.json()["quantization"] == "fp32"  # the mode that answered, not the one asked for
        assert response.json()["embeddings"] == first.json()["embeddings"]
    assert counting.asked == ["fp32", "nf4"]  # the failure is remembered: not loaded again on each call
    assert "nf4 did not load" in caplog.text and "still serving the fp32 model loaded before" in caplog.text
    row.refresh_from_db()
    assert "nf4 did not load" in row.load_failure and "still serving the fp32 model" in row.load_failure
    assert row.load_failed_at is not None

    monkeypatch.setattr(serving, "LOAD_FAILURE_SECONDS", 0.0)  # the failure's time is over: nf4 is tried again
    response = embed(api, token, "edited-to-nf4")
    assert response.status_code == 200 and response.json()["quantization"] == "fp32"
    assert counting.asked[:2] == ["fp32", "nf4"] and set(counting.asked[2:]) == {"nf4"}  # tried again


def test_a_failed_edit_is_tried_again_and_served_once_it_loads(api, token, monkeypatch):
    failing = LoadFailingIn("bf16", MemoryError("out of memory"))
    monkeypatch.setattr(serving, "load", failing)
    row = deployment("edited-to-bf16")
    assert embed(api, token, "edited-to-bf16").json()["quantization"] == "fp32"
    row = edit(row, quantization="bf16")
    response = embed(api, token, "edited-to-bf16")
    assert response.status_code == 200 and response.json()["quantization"] == "fp32"
    assert serving.load_failure(row) == "bf16 did not load: MemoryError: out of memory"

    failing.failing = False  # memory was freed on the host
    monkeypatch.setattr(serving, "LOAD_FAILURE_SECONDS", 0.0)
    response = embed(api, token, "edited-to-bf16")
    assert response.status_code == 200 and response.json()["quantization"] == "bf16"
    assert failing.asked == ["fp32", "bf16", "bf16"]
    row.refresh_from_db()
    assert row.load_failure == "" and row.load_failed_at is None


def test_an_edit_back_to_the_mode_that_serves_ends_the_failure(api, token, monkeypatch):
    monkeypatch.setattr(serving, "load", LoadFailingIn("int8", MemoryError("out of memory")))
    row = deployment("edited-back")
    assert embed(api, token, "edited-back").status_code == 200
    row = edit(row, quantization="int8")
    assert embed(api, token, "edited-back").json()["quantization"] == "fp32"
    row = edit(row, quantization="fp32")
    assert embed(api, token, "edited-back").json()["quantization"] == "fp32"
    row.refresh_from_db()
    assert row.load_failure == "" and serving.load_failure(row) is None


def test_while_the_failed_mode_is_tried_again_the_kept_model_answers(monkeypatch):
    """The retry loads in one call's thread; the others are answered by the kept model, not held behind it."""
    entered, release = threading.Event(), threading.Event()
    real = serving.load

    def slow_bf16(spec, mode):
        if mode == "bf16":
            entered.set()
            assert release.wait(60)
            raise MemoryError("out of memory")
        return real(spec, mode)

    monkeypatch.setattr(serving, "load", slow_bf16)
    row = deployment("retried")
    kept = serving.served(row)
    row = edit(row, quantization="bf16")
    release.set()  # the first try fails at once
    assert serving.served(row) is kept
    release.clear()
    monkeypatch.setattr(serving, "LOAD_FAILURE_SECONDS", 0.0)

    def try_again():
        try:
            serving.served(row)
        finally:
            connection.close()  # this thread's own: it recorded the failure

    retry = threading.Thread(target=try_again)
    retry.start()
    try:
        assert entered.wait(30)
        answered = []
        other = threading.Thread(target=lambda: answered.append(serving.served(row)))
        other.start()
        other.join(30)
        assert answered == [kept]
    finally:
        release.set()
        retry.join(60)


def test_with_no_model_served_before_a_failed_load_is_still_a_503_and_is_recorded(api, token):
    row = deployment("never-served", quantization="nf4")
    response = embed(api, token, "never-served")
    assert response.status_code == 503 and response.json()["code"] == "deployment_unavailable"
    row.refresh_from_db()
    assert "nf4 did not load" in row.load_failure and "answering 503 deployment_unavailable" in row.load_failure


def test_a_kept_model_of_the_other_task_is_not_served(monkeypatch):
    """An edit of the task: the embedding model would fail every call of the generate endpoint."""
    row = ModelDeployment.objects.create(name="task-edited", source="path", local_path="/nonexistent",
                                         task="embedding", device="cpu", quantization="fp32")  # fmt: skip
    monkeypatch.setattr(serving, "weights_fingerprint", lambda spec: "")
    monkeypatch.setattr(serving, "load", lambda spec, mode: _Runner())
    serving.served(row)
    monkeypatch.setattr(serving, "load", LoadFailingIn("fp32", MemoryError("out of memory")))
    row = edit(row, task="generation")
    with pytest.raises(serving.ModelUnavailable):
        serving.served(row)


class _Runner:
    device, max_tokens, context = "cpu", 256, 512

    def embed(self, texts):
        return [[0.0] for _ in texts]
