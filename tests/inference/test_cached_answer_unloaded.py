"""A cached answer is served without loading the model: after a restart each server process loaded its model
(15 to 20 s) before answering `"cached": true`, the cache key being taken from the loaded model. The key
made without loading is the loaded model's, and still changes with what changes the answer: the mode, the
weights' files, the input cap. Real MiniLM on the CPU; a "restart" is the process letting go of its model."""

import uuid

import pytest

from apps.inference import serving
from apps.inference.models import ModelDeployment
from tests.inference.support import EMBED_URL, LoadFailingIn, deployment, edit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_let_go_of_test_models")]


def _embed(api, token, name: str, texts: list[str], **body):
    return api.post(EMBED_URL.format(name), {"inputs": texts, **body}, format="json",
                    HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip


def _restart(row: ModelDeployment) -> None:
    serving._served.pop(row.pk).batcher.close()


def test_a_cached_answer_is_served_after_a_restart_without_loading_the_model(api, token, monkeypatch):
    counting = LoadFailingIn("none", RuntimeError)
    monkeypatch.setattr(serving, "load", counting)
    row = deployment("cached-after-restart")
    texts = [f"fever {uuid.uuid4().hex}"]
    first = _embed(api, token, row.name, texts)
    assert first.status_code == 200 and first.json()["cached"] is False
    _restart(row)

    again = _embed(api, token, row.name, texts)
    assert again.status_code == 200, again.content[:300]
    assert again.json()["cached"] is True
    assert again.json()["embeddings"] == first.json()["embeddings"]
    assert again.json()["quantization"] == "fp32" and again.json()["dimensions"] == first.json()["dimensions"]
    assert counting.asked == ["fp32"]  # loaded once, for the first call only
    assert row.pk not in serving._served

    other = _embed(api, token, row.name, [f"cough {uuid.uuid4().hex}"])  # a miss loads the model, as before
    assert other.status_code == 200 and other.json()["cached"] is False
    assert counting.asked == ["fp32", "fp32"]


def test_the_key_made_without_loading_is_the_loaded_model_s():
    row = deployment("same-key")
    unloaded = serving.answer_key_unloaded(row)
    assert unloaded is not None and row.pk not in serving._served
    assert serving.served(row).answer_key == unloaded


def test_another_mode_or_input_cap_is_another_key_and_a_lower_cap_still_refuses(api, token):
    row = deployment("key-follows-the-row")
    texts = [f"fever and chills for three days {uuid.uuid4().hex}"]
    assert _embed(api, token, row.name, texts).json()["cached"] is False
    fp32 = serving.answer_key_unloaded(row)
    _restart(row)

    row = edit(row, quantization="int8")
    assert serving.answer_key_unloaded(row)[0] == "int8" and serving.answer_key_unloaded(row) != fp32
    response = _embed(api, token, row.name, texts)
    assert response.status_code == 200 and response.json()["quantization"] == "int8"
    assert response.json()["cached"] is False  # not the fp32 answer
    _restart(row)

    row = edit(row, max_input_tokens=4)
    response = _embed(api, token, row.name, texts)
    assert response.status_code == 400, response.content[:300]  # not the answer kept under the higher cap
    assert "inputs" in response.json()["errors"]


def test_new_weight_files_are_another_key(tmp_path):
    minilm = deployment("bundled-files")
    folder, _ = serving.model_location(serving.LoadSpec.of(minilm))
    for path in folder.iterdir():
        if path.is_file():
            (tmp_path / path.name).symlink_to(path)
    row = ModelDeployment.objects.create(name="local-folder", source=ModelDeployment.Source.PATH,
                                         local_path=str(tmp_path), task="embedding", device="cpu",
                                         quantization="fp32")  # fmt: skip
    before = serving.answer_key_unloaded(row)
    assert before is not None and before == serving.answer_key_unloaded(row)
    (tmp_path / "added.bin").write_bytes(b"new weights")
    assert serving.answer_key_unloaded(row) != before


def test_a_cached_answer_still_refuses_an_unknown_patient(api, token):
    row = deployment("cached-unknown-patient")
    texts = [f"fever {uuid.uuid4().hex}"]
    assert _embed(api, token, row.name, texts).json()["cached"] is False
    _restart(row)
    response = _embed(api, token, row.name, texts, patient_id=987_654_321)
    assert response.status_code == 400 and "patient_id" in response.json()["errors"]
